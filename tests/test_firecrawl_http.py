"""The Firecrawl routes over raw HTTP: camelCase answer shapes under /v2 and /firecrawl/v2, every refused field a
400 in Firecrawl's error shape naming it, tokens as 401 in that shape, and the address guard."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.crawl_site import CrawlSite
from tests.helpers import Api


@pytest.fixture
def site() -> Iterator[CrawlSite]:
    served = CrawlSite()
    yield served
    served.stop()


@pytest.mark.gen_test(timeout=60)
async def test_scrape_answers_firecrawls_shape_under_both_prefixes(api, site):
    for prefix in ("", "/firecrawl"):
        code, body = await api.call("POST", f"{prefix}/v2/scrape", {"url": site.url("/a"), "formats": ["markdown"]})
        assert code == 200 and body["success"] is True, body
        assert set(body["data"]) == {"markdown", "metadata"}
        assert {"sourceURL", "url", "statusCode", "contentType", "scrapeId", "creditsUsed"} <= set(
            body["data"]["metadata"])


@pytest.mark.gen_test(timeout=60)
async def test_crawl_and_batch_starts_answer_id_and_url(api, site):
    code, body = await api.call("POST", "/firecrawl/v2/crawl", {"url": site.url("/"), "limit": 2})
    assert code == 200 and body["url"].endswith(f"/firecrawl/v2/crawl/{body['id']}"), body
    code, status = await api.call("GET", f"/firecrawl/v2/crawl/{body['id']}")
    assert code == 200 and status["status"] in ("scraping", "completed") and isinstance(status["creditsUsed"], int)
    assert set(status) == {"success", "status", "completed", "total", "creditsUsed", "expiresAt", "next", "data"}
    code, again = await api.call("GET", f"/firecrawl/v2/crawl/{body['id']}?cursor=")  # empty: the first page
    assert code == 200 and again["success"] is True, again
    code, body = await api.call("POST", "/v2/batch/scrape", {"urls": [site.url("/a"), "ftp://x/"],
                                                             "ignoreInvalidURLs": True})
    assert code == 200 and body["invalidURLs"] == ["ftp://x/"]
    assert body["url"].endswith(f"/v2/batch/scrape/{body['id']}")
    code, body = await api.call("POST", "/v2/map", {"url": site.url("/"), "limit": 2})
    assert code == 200 and body["success"] is True and len(body["links"]) == 2 and "url" in body["links"][0]


REFUSED: list[tuple[str, dict[str, Any], str]] = [
    ("scrape", {"formats": ["json"]}, "json"),
    ("scrape", {"formats": ["summary"]}, "summary"),
    ("scrape", {"formats": ["changeTracking"]}, "changeTracking"),
    ("scrape", {"actions": [{"type": "click", "selector": "a"}]}, "actions"),
    ("scrape", {"location": {"country": "US"}}, "location"),
    ("scrape", {"proxy": "stealth"}, "proxy"),
    ("scrape", {"zeroDataRetention": True}, "zeroDataRetention"),
    ("scrape", {"minAge": 1000}, "minAge"),
    ("scrape", {"includeTags": ["div > p"]}, "includeTags"),
    ("scrape", {"somethingElse": 1}, "somethingElse"),
    ("scrape", {"timeout": 10}, "timeout"),
    ("crawl", {"prompt": "docs only"}, "prompt"),
    ("crawl", {"allowExternalLinks": True}, "allowExternalLinks"),
    ("crawl", {"regexOnFullURL": True}, "regexOnFullURL"),
    ("crawl", {"delay": 2}, "delay"),
    ("crawl", {"maxConcurrency": 2}, "maxConcurrency"),
    ("crawl", {"sitemap": "only"}, "sitemap"),
    ("crawl", {"scrapeOptions": {"formats": ["json"]}}, "json"),
    ("crawl", {"scrapeOptions": {"includeTags": ["p"]}}, "includeTags"),
    ("map", {"search": "docs"}, "search"),
    ("map", {"includeSubdomains": False}, "includeSubdomains"),
    ("batch/scrape", {"appendToId": "abc"}, "appendToId"),
]


@pytest.mark.gen_test(timeout=60)
@pytest.mark.parametrize(("route", "fields", "named"), REFUSED)
async def test_each_refused_field_is_a_400_naming_it(api, route, fields, named):
    body = {"urls": ["https://example.com/"]} if route == "batch/scrape" else {"url": "https://example.com/"}
    code, answer = await api.call("POST", f"/v2/{route}", {**body, **fields})
    assert code == 400 and answer["success"] is False and named in answer["error"], answer


@pytest.mark.gen_test(timeout=30)
async def test_other_firecrawl_endpoints_say_what_is_not_supported(api):
    code, body = await api.call("POST", "/v2/search", {"query": "x"})
    assert code == 400 and body == {"success": False, "error": "search is not supported by jobqueue (it has no "
                                    "search engine)", "code": "not_supported"}
    code, body = await api.call("POST", "/v2/extract", {"urls": ["https://example.com/"]})
    assert code == 400 and "extract" in body["error"]


@pytest.mark.gen_test(timeout=30)
async def test_tokens_are_401_in_firecrawls_shape(make_server):
    server = await make_server(api_tokens=("right",))
    api = Api(f"http://127.0.0.1:{server.port}")
    try:
        code, body = await api.call("POST", "/v2/scrape", {"url": "https://example.com/"})
        assert code == 401 and body["success"] is False and "token" in body["error"]
    finally:
        api.close()


@pytest.mark.gen_test(timeout=30)
async def test_the_address_guard_refuses_a_private_address(make_server):
    server = await make_server(allow_private_addresses=False)
    api = Api(f"http://127.0.0.1:{server.port}")
    try:
        for route, body in (("scrape", {"url": "http://127.0.0.1:9/"}), ("crawl", {"url": "http://127.0.0.1:9/"}),
                            ("map", {"url": "http://127.0.0.1:9/"}), ("batch/scrape", {"urls": ["http://127.0.0.1:9/"]})):
            code, answer = await api.call("POST", f"/v2/{route}", body)
            assert code == 400 and answer["success"] is False, (route, answer)
    finally:
        api.close()
