"""The store contract for deletions in the change log: a job deleted by one process (a purge, a bulk delete,
retention) is read by every other process's follower once, so their dashboards drop it too."""

from __future__ import annotations

from typing import Any

import pytest

from jobqueue.store.base import Lease
from tests.test_store_contract import LEASE, new_tasks, result_for

PAGE = 1000


async def read_all(store: Any, position: Any, limit: int = PAGE) -> tuple[list[Any], list[str], Any]:
    """Every state and deletion after `position`, page by page, as another process's follower reads them."""
    tasks: list[Any] = []
    deleted: list[str] = []
    while True:
        page = await store.changes_after(position, limit)
        assert not page.lost
        tasks += page.tasks
        deleted += page.deleted
        position = page.position
        if not page.more:
            return tasks, deleted, position


async def finished(store: Any, n: int) -> list[Any]:
    """`n` jobs run to completion."""
    added = await store.add(new_tasks(n))
    for task in await store.claim(n, LEASE, []):
        assert await store.complete(Lease(task.id, task.lease_token), result_for(task.id)) is not None
    return added


@pytest.mark.gen_test
async def test_every_way_of_deleting_jobs_reaches_a_follower_once(open_store, clock):
    store, follower = await open_store(), await open_store()
    _, _, position = await read_all(follower, None)
    kept = await finished(store, 2)
    doomed = await finished(store, 4)
    states, deleted, position = await read_all(follower, position)  # read before any deletion: every state
    assert len(states) == 6 * 3 and deleted == []

    clock.advance(1)
    purged = await store.delete_many([doomed[0].id])  # DELETE /queue_tasks/:id?purge=true
    bulk = await store.delete_many([doomed[1].id, doomed[2].id, kept[0].id + "x"])  # a bulk delete's chunk
    assert purged == [doomed[0].id] and sorted(bulk) == sorted([doomed[1].id, doomed[2].id])
    states, deleted, position = await read_all(follower, position)
    assert states == [] and sorted(deleted) == sorted(t.id for t in doomed[:3])

    clock.advance(3600)
    spared = await store.delete_many([]), await store.delete_many([kept[1].id + "x"])
    assert spared == ([], [])
    retained, _ = await store.purge_finished(clock() - 60, 0, 100)  # retention: the rest are past the cutoff
    assert sorted(retained) == sorted([doomed[3].id, *(t.id for t in kept)])
    states, deleted, position = await read_all(follower, position)
    assert states == [] and sorted(deleted) == sorted(retained)
    assert (await follower.changes_after(position, PAGE)).deleted == []  # nothing twice


@pytest.mark.gen_test
async def test_a_follower_that_reads_late_gets_the_deletion_and_none_of_the_deleted_jobs_states(open_store, clock):
    store, follower = await open_store(), await open_store()
    _, _, position = await read_all(follower, None)
    [gone, stays] = await finished(store, 2)
    clock.advance(1)
    assert await store.delete_many([gone.id]) == [gone.id]
    states, deleted, _ = await read_all(follower, position)
    assert deleted == [gone.id]
    assert [(t.id, t.status) for t in states] == [(stays.id, s) for s in ("queued", "running", "completed")]
