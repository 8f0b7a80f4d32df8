"""Every way a job is cancelled leaves the same job, and the same schedule, on every backend.

The paths: one cancel (DELETE /queue_tasks/:id), many (POST /queue_tasks/bulk), a batch's
(DELETE /batches/:id) and a stopped schedule's queued run (DELETE /schedules/:id); on a queued job,
a running one and one waiting for its retry (which carries its last attempt's error and status),
recurring or not. Whichever path: the job is cancelled now with nothing of its last attempt left, a
recurring run is counted by its schedule, and only the stop ends the schedule; any other cancel
queues the next due time. (Stopping a schedule cancels only a queued run: a running one finishes,
tests/test_schedules.py.)
"""

from __future__ import annotations

import dataclasses

import pytest

from jobqueue.models import Result, Task, TaskError, TaskIds
from jobqueue.spec import JobSpec
from jobqueue.store.base import Lease, NewTask

LEASE = 30.0
EVERY = 60.0
BATCH = "cancelpathsbatch"
IDS = TaskIds()
PATHS = ("cancel", "cancel_many", "cancel_batch", "stop_schedule")
STATES = ("queued", "running", "retry_waiting")
CASES = [pytest.param(path, state, recurring, id=f"{path}-{state}-{'recurring' if recurring else 'once'}")
         for path in PATHS for state in STATES for recurring in (True, False)
         if path != "stop_schedule" or (recurring and state != "running")]


async def job_in_state(store, clock, state: str, recurring: bool) -> Task:
    """A job of a sealed batch, queued, running, or queued again after a failed attempt."""
    await store.create_batch(BATCH, 1, (), 300)
    spec = JobSpec(every=EVERY) if recurring else JobSpec()
    [task] = await store.add([NewTask(IDS.new(), "https://example.com/watched", "example.com", spec, BATCH)])
    await store.seal_batch(BATCH, None)
    if state != "queued":
        [claimed] = await store.claim(1, LEASE, [])
        if state == "retry_waiting":
            error = TaskError("http_error", "HTTP 503 (attempt 1 of 3, next in 10s)")
            await store.reschedule(Lease(claimed.id, claimed.lease_token), clock() + 600, error, 503)
    clock.advance(1)
    return task


async def cancel_by(store, path: str, task: Task) -> list[Task]:
    """Cancel `task` the way `path` does; what the store says it cancelled."""
    if path == "cancel":
        return [await store.cancel(task.id)]
    if path == "cancel_many":
        return await store.cancel_many([task.id])
    if path == "cancel_batch":
        return await store.cancel_batch(BATCH, 500)
    return (await store.stop_schedule(task.schedule_id))[1]


@pytest.mark.parametrize(("path", "state", "recurring"), CASES)
@pytest.mark.gen_test
async def test_every_cancel_path_leaves_the_same_job_and_goes_on_with_its_schedule(open_store, clock, path, state,
                                                                                     recurring):
    store = await open_store()
    task = await job_in_state(store, clock, state, recurring)
    before = await store.get(task.id)
    assert before.status == ("running" if state == "running" else "queued")
    assert (before.error is not None) == (state == "retry_waiting")
    cancelled = await cancel_by(store, path, task)
    expected = dataclasses.replace(before, status="cancelled", finished_at=clock(), updated_at=clock(),
                                   http_status=None, error=None, lease_token=None)
    assert cancelled == [expected]
    assert await store.get(task.id) == expected
    if state == "running":  # its fetch's late completion is refused
        body = Result(id=task.id, url=task.url, final_url=task.url, http_status=200, headers={}, content_type=None,
                      encoding=None, encoding_source=None, size=0, truncated=False, elapsed_ms=1.0, fetched_at=1.0,
                      sha256="0" * 64, body=b"")
        assert await store.complete(Lease(task.id, before.lease_token), body) is None
    follows = recurring and path != "stop_schedule"
    counts = await store.counts()
    assert counts == {"queued": int(follows), "running": 0, "completed": 0, "failed": 0, "cancelled": 1}
    assert (await store.get_batch(BATCH)).counts["cancelled"] == 1
    if not recurring:
        return
    schedule = await store.get_schedule(task.schedule_id)
    assert schedule.runs == 1  # a cancelled run is a finished run, whichever path cancelled it
    if not follows:
        assert (schedule.stopped_at, schedule.next_task_id, schedule.next_run_at) == (clock(), None, None)
        return
    assert schedule.stopped_at is None
    following = await store.get(schedule.next_task_id)
    assert (following.status, following.schedule_id, following.batch_id) == ("queued", task.schedule_id, None)
    assert following.available_at == schedule.next_run_at == task.available_at + EVERY
    assert following.error is None and following.http_status is None and following.attempts == 0
