"""The store contract for count_matching: every backend counts the jobs a filter matches, by status, as its
listing finds them, and says None rather than reading past the cap.

Runs on every backend (a real SQLite file; MongoDB through the mongomock-motor mock; a real MongoDB when
JOBQUEUE_TEST_MONGODB_URL is set), like tests/test_store_contract.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from jobqueue.filters import TASK_FILTERS
from jobqueue.models import STATUSES, Result, TaskError, TaskIds
from jobqueue.spec import JobSpec
from jobqueue.store.base import Lease, NewTask, TaskFilter
from jobqueue.store.sqlite.store import SQLiteStore

IDS = TaskIds()
LEASE = 30.0


def where(**raw: str) -> TaskFilter:
    """A filter typed as in a query string."""
    return TaskFilter(**{name: TASK_FILTERS[name](value) for name, value in raw.items()})


def by_status(**n: int) -> dict[str, int]:
    return {status: n.get(status, 0) for status in STATUSES}


async def listed(store: Any, filter_: TaskFilter) -> dict[str, int]:
    """What the listing finds for the same filter, counted by status (every page)."""
    found = by_status()
    cursor = None
    while True:
        page = await store.list(filter_, 1000, cursor)
        for task in page.items:
            found[task.status] += 1
        if page.next_cursor is None:
            return found
        cursor = page.next_cursor


async def seeded(store: Any) -> None:
    """a.test: 3 queued (tag x), 2 failed with 404 (one tagged x), 1 cancelled; b.test: 2 queued, 1 running."""
    a = [NewTask(IDS.new(), f"https://a.test/p{i}", "a.test", JobSpec(tags=("x",) if i < 4 else ()))
         for i in range(6)]
    b = [NewTask(IDS.new(), f"https://b.test/p{i}", "b.test") for i in range(3)]
    added = await store.add(a)
    await store.cancel(added[5].id)
    for task in (await store.claim(2, LEASE, ["b.test"], per_host=None))[:2]:
        assert task.host == "a.test"
        await store.fail(Lease(task.id, task.lease_token), TaskError("error", "not found"), 404)
    await store.add(b)
    [running] = await store.claim(1, LEASE, ["a.test"])
    assert running.host == "b.test"


@pytest.mark.gen_test
async def test_every_store_counts_a_filter_by_status_as_its_listing_finds_it(open_store):
    store = await open_store()
    await seeded(store)
    cases = [{}, {"host": "a.test"}, {"host": "b.test"}, {"tag": "x"}, {"url": "B.TEST/p"}, {"http_status": "4xx"},
             {"http_status": "404"}, {"error": "error"}, {"host": "a.test", "tag": "x"},
             {"status": "queued", "host": "a.test"}, {"host": "nowhere.test"}, {"tag": "x", "status": "failed"}]
    for raw in cases:
        filter_ = where(**raw)
        assert await store.count_matching(filter_, 1000) == await listed(store, filter_), raw
    assert await store.count_matching(where(host="a.test"), 1000) == by_status(queued=3, failed=2, cancelled=1)
    assert await store.count_matching(where(tag="x"), 1000) == by_status(queued=2, failed=2)
    assert await store.count_matching(where(host="nowhere.test"), 1000) == by_status()
    assert await store.count_matching(where(host="b.test"), 1000) == by_status(queued=2, running=1)


@pytest.mark.gen_test
async def test_every_store_says_none_past_the_cap_and_counts_up_to_it(open_store):
    store = await open_store()
    await seeded(store)
    assert await store.count_matching(where(host="a.test"), 6) == by_status(queued=3, failed=2, cancelled=1)
    assert await store.count_matching(where(host="a.test"), 5) is None
    assert await store.count_matching(where(host="b.test"), 3) == by_status(queued=2, running=1)
    assert await store.count_matching(where(host="b.test"), 2) is None
    assert await store.count_matching(TaskFilter(), 8) is None
    assert await store.count_matching(TaskFilter(), 9) == by_status(queued=5, running=1, failed=2, cancelled=1)


def result_of(task_id: str, url: str) -> Result:
    return Result(id=task_id, url=url, final_url=url, http_status=200, headers={"content-type": "text/plain"},
                  content_type="text/plain", encoding="utf-8", encoding_source="header", size=5, truncated=False,
                  elapsed_ms=1.0, fetched_at=1.0, sha256="0" * 64, body=b"hello")


@pytest.mark.gen_test
async def test_sqlite_counts_full_text_matches_and_bounds_a_walk_by_the_rows_it_reads(tmp_path, clock):
    """SQLite only: `q` counts its full-text hits whose result is still stored; a walked filter (tag) counts when
    its range holds at most `cap` rows, else None, however few of them match."""
    store = SQLiteStore(str(tmp_path / "count.db"), synchronous="NORMAL", clock=clock)
    await store.open()
    try:
        await seeded(store)
        tasks = await store.add([NewTask(IDS.new(), f"https://c.test/{i}", "c.test") for i in range(3)])
        done = []
        for _ in tasks:
            [claimed] = await store.claim(1, LEASE, ["a.test", "b.test"])
            await store.complete(Lease(claimed.id, claimed.lease_token), result_of(claimed.id, claimed.url))
            done.append(claimed.id)
        indexed = await store.results_to_index(10)  # oldest first: the order they completed in
        urls = {task.id: task.url for task in tasks}
        assert [(r.id, r.url, r.body, r.content_type) for _seq, r in indexed] == [
            (task_id, urls[task_id], b"hello", "text/plain") for task_id in done]
        await store.index_texts([(seq, "apple pie" if n < 2 else "pear") for n, (seq, _r) in enumerate(indexed)],
                                indexed[-1][0])
        assert await store.count_matching(where(q="apple"), 10) == by_status(completed=2)
        assert await store.count_matching(where(q="apple", host="c.test"), 10) == by_status(completed=2)
        assert await store.count_matching(where(q="apple", host="a.test"), 10) == by_status()
        assert await store.count_matching(where(q="apple"), 1) is None
        await store.retry(done[0])  # its result goes: its index entry no longer counts, as it is no longer listed
        assert await store.count_matching(where(q="apple"), 10) == by_status(completed=1)
        assert await listed(store, where(q="apple")) == by_status(completed=1)
        assert await store.count_matching(where(tag="x"), 12) == by_status(queued=2, failed=2)
        assert await store.count_matching(where(tag="x"), 11) is None  # 12 jobs to read for 4 matches
    finally:
        await store.close()
