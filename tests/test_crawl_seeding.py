"""A crawl's sitemaps are read again when the process reading them stops (killed, crashed): a real SQLite file,
the real sitemap reader and a real site on 127.0.0.1, a clock moved by hand. The crawl does not finish without
them, and exactly one process takes the reading over."""

from __future__ import annotations

import pytest

from jobqueue.addresses import AddressPolicy
from jobqueue.crawler import SEEDING_SECONDS, Crawler, sitemap_reader
from jobqueue.fetcher import FetchSettings
from jobqueue.spec import SpecLimits
from jobqueue.store.base import Lease, TaskFilter
from jobqueue.store.sqlite.store import SQLiteStore
from jobqueue.submission import SubmissionReader
from tests.crawl_site import CrawlSite
from tests.helpers import wait_for
from tests.store_backends import FakeClock
from tests.test_store_contract import LEASE, result_for


def crawler_on(store: SQLiteStore) -> Crawler:
    policy = AddressPolicy(allow_private=True)
    return Crawler(store, SubmissionReader(policy, SpecLimits()), None, sitemap_reader(FetchSettings(), policy, None))


@pytest.mark.gen_test(timeout=60)
async def test_a_stopped_sitemap_reading_is_taken_over_and_the_crawl_waits_for_it(tmp_path):
    site = CrawlSite(slow_sitemap=True)
    clock = FakeClock()
    first = SQLiteStore(str(tmp_path / "crawl.db"), clock=clock)
    second = SQLiteStore(str(tmp_path / "crawl.db"), clock=clock)
    await first.open()
    await second.open()
    try:
        dying = crawler_on(first)
        crawl, [_seed] = await dying.start({"url": site.url("/"), "max_depth": 1})
        await wait_for(lambda: _async(site.hits["/sitemap.xml"] > 0), 10, "the sitemap to be asked for")
        await dying.stop()  # the process reading it is gone; its pages were never queued
        [claimed] = await first.claim(1, LEASE, [])
        await first.complete(Lease(claimed.id, claimed.lease_token), result_for(claimed.id))
        assert (await first.get_crawl(crawl.id)).status == "running"  # waits for its sitemaps
        taker = crawler_on(second)
        assert await taker.resume_stalled() == 0  # its reader's time has not run out yet
        clock.advance(SEEDING_SECONDS + 1)
        site.release.set()
        assert await taker.resume_stalled() == 1
        assert await crawler_on(first).resume_stalled() == 0  # one process takes it over

        async def sitemap_pages() -> list[str]:
            pages = (await first.list(TaskFilter(crawl=crawl.id), 50, None)).items
            return [p.url for p in pages if p.url.endswith(("/from-sitemap", "/docs/in-sitemap"))]

        assert len(await wait_for(sitemap_pages, 20, "the sitemap's pages to be queued")) == 2
        assert not (await first.get_crawl(crawl.id)).seeding
        await taker.stop()
    finally:
        await first.close()
        await second.close()
        site.stop()


async def _async(value: bool) -> bool:
    return value


@pytest.mark.gen_test(timeout=60)
async def test_pages_completing_at_once_read_their_crawl_once(tmp_path):
    """The crawler reads a crawl's state again at most once a second, with one read however many of its pages
    complete meanwhile (each read to be checked was a store read and a new scope: 1,424 in a 10,000-page crawl)."""
    import asyncio
    import dataclasses

    store = SQLiteStore(str(tmp_path / "crawl.db"))
    await store.open()
    reads = 0
    get_crawl = store.get_crawl

    async def counted(crawl_id: str, counted: bool = True):
        nonlocal reads
        reads += 1
        return await get_crawl(crawl_id, counted)

    store.get_crawl = counted  # type: ignore[method-assign]
    try:
        crawler = crawler_on(store)
        _crawl, [seed] = await crawler.start({"url": "http://127.0.0.1:9/", "max_depth": 2, "sitemap": "skip"})
        body = b'<html><body><a href="/a">a</a><a href="/b">b</a></body></html>'
        result = dataclasses.replace(result_for(seed.id, body), url=seed.url, final_url=seed.url,
                                     content_type="text/html", headers={"content-type": "text/html"})
        found = await asyncio.gather(*(crawler.links_for(seed, result) for _ in range(20)))
        assert reads == 1
        assert all([p.url for p in links.pages] == ["http://127.0.0.1:9/a", "http://127.0.0.1:9/b"] for links in found)
        await crawler.stop()
    finally:
        await store.close()
