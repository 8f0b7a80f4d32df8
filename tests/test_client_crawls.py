"""Crawls through jobqueue.client against a real server and a real link graph on 127.0.0.1 (tests/crawl_site.py):
started, followed over the live stream to the end, listed page by page, cancelled, and refused with the API's code."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from jobqueue.client import APIError, AsyncClient, Client, Crawl, WaitTimeout
from tests.crawl_site import CrawlSite
from tests.helpers import wait_for

DEPTH_1 = {"/", "/a", "/b", "/c", "/docs/", "/item?id=1", "/item?id=2"}  # the site's pages one link from /


@pytest.fixture
def make_site() -> Iterator[Callable[..., CrawlSite]]:
    """Start link-graph sites (slow=True: pages other than / answer only once `release` is set) on the test's
    loop; all stopped after."""
    made: list[CrawlSite] = []

    def start(**options: Any) -> CrawlSite:
        site = CrawlSite(**options)
        made.append(site)
        return site

    yield start
    for site in made:
        site.stop()


def client_for(server: Any) -> AsyncClient:
    return AsyncClient(f"http://127.0.0.1:{server.port}")


@pytest.mark.gen_test(timeout=60)
async def test_a_crawl_is_followed_over_the_stream_to_its_end_and_listed(jq: Any, make_site: Any) -> None:
    site = make_site()
    seen: list[Crawl] = []
    async with client_for(jq) as client:
        crawl = await client.crawl(site.url("/"), max_depth=1, sitemap="skip", tags=["docs"], priority=3)
        assert crawl.status == "running" and not crawl.finished and crawl.seeds == (site.url("/"),)
        assert (crawl.max_depth, crawl.sitemap, crawl.scope, crawl.robots, crawl.tags) == (1, "skip", "host", "obey",
                                                                                       ("docs",))
        # with poll=60 REST is read only at the start and at the deadline: the stream's messages end this wait early
        started = time.monotonic()
        final = await client.wait_crawl(crawl.id, timeout=30, on_progress=seen.append, poll=60)
        assert time.monotonic() - started < 15
        assert final.status == "finished" and final.finished and final.finished_at is not None
        assert final.discovered == len(DEPTH_1) == final.counts["completed"] == final.done and final.failed == 0
        assert final.skipped["robots"] == 1 and final.skipped["scope"] >= 1 and set(final.skipped) >= {
            "robots", "scope", "duplicate", "limit"}
        assert seen[0].id == crawl.id and seen[-1] == final
        assert all(a.done <= b.done for a, b in itertools.pairwise(seen))
        assert await client.get_crawl(crawl.id) == final
        page = await client.transport.call("GET", "queue_tasks", query={"crawl": crawl.id, "limit": 50})
        assert {t["url"].removeprefix(site.base) for t in page["tasks"]} == DEPTH_1
        assert all(t["tags"] == ["docs"] and t["priority"] == 3 for t in page["tasks"])
        other = await client.crawl([site.url("/docs/"), site.url("/b")], max_pages=2, sitemap="skip")
        assert other.seeds == (site.url("/docs/"), site.url("/b")) and other.max_pages == 2
        listed = [c.id async for c in client.crawls(page_size=1)]  # one a page: the cursor is followed
        assert listed == [other.id, crawl.id]
        first, cursor = await client.crawl_page(limit=1)
        assert [c.id for c in first] == [other.id] and cursor is not None
        assert (await client.wait_crawl(other.id, timeout=30)).discovered == 2


@pytest.mark.gen_test(timeout=60)
async def test_a_cancelled_crawl_ends_the_wait_and_keeps_its_finished_pages(jq: Any, make_site: Any) -> None:
    site = make_site(slow=True)
    async with client_for(jq) as client:
        crawl = await client.crawl(site.url("/"), sitemap="skip")

        async def seed_done() -> Crawl | None:
            now = await client.get_crawl(crawl.id)
            return now if now.counts.get("completed") == 1 and now.discovered > 1 else None

        await wait_for(seed_done, 20, "the seed page completed and its links queued")
        with pytest.raises(WaitTimeout, match=rf"crawl {crawl.id} is still running after 0.3 s \(1/\d+ pages done\)"):
            await client.wait_crawl(crawl.id, timeout=0.3)
        waiting = asyncio.ensure_future(client.wait_crawl(crawl.id, timeout=30))
        cancelled = await client.cancel_crawl(crawl.id)
        assert cancelled.status == "cancelled" and cancelled.finished
        final = await waiting
        assert final.status == "cancelled" and final.counts["completed"] == 1
        assert final.counts["cancelled"] == final.discovered - 1 > 0
        assert (await client.cancel_crawl(crawl.id)).status == "cancelled"  # again: nothing more to do


@pytest.mark.gen_test(timeout=30)
async def test_bad_crawls_and_unknown_ids_raise_the_apis_error(jq: Any, make_site: Any) -> None:
    site = make_site()
    async with client_for(jq) as client:
        cases: dict[str, tuple[dict[str, Any], str]] = {
            "max_pages": ({"max_pages": 0}, "max_pages: must be a whole number from 1 to 1000000"),
            "scope": ({"scope": "planet"}, "scope: must be one of host, domain, prefix"),
            "include": ({"include": ["("]}, "include[0]: not a valid regular expression"),
            "unknown": ({"depth": 3}, "depth: not a crawl field"),
        }
        for name, (options, message) in cases.items():
            with pytest.raises(APIError) as caught:
                await client.crawl(site.url("/"), **options)
            assert caught.value.status == 400 and message in caught.value.message, name
        with pytest.raises(APIError) as caught:
            await client.crawl("htp://x/")
        assert caught.value.status == 400 and "htp" in caught.value.message
        for call in (client.get_crawl, client.cancel_crawl, client.wait_crawl):
            with pytest.raises(APIError) as caught:
                await call("0" * 26)
            assert (caught.value.status, caught.value.code) == (404, "not_found"), call
        assert [c async for c in client.crawls()] == []  # nothing was started


@pytest.mark.gen_test(timeout=60)
async def test_the_blocking_client_crawls(jq: Any, make_site: Any) -> None:
    site = make_site()

    def use() -> tuple[Crawl, list[str], list[int]]:
        with Client(f"http://127.0.0.1:{jq.port}") as client:
            crawl = client.crawl(site.url("/"), max_depth=1, sitemap="skip")
            moved: list[int] = []
            final = client.wait_crawl(crawl.id, timeout=30, on_progress=lambda c: moved.append(c.done))
            return final, [c.id for c in client.crawls()], moved

    final, listed, moved = await asyncio.to_thread(use)
    assert final.status == "finished" and final.counts["completed"] == len(DEPTH_1) and listed == [final.id]
    assert moved[-1] == len(DEPTH_1)
