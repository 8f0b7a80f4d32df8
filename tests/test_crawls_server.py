"""Crawls through the real server (a SQLite file) and a real site on 127.0.0.1 (tests/crawl_site.py): each page
fetched once (fragment and host-case variants are one page), depth and page limits exact, the scopes, include and
exclude, ignore_query, sitemaps (include, only, skip), robots.txt obeyed and fetched once, cancel, listings by
crawl, and every bad request a clear 400."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.crawl_site import CrawlSite
from tests.helpers import API, Api, wait_for


async def crawl_until_done(api: Api, body: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
    code, answer = await api.call("POST", f"{API}/crawls", body)
    assert code == 201, answer
    crawl_id = answer["crawl"]["id"]

    async def finished() -> dict[str, Any] | None:
        _code, got = await api.call("GET", f"{API}/crawls/{crawl_id}")
        return got["crawl"] if got["crawl"]["status"] != "running" else None

    return await wait_for(finished, timeout, f"crawl {crawl_id} to finish")


async def pages_of(api: Api, crawl_id: str) -> list[dict[str, Any]]:
    code, body = await api.call("GET", f"{API}/queue_tasks?crawl={crawl_id}&limit=500")
    assert code == 200, body
    return body["tasks"]


def paths(site: CrawlSite, pages: list[dict[str, Any]]) -> set[str]:
    return {p["url"].removeprefix(site.base) for p in pages}


@pytest.fixture
def site(io_loop):
    made = io_loop.run_sync(lambda: _make())
    yield made
    made.stop()


async def _make() -> CrawlSite:
    return CrawlSite()


@pytest.mark.gen_test(timeout=60)
async def test_a_host_crawl_fetches_each_page_once_within_depth_obeying_robots_with_sitemap_pages(api, site):
    crawl = await crawl_until_done(api, {"url": site.url("/"), "max_depth": 2, "tags": ["docs"]})
    pages = await pages_of(api, crawl["id"])
    assert paths(site, pages) == {"/", "/a", "/b", "/c", "/docs/", "/item?id=1", "/item?id=2", "/a/deeper", "/b/1",
                                  "/b/2", "/docs/guide", "/docs/api", "/from-sitemap", "/docs/in-sitemap"}
    assert crawl["status"] == "finished" and crawl["finished_at"] is not None
    assert crawl["discovered"] == len(pages) and crawl["counts"]["completed"] == len(pages)
    assert crawl["skipped"]["robots"] == 1 and crawl["skipped"]["scope"] >= 1
    assert crawl["skipped"]["duplicate"] >= 1  # / from /a (/links gives a page each URL once already)
    assert all(count == 1 for path, count in site.hits.items()), site.hits  # each page, robots.txt, sitemap once
    assert "/private/secret" not in site.hits and "/a/deeper/more" not in site.hits  # robots; depth 3
    by_path = {p["url"].removeprefix(site.base): p for p in pages}
    assert by_path["/"]["depth"] == 0 and by_path["/"]["parent_id"] is None
    assert by_path["/a"]["depth"] == 1 and by_path["/a"]["parent_id"] == by_path["/"]["id"]
    assert by_path["/a/deeper"]["depth"] == 2 and by_path["/a/deeper"]["parent_id"] == by_path["/a"]["id"]
    assert all(p["crawl_id"] == crawl["id"] and p["tags"] == ["docs"] for p in pages)
    code, listed = await api.call("GET", f"{API}/crawls")
    assert code == 200 and listed["crawls"][0]["id"] == crawl["id"]


@pytest.mark.gen_test(timeout=60)
async def test_max_pages_and_max_depth_are_exact(api, site):
    crawl = await crawl_until_done(api, {"url": site.url("/"), "max_pages": 4, "sitemap": "skip"})
    pages = await pages_of(api, crawl["id"])
    assert len(pages) == crawl["discovered"] == 4 and crawl["skipped"]["limit"] > 0
    shallow = await crawl_until_done(api, {"url": site.url("/a"), "max_depth": 0})  # no sitemap page either
    assert paths(site, await pages_of(api, shallow["id"])) == {"/a"}


@pytest.mark.gen_test(timeout=60)
async def test_prefix_scope_include_exclude_and_ignore_query(api, site):
    docs = await crawl_until_done(api, {"url": site.url("/docs/"), "scope": "prefix", "sitemap": "skip"})
    assert paths(site, await pages_of(api, docs["id"])) == {"/docs/", "/docs/guide", "/docs/api"}
    some = await crawl_until_done(api, {"url": site.url("/"), "max_depth": 1, "sitemap": "skip",
                                        "include": ["^/(a|b|item)"], "exclude": ["^/b"], "ignore_query": True})
    assert paths(site, await pages_of(api, some["id"])) in ({"/", "/a", "/item?id=1"}, {"/", "/a", "/item?id=2"})


@pytest.mark.gen_test(timeout=60)
async def test_sitemap_only_crawls_the_seeds_and_the_sitemaps_pages(api, site):
    crawl = await crawl_until_done(api, {"url": site.url("/"), "sitemap": "only"})
    assert paths(site, await pages_of(api, crawl["id"])) == {"/", "/from-sitemap", "/docs/in-sitemap"}


@pytest.mark.gen_test(timeout=60)
async def test_robots_ignore_fetches_disallowed_pages(api, site):
    crawl = await crawl_until_done(api, {"url": site.url("/"), "max_depth": 1, "robots": "ignore",
                                         "sitemap": "skip"})
    assert "/private/secret" in paths(site, await pages_of(api, crawl["id"]))
    assert crawl["skipped"]["robots"] == 0


@pytest.mark.gen_test(timeout=60)
async def test_cancel_stops_the_crawl_and_cancels_its_unfinished_pages(io_loop, api):
    slow = CrawlSite(slow=True)
    try:
        code, body = await api.call("POST", f"{API}/crawls", {"url": slow.url("/"), "sitemap": "skip"})
        assert code == 201
        crawl_id = body["crawl"]["id"]

        async def expanded() -> bool:
            return (await api.call("GET", f"{API}/crawls/{crawl_id}"))[1]["crawl"]["discovered"] > 1

        await wait_for(expanded, 20, "the seed's links to be queued")
        code, body = await api.call("DELETE", f"{API}/crawls/{crawl_id}")
        assert code == 200 and body["crawl"]["status"] == "cancelled"
        slow.release.set()
        pages = await pages_of(api, crawl_id)
        assert {p["status"] for p in pages if p["url"] != slow.url("/")} == {"cancelled"}
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # nothing more is queued after the cancel
            assert len(await pages_of(api, crawl_id)) == len(pages)
            break
    finally:
        slow.stop()


@pytest.mark.gen_test(timeout=30)
async def test_bad_crawl_requests_get_clear_json_errors(api, site):
    cases = [
        ({}, "invalid_request"),
        ({"url": site.url("/"), "urls": [site.url("/a")]}, "invalid_request"),
        ({"url": site.url("/"), "scope": "planet"}, "invalid_field"),
        ({"url": site.url("/"), "max_pages": 0}, "invalid_field"),
        ({"url": site.url("/"), "max_depth": 101}, "invalid_field"),
        ({"url": site.url("/"), "include": ["("]}, "invalid_field"),
        ({"url": site.url("/"), "sitemap": "maybe"}, "invalid_field"),
        ({"url": site.url("/"), "every": 3600}, "invalid_field"),
        ({"url": site.url("/"), "colour": "red"}, "unknown_field"),
        ({"url": "ftp://example.com/"}, None),
    ]
    status, answer = await api.call("POST", f"{API}/crawls", {"url": "ftp://example.com/"})
    assert not answer["error"]["message"].startswith("urls[0]"), answer  # names the field the request used
    for body, code in cases:
        status, answer = await api.call("POST", f"{API}/crawls", body)
        assert status == 400, (body, answer)
        assert code is None or answer["error"]["code"] == code, (body, answer)
    status, answer = await api.call("GET", f"{API}/crawls/nope")
    assert status == 404 and answer["error"]["code"] == "not_found"
    status, answer = await api.call("DELETE", f"{API}/crawls/nope")
    assert status == 404


@pytest.mark.gen_test(timeout=60)
async def test_robots_txt_is_read_once_per_origin_and_a_5xx_allows_nothing(api):
    strict = CrawlSite(robots="User-agent: *\nDisallow: /b\nDisallow: /docs/\n")
    down = CrawlSite(robots_status=503)
    try:
        crawl = await crawl_until_done(api, {"url": strict.url("/"), "sitemap": "skip"})
        got = paths(strict, await pages_of(api, crawl["id"]))
        assert "/b" not in got and "/docs/" not in got and "/a" in got
        assert crawl["skipped"]["robots"] == 2  # /b and /docs/
        assert strict.hits["/robots.txt"] == 1
        crawl = await crawl_until_done(api, {"url": down.url("/"), "sitemap": "skip"})
        [seed] = await pages_of(api, crawl["id"])
        assert seed["status"] == "failed" and seed["error"]["code"] == "blocked_by_robots"
        assert crawl["discovered"] == 1 and "/" not in down.hits and down.hits["/robots.txt"] == 1
    finally:
        strict.stop()
        down.stop()


@pytest.mark.gen_test(timeout=60)
async def test_a_crawl_delay_in_robots_txt_paces_the_hosts_fetches_unless_the_host_has_a_delay(api):
    paced = CrawlSite(robots="User-agent: *\nCrawl-delay: 0.3\n")
    try:
        crawl = await crawl_until_done(api, {"url": paced.url("/"), "max_depth": 1, "sitemap": "skip"})
        assert crawl["counts"]["completed"] >= 8
        gaps = [b - a for a, b in zip(paced.page_starts, paced.page_starts[1:], strict=False)]
        assert min(gaps[1:]) >= 0.25, gaps  # the seed may start before robots.txt is read; the rest are paced
        code, host = await api.call("GET", f"{API}/hosts/localhost")
        assert code == 200 and host["host"]["policy"]["min_delay_ms"] == 300
        await api.call("PUT", f"{API}/hosts/localhost", {"min_delay_ms": 0})
        paced.page_starts.clear()
        await crawl_until_done(api, {"url": paced.url("/b"), "max_depth": 1, "sitemap": "skip"})
        code, host = await api.call("GET", f"{API}/hosts/localhost")
        assert host["host"]["policy"]["min_delay_ms"] == 0  # the host's own delay wins over robots.txt's
    finally:
        paced.stop()
