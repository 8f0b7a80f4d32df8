"""POST /map through the real server and a real site on 127.0.0.1: the sitemaps' URLs then the page's links, each
once, the site's own only, at most `limit`; `sitemap` include / only / skip; what cannot be read is a warning;
every bad input a 400 in the error shape; the API token applies."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from jobqueue.site_map import registrable_domain, same_site
from tests.helpers import API, Api
from tests.sitemap_site import Site, sitemap_index, urlset

MAP = f"{API}/map"
PAGE = """<!doctype html><html><head><title>home</title><base href="/docs/"></head><body>
<a href="intro">intro</a> <a href="/from-sitemap">again</a> <a href="#top">self</a>
<a href="http://localhost:{port}/other-host">elsewhere</a> <a href="https://example.com/away">away</a>
<a href="mailto:a@example.com">mail</a> <a href="/docs/intro#part">same page, fragment</a>
</body></html>"""


@pytest.fixture
def site() -> Iterator[Site]:
    served = Site()
    port = served.base.rsplit(":", 1)[1]
    served.serve("/robots.txt", "User-agent: *\nDisallow: /private\nSitemap: {base}/index.xml\n", "text/plain")
    served.serve("/index.xml", sitemap_index("{base}/pages.xml"))
    served.serve("/pages.xml", urlset("{base}/from-sitemap", "{base}/private/listed", "https://example.com/not-ours",
                                      f"http://localhost:{port}/also-not-ours"))
    served.serve("/sitemap.xml", urlset("{base}/plain-sitemap"))
    served.serve("/", PAGE.replace("{port}", port), "text/html; charset=utf-8")
    yield served
    served.stop()


def paths(site: Site, urls: list[str]) -> list[str]:
    return [url.removeprefix(site.base) for url in urls]


async def map_(api: Api, **body: Any) -> tuple[int, Any]:
    return await api.call("POST", MAP, body)


@pytest.mark.gen_test(timeout=60)
async def test_sitemap_urls_come_first_then_the_pages_links_of_the_site_only(api, site):
    code, body = await map_(api, url=site.url("/"))
    assert code == 200, body
    # robots.txt's index first, then /sitemap.xml, then the index's sitemap (breadth first), then the page's links:
    # `#top` is the page's base, /docs/; other hosts, mailto: and repeats are left out
    assert paths(site, body["links"]) == ["/plain-sitemap", "/from-sitemap", "/private/listed", "/docs/intro",
                                          "/docs/"]
    assert body["warnings"] == []
    assert site.hits.count("/") == 1 and site.hits.count("/robots.txt") == 1


@pytest.mark.gen_test(timeout=60)
async def test_only_reads_the_sitemaps_and_skip_only_the_page(api, site):
    code, body = await map_(api, url=site.url("/"), sitemap="only")
    assert code == 200 and paths(site, body["links"]) == ["/plain-sitemap", "/from-sitemap", "/private/listed"]
    assert "/" not in site.hits
    site.hits.clear()
    code, body = await map_(api, url=site.url("/"), sitemap="skip")
    assert code == 200 and paths(site, body["links"]) == ["/docs/intro", "/from-sitemap", "/docs/"]
    assert site.hits == ["/"]  # neither robots.txt nor a sitemap


@pytest.mark.gen_test(timeout=60)
async def test_the_limit_counts_every_link(api, site):
    site.serve("/pages.xml", urlset(*(f"{{base}}/p{i}" for i in range(30_000))))
    site.serve("/after.xml", urlset("{base}/after"))
    site.serve("/index.xml", sitemap_index("{base}/pages.xml", "{base}/after.xml"))
    del site.files["/sitemap.xml"]
    code, body = await map_(api, url=site.url("/"), limit=25_000)
    assert code == 200 and paths(site, body["links"]) == [f"/p{i}" for i in range(25_000)]
    assert body["warnings"] == [] and "/after.xml" not in site.hits  # full before it was needed
    code, body = await map_(api, url=site.url("/"), limit=1, sitemap="skip")
    assert code == 200 and paths(site, body["links"]) == ["/docs/intro"]


@pytest.mark.gen_test(timeout=60)
async def test_a_site_without_sitemaps_or_page_answers_what_it_has_with_warnings(api):
    bare = Site()
    try:
        bare.serve("/", "<a href='/one'>1</a><a href='/two'>2</a>", "text/html")
        code, body = await map_(api, url=bare.url("/"))
        assert code == 200 and paths(bare, body["links"]) == ["/one", "/two"] and body["warnings"] == []
        code, body = await map_(api, url=bare.url("/missing"))
        assert code == 200 and body["links"] == []
        assert body["warnings"] == [f"{bare.url('/missing')}: HTTP 404; its links are not taken"]
        bare.serve("/data.json", '{"a": "/x"}', "application/json")
        code, body = await map_(api, url=bare.url("/data.json"), sitemap="skip")
        assert code == 200 and body == {"links": [], "warnings": []}
    finally:
        bare.stop()
    code, body = await map_(api, url=bare.url("/"))  # stopped: nothing answers
    assert code == 200 and body["links"] == [] and all("connection_error" in w for w in body["warnings"])


@pytest.mark.gen_test(timeout=60)
async def test_bad_input_is_a_400_in_the_error_shape(api, site):
    cases = [
        (None, "invalid_json"), ([site.url("/")], "invalid_request"), ({}, "invalid_request"),
        ({"url": site.url("/"), "depth": 2}, "unknown_field"), ({"url": ""}, "invalid_url"),
        ({"url": 5}, "invalid_url"), ({"url": "ftp://example.com/"}, "unsupported_scheme"),
        ({"url": "http://" + "a" * 3000 + ".com/"}, "url_too_long"),
        ({"url": site.url("/"), "limit": 0}, "invalid_field"), ({"url": site.url("/"), "limit": 100_001},
                                                                "invalid_field"),
        ({"url": site.url("/"), "limit": "10"}, "invalid_field"), ({"url": site.url("/"), "limit": True},
                                                                   "invalid_field"),
        ({"url": site.url("/"), "limit": 2.5}, "invalid_field"), ({"url": site.url("/"), "sitemap": "all"},
                                                                  "invalid_field"),
    ]
    for payload, error in cases:
        if payload is None:
            response = await api.raw("POST", MAP, b"{not json", {"Content-Type": "application/json"})
            code, body = response.code, json.loads(response.body)
        else:
            code, body = await api.call("POST", MAP, payload)
        assert code == 400 and body["error"]["code"] == error, (payload, body)
        assert set(body) == {"error"} and body["error"]["message"]
    assert site.hits == []
    code, body = await api.call("GET", MAP)
    assert code == 405 and body["error"]["code"] == "method_not_allowed"


@pytest.mark.gen_test(timeout=60)
async def test_the_address_guard_applies_to_the_page_every_sitemap_and_every_redirect(make_server, site):
    server = await make_server(allow_private_addresses=False, allow_networks=("127.0.0.1/32",))
    api = Api(f"http://127.0.0.1:{server.port}")
    port = site.base.rsplit(":", 1)[1]
    try:
        code, body = await map_(api, url=f"http://127.0.0.2:{port}/")
        assert code == 400 and body["error"]["code"] == "blocked"
        site.serve("/robots.txt", f"Sitemap: http://127.0.0.2:{port}/index.xml\n", "text/plain")
        site.serve("/sitemap.xml", "", status=302, Location=f"http://127.0.0.2:{port}/pages.xml")
        code, body = await map_(api, url=site.url("/"))
        assert code == 200 and paths(site, body["links"]) == ["/docs/intro", "/from-sitemap", "/docs/"]
        assert [warning.split(": ")[:2] for warning in body["warnings"]] == [
            [f"http://127.0.0.2:{port}/index.xml", "blocked (refused to connect to 127.0.0.2"],
            [site.url("/sitemap.xml"), "blocked (refused to connect to 127.0.0.2"]]
        assert "/index.xml" not in site.hits and "/pages.xml" not in site.hits
    finally:
        api.close()


@pytest.mark.gen_test(timeout=60)
async def test_the_api_token_applies(make_server, site):
    server = await make_server(api_tokens=("full-token-0123456789",), read_only_tokens=("read-token-0123456789",))
    api = Api(f"http://127.0.0.1:{server.port}")
    try:
        code, body = await map_(api, url=site.url("/"))
        assert code == 401 and body["error"]["code"] == "unauthorized"
        for token, expected in (("read-token-0123456789", 403), ("full-token-0123456789", 200)):
            response = await api.raw("POST", MAP, json.dumps({"url": site.url("/"), "sitemap": "skip"}),
                                     {"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
            assert response.code == expected, response.body
    finally:
        api.close()


def test_the_site_is_the_registrable_domain_and_its_subdomains():
    assert registrable_domain("docs.example.co.uk") == "example.co.uk"
    assert registrable_domain("127.0.0.1") is None and registrable_domain("localhost") is None
    keep = same_site("https://docs.example.co.uk/a")
    assert [keep(u) for u in ("http://example.co.uk/", "https://www.example.co.uk/x", "https://docs.example.co.uk/",
                              "https://example.com/", "https://notexample.co.uk/", "https://co.uk/")] == \
        [True, True, True, False, False, False]
    by_address = same_site("http://127.0.0.1:8080/")
    assert by_address("http://127.0.0.1:9090/x") and not by_address("http://localhost:8080/")
