"""The store contract for the change log (`changes_after`, `prune_changes`): what lets every process show
every process's job states, each once and in order, whatever their number and however many share a time."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pymongo.errors import AutoReconnect

from jobqueue.models import TaskError
from jobqueue.store.base import ChangePage, Lease
from tests.test_store_contract import LEASE, new_tasks, result_for

PAGE = 1000


async def read_all(store: Any, position: Any, limit: int = PAGE) -> tuple[list[Any], Any, list[ChangePage]]:
    """Every change after `position`, page by page, as another process's follower reads them."""
    tasks: list[Any] = []
    pages = []
    while True:
        page = await store.changes_after(position, limit)
        pages.append(page)
        tasks += page.tasks
        position = page.position
        if not page.more:
            return tasks, position, pages


@pytest.mark.gen_test(timeout=60)
async def test_more_changes_than_a_page_made_at_one_instant_each_arrive_once_in_order(open_store, clock):
    writer, other_writer, follower = await open_store(), await open_store(), await open_store()
    await writer.add(new_tasks(3))  # made before the follower starts: never returned
    clock.advance(1)
    _, position, _ = await read_all(follower, None)
    # one insert of 1,500 jobs and 300 more from another process: all stamped at the same instant
    added = await writer.add(new_tasks(1500)) + await other_writer.add(new_tasks(300, host="other.example"))
    claimed = await other_writer.claim(4, LEASE, [])
    done = await writer.complete(Lease(claimed[0].id, claimed[0].lease_token), result_for(claimed[0].id))
    assert done is not None

    seen, position, pages = await read_all(follower, position)
    assert [len(p.tasks) for p in pages] == [1000, 805] and pages[0].more and not pages[1].more
    assert not any(p.lost for p in pages)
    assert [(t.id, t.status) for t in seen[:1800]] == [(t.id, "queued") for t in added]
    assert sorted((t.id, t.status) for t in seen[1800:1804]) == sorted((t.id, "running") for t in claimed)
    assert (seen[-1].id, seen[-1].status) == (done.id, "completed")
    assert (await follower.changes_after(position, PAGE)).tasks == []  # nothing twice


@pytest.mark.gen_test
async def test_every_state_of_a_job_arrives_as_that_change_left_it(open_store, clock):
    store, follower = await open_store(), await open_store()
    _, position, _ = await read_all(follower, None)
    [task] = await store.add(new_tasks(1))
    clock.advance(1)
    [first] = await store.claim(1, LEASE, [])
    clock.advance(1)
    await store.reschedule(Lease(task.id, first.lease_token), clock() - 1, TaskError("http_error", "HTTP 503"), 503)
    clock.advance(1)
    [second] = await store.claim(1, LEASE, [])
    clock.advance(1)
    await store.complete(Lease(task.id, second.lease_token), result_for(task.id))

    states, _, _ = await read_all(follower, position)  # all five read at once, after the job finished
    assert [(t.status, t.attempts) for t in states] == [("queued", 0), ("running", 1), ("queued", 1), ("running", 2),
                                                        ("completed", 2)]
    assert [t.updated_at for t in states] == sorted(t.updated_at for t in states)
    retry, running, completed = states[2], states[3], states[4]
    assert (retry.http_status, retry.error.code, retry.finished_at) == (503, "http_error", None)
    assert running.finished_at is None and running.started_at == states[0].created_at + 3
    assert (completed.http_status, completed.error) == (200, None) and completed.finished_at is not None
    assert [len(t.attempt_log) for t in states] == [0, 0, 1, 1, 2]
    assert all(t.url == task.url and t.lease_token is None for t in states)


@pytest.mark.gen_test
async def test_pruned_changes_are_gone_and_a_follower_that_missed_them_is_told(open_store, clock):
    store, follower, behind = await open_store(), await open_store(), await open_store()
    clock.advance(1)
    _, position, _ = await read_all(follower, None)
    _, stalled, _ = await read_all(behind, None)
    old = await store.add(new_tasks(20))
    clock.advance(1)
    seen, position, pages = await read_all(follower, position)
    assert len(seen) == 20 and not pages[-1].lost
    clock.advance(10)
    new = await store.add(new_tasks(5))
    removed = 0
    while pruned := await store.prune_changes(clock() - 5):
        removed += pruned
    assert removed == len(old)

    seen, position, pages = await read_all(follower, position)  # it had read the pruned ones: nothing lost
    assert [t.id for t in seen] == [t.id for t in new] and not any(p.lost for p in pages)
    seen, _, pages = await read_all(behind, stalled)  # it had not: it must tell its clients to reload
    assert pages[0].lost and [t.id for t in seen] == [t.id for t in new]
    clock.advance(10)
    while await store.prune_changes(clock()):
        pass
    assert (await follower.changes_after(position, PAGE)).tasks == []


@pytest.mark.gen_test
async def test_a_writer_whose_clock_is_behind_the_followers_is_followed(open_store, clock):
    writer, follower = await open_store(), await open_store()
    writer.clock = lambda: clock() - 3  # another host, 3 s behind (or a log write that took 3 s)
    _, position, _ = await read_all(follower, None)
    clock.advance(1)
    _, position, _ = await read_all(follower, position)  # an idle look
    added = await writer.add(new_tasks(3))
    seen, lost = [], False
    for _ in range(3):
        clock.advance(0.5)
        tasks, position, pages = await read_all(follower, position)
        seen += tasks
        lost = lost or any(p.lost for p in pages)
    assert [t.id for t in seen] == [t.id for t in added] and not lost


@pytest.mark.gen_test
async def test_a_change_in_the_middle_of_the_unread_log_is_not_pruned_alone(open_store, clock):
    store, behind = await open_store(), await open_store()
    _, stalled, _ = await read_all(behind, None)
    start = clock()
    clock.advance(10)
    first = await store.add(new_tasks(1))
    clock.now = start  # a change stamped before the one committed ahead of it (its time taken before the lock)
    middle = await store.add(new_tasks(1))
    clock.now = start + 10
    last = await store.add(new_tasks(1))
    while await store.prune_changes(start + 5):
        pass

    seen, _, pages = await read_all(behind, stalled)  # every change it had not read, or told it lost some
    assert [t.id for t in seen] == [t.id for t in first + middle + last] or pages[0].lost


def _mongodb_only(store: Any) -> None:
    if not hasattr(store, "log_changes"):
        pytest.skip("SQLite's log is written by triggers in the transaction that makes the change")


@pytest.mark.gen_test
async def test_a_change_log_write_that_fails_makes_followers_resync(open_store, clock, monkeypatch):
    writer, follower = await open_store(), await open_store()
    _mongodb_only(writer)
    _, position, _ = await read_all(follower, None)
    collection = type(writer.db.job_changes)
    insert_many = collection.insert_many

    async def failing(self: Any, *args: Any, **kwargs: Any) -> Any:
        if self.name == "job_changes":
            raise AutoReconnect("connection closed")
        return await insert_many(self, *args, **kwargs)

    monkeypatch.setattr(collection, "insert_many", failing)
    await writer.add(new_tasks(2))  # stored, but not logged
    monkeypatch.setattr(collection, "insert_many", insert_many)
    clock.advance(1)
    later = await writer.add(new_tasks(1))
    seen, lost = [], False
    for _ in range(2):
        clock.advance(0.5)
        tasks, position, pages = await read_all(follower, position)
        seen += tasks
        lost = lost or any(p.lost for p in pages)
    assert lost and [t.id for t in seen] == [t.id for t in later]


@pytest.mark.gen_test(timeout=30)
async def test_a_slow_change_log_write_is_read_late_or_reported_lost(open_store, clock, monkeypatch):
    slow, quick, follower = await open_store(), await open_store(), await open_store()
    _mongodb_only(slow)
    _, position, _ = await read_all(follower, None)
    collection = type(slow.db.job_changes)
    insert_many = collection.insert_many
    held, release = asyncio.Event(), asyncio.Event()

    async def held_back(self: Any, *args: Any, **kwargs: Any) -> Any:
        if self.name == "job_changes" and not release.is_set():
            held.set()
            await release.wait()
        return await insert_many(self, *args, **kwargs)

    monkeypatch.setattr(collection, "insert_many", held_back)
    adding = asyncio.ensure_future(slow.add(new_tasks(1)))
    await asyncio.wait_for(held.wait(), 10)
    monkeypatch.setattr(collection, "insert_many", insert_many)
    quick_added = await quick.add(new_tasks(1))
    seen, lost = [], False
    for _ in range(3):
        tasks, position, pages = await read_all(follower, position)
        seen += tasks
        lost = lost or any(p.lost for p in pages)
        clock.advance(1.5)  # the slow write takes 4.5 s
    release.set()
    slow_added = await asyncio.wait_for(adding, 10)
    tasks, position, pages = await read_all(follower, position)
    seen += tasks
    lost = lost or any(p.lost for p in pages)
    assert sorted(t.id for t in seen) == sorted(t.id for t in slow_added + quick_added) and not lost


@pytest.mark.gen_test(timeout=30)
async def test_a_change_log_write_that_never_lands_is_given_up_and_reported_lost(open_store, clock, monkeypatch):
    stuck, quick, follower = await open_store(), await open_store(), await open_store()
    _mongodb_only(stuck)
    _, position, _ = await read_all(follower, None)
    collection = type(stuck.db.job_changes)
    insert_many = collection.insert_many
    held, never = asyncio.Event(), asyncio.Event()

    async def stalled(self: Any, *args: Any, **kwargs: Any) -> Any:
        if self.name == "job_changes":
            held.set()
            await never.wait()  # a writer that died after numbering its change
        return await insert_many(self, *args, **kwargs)

    monkeypatch.setattr(collection, "insert_many", stalled)
    adding = asyncio.ensure_future(stuck.add(new_tasks(1)))
    try:
        await asyncio.wait_for(held.wait(), 10)
        monkeypatch.setattr(collection, "insert_many", insert_many)
        quick_added = await quick.add(new_tasks(1))
        seen, position, pages = await read_all(follower, position)
        assert [t.id for t in seen] == [t.id for t in quick_added] and not any(p.lost for p in pages)
        clock.advance(60)
        later = await quick.add(new_tasks(1))
        seen, position, pages = await read_all(follower, position)
        assert any(p.lost for p in pages) and [t.id for t in seen] == [t.id for t in later]
        seen, position, pages = await read_all(follower, position)
        assert seen == [] and not any(p.lost for p in pages)  # told once
    finally:
        adding.cancel()
