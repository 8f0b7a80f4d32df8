"""The store contract for the change log (`changes_after`, `prune_changes`): what lets every process show
every process's job states, each once and in order, whatever their number and however many share a time."""

from __future__ import annotations

from typing import Any

import pytest

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
