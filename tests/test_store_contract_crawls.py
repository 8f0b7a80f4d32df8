"""The store contract for crawls: pages are jobs with a crawl, each page once per crawl (across processes too),
`max_pages` exact, a completed page's links queued with its completion, finished when no page is left, cancel.

Runs on every backend (a real SQLite file; MongoDB through the mongomock-motor mock; a real MongoDB when
JOBQUEUE_TEST_MONGODB_URL is set), like tests/test_store_contract.py, which holds the closed-store checks.
"""

from __future__ import annotations

import asyncio

import pytest

from jobqueue.models import CrawlLinks, TaskIds
from jobqueue.store.base import Lease, NewCrawl, NewTask, NotFound, TaskFilter
from tests.test_store_contract import LEASE, result_for

IDS = TaskIds()


def page(crawl_id: str, path: str, depth: int = 0, parent: str | None = None) -> NewTask:
    url = f"https://site.test/{path}"
    return NewTask(IDS.new(), url, "site.test", crawl_id=crawl_id, depth=depth, parent_id=parent, crawl_key=url)


def crawl(crawl_id: str, max_pages: int = 100, seeding: float = 0.0) -> NewCrawl:
    return NewCrawl(crawl_id, ["https://site.test/"], {"scope": "host", "max_pages": max_pages}, max_pages,
                    tags=("docs",), seeding_seconds=seeding)


async def run_all(store, links_of=None):
    """Claim and complete every queued page (with the links `links_of(task)` gives), until none is left."""
    while True:
        claimed = await store.claim(50, LEASE, [])
        if not claimed:
            return
        for task in claimed:
            result = result_for(task.id)
            result.crawl_links = links_of(task) if links_of else None
            await store.complete(Lease(task.id, task.lease_token), result)


@pytest.mark.gen_test
async def test_a_crawl_queues_its_seeds_as_pages_and_lists_them(open_store):
    store = await open_store()
    made, seeds = await store.create_crawl(crawl("c1"), [page("c1", ""), page("c1", "a"), page("c1", "")])
    assert made.id == "c1" and made.status == "running" and made.discovered == 2
    assert made.skipped["duplicate"] == 1 and made.counts["queued"] == 2 and made.tags == ("docs",)
    assert [(t.crawl_id, t.depth, t.parent_id) for t in seeds] == [("c1", 0, None)] * 2
    got = await store.get(seeds[0].id)
    assert got.crawl_id == "c1" and got.depth == 0
    listed = await store.list(TaskFilter(crawl="c1"), 10, None)
    assert {t.id for t in listed.items} == {t.id for t in seeds}
    assert (await store.list(TaskFilter(crawl="other"), 10, None)).items == []
    assert (await store.counts())["queued"] == 2
    assert await store.get_crawl("missing") is None
    light = await store.get_crawl("c1", counted=False)  # one row, whatever the crawl's size: its pages not counted
    assert (light.id, light.status, light.discovered, light.counts, light.skipped) == \
        ("c1", "running", 2, {}, made.skipped)
    assert await store.get_crawl("missing", counted=False) is None


@pytest.mark.gen_test
async def test_completed_pages_queue_their_links_once_up_to_max_pages_then_the_crawl_finishes(open_store):
    store = await open_store()
    await store.create_crawl(crawl("c2", max_pages=5), [page("c2", "")])

    def links(task):
        depth = task.depth + 1
        return CrawlLinks([page("c2", p, depth, task.id) for p in ("", "a", "b", "c", "d", "e", "f")],
                          {"scope": 2, "robots": 1})

    await run_all(store, links)
    done = await store.get_crawl("c2")
    assert done.status == "finished" and done.finished_at is not None
    assert done.discovered == 5 and done.counts["completed"] == 5 and done.counts["queued"] == 0
    # a link the crawl has is a duplicate, whether or not it is full; a new one past max_pages is over the limit:
    # the seed's links hold 1 known and 6 new (4 taken), each of the 4 pages' links 5 known and 2 new
    assert (done.skipped["duplicate"], done.skipped["limit"]) == (1 + 4 * 5, 2 + 4 * 2)
    assert done.skipped["scope"] == 2 * 5 and done.skipped["robots"] == 5
    pages = (await store.list(TaskFilter(crawl="c2"), 50, None)).items
    assert len({t.url for t in pages}) == len(pages) == 5
    children = [t for t in pages if t.depth == 1]
    assert children and all(t.parent_id is not None for t in children)


@pytest.mark.gen_test
async def test_max_pages_is_exact_when_processes_add_the_same_and_different_pages_at_once(open_store):
    first = await open_store()
    others = [await open_store() for _ in range(3)]
    await first.create_crawl(crawl("c3", max_pages=40, seeding=600.0), [])  # running while its sitemaps are read
    await asyncio.gather(*(
        store.add_crawl_pages("c3", CrawlLinks([page("c3", f"p{n}", 1) for n in range(k, k + 30)]))
        for k, store in zip((0, 10, 20, 30), [first, *others], strict=True)))
    done = await first.get_crawl("c3")
    pages = (await first.list(TaskFilter(crawl="c3"), 100, None)).items
    assert done.discovered == len(pages) == 40
    assert len({t.url for t in pages}) == 40
    assert done.skipped["duplicate"] + done.skipped["limit"] == 120 - 40


@pytest.mark.gen_test
async def test_a_crawl_reading_its_sitemaps_does_not_finish_until_they_are_read(open_store):
    store = await open_store()
    await store.create_crawl(crawl("c4", seeding=600.0), [page("c4", "")])
    await run_all(store)
    waiting = await store.get_crawl("c4")
    assert waiting.status == "running" and waiting.seeding
    added = await store.add_crawl_pages("c4", CrawlLinks([page("c4", "from-sitemap", 1)]), seeded=True)
    assert [t.url for t in added] == ["https://site.test/from-sitemap"]
    assert (await store.get_crawl("c4")).status == "running"
    await run_all(store)
    done = await store.get_crawl("c4")
    assert done.status == "finished" and not done.seeding and done.counts["completed"] == 2


@pytest.mark.gen_test
async def test_a_crawl_without_pages_left_finishes_at_once_and_pages_of_a_stopped_crawl_are_not_queued(open_store):
    store = await open_store()
    made, _ = await store.create_crawl(crawl("c5"), [])
    assert made.status == "finished"
    assert await store.add_crawl_pages("c5", CrawlLinks([page("c5", "late")])) == []


@pytest.mark.gen_test
async def test_cancel_stops_the_crawl_growing_and_cancels_unfinished_pages_in_chunks(open_store):
    store = await open_store()
    await store.create_crawl(crawl("c6"), [page("c6", f"s{n}") for n in range(5)])
    [running] = await store.claim(1, LEASE, [])
    cancelled_crawl, first = await store.cancel_crawl("c6", 3)
    assert cancelled_crawl.status == "cancelled" and len(first) == 3
    _, rest = await store.cancel_crawl("c6", 3)
    _, none = await store.cancel_crawl("c6", 3)
    assert len(rest) == 2 and none == []
    done = await store.get_crawl("c6")
    assert done.counts["cancelled"] == 5 and done.finished_at is not None
    late = result_for(running.id)
    late.crawl_links = CrawlLinks([page("c6", "late", 1, running.id)])
    assert await store.complete(Lease(running.id, running.lease_token), late) is None  # its lease is gone
    assert (await store.get_crawl("c6")).discovered == 5
    with pytest.raises(NotFound):
        await store.cancel_crawl("missing", 3)


@pytest.mark.gen_test
async def test_crawls_are_listed_newest_first_a_page_at_a_time(open_store, clock):
    store = await open_store()
    for n in range(3):
        await store.create_crawl(crawl(f"l{n}"), [page(f"l{n}", "")])
        clock.advance(1)
    first = await store.list_crawls(2, None)
    assert [c.id for c in first.items] == ["l2", "l1"] and first.next_cursor
    second = await store.list_crawls(2, first.next_cursor)
    assert [c.id for c in second.items] == ["l0"] and second.next_cursor is None


@pytest.mark.gen_test
async def test_a_crawl_whose_sitemap_reader_died_waits_and_is_taken_over_by_one_process(open_store, clock):
    first = await open_store()
    second = await open_store()
    await first.create_crawl(crawl("s1", seeding=60.0), [page("s1", "")])
    await run_all(first)
    assert await first.take_stalled_seeding(60.0, 10) == []  # still within its time
    clock.advance(61)
    assert (await first.get_crawl("s1")).status == "running"  # not finished without its sitemaps
    taken = await asyncio.gather(first.take_stalled_seeding(60.0, 10), second.take_stalled_seeding(60.0, 10))
    assert sorted(len(t) for t in taken) == [0, 1] and [c.id for t in taken for c in t] == ["s1"]
    await second.add_crawl_pages("s1", CrawlLinks([]), seeded=True)
    done = await first.get_crawl("s1")
    assert done.status == "finished" and not done.seeding
    assert await first.take_stalled_seeding(60.0, 10) == []
