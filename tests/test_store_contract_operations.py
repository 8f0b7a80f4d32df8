"""Store contract of the operations no other contract file runs on every backend: ping, counting the schedules
that are not stopped, and the vacuum step of retention."""

from __future__ import annotations

import hashlib
import os

import pytest

from jobqueue.models import Result, TaskIds
from jobqueue.spec import JobSpec
from jobqueue.store.base import Lease, NewTask

LEASE = 30.0
IDS = TaskIds()


def result_of(task_id: str, url: str, body: bytes) -> Result:
    return Result(id=task_id, url=url, final_url=url, http_status=200, headers={}, content_type="text/plain",
                  encoding="utf-8", encoding_source="header", size=len(body), truncated=False, elapsed_ms=1.0,
                  fetched_at=1.0, sha256=hashlib.sha256(body).hexdigest(), body=body)


@pytest.mark.gen_test
async def test_ping_answers_none_from_a_healthy_database(open_store):
    """None is a database that answers and is not slow: what /healthz reports as ok."""
    store = await open_store()
    other = await open_store()
    await store.add([NewTask(IDS.new(), "https://example.com/", "example.com")])
    assert await store.ping() is None
    assert await other.ping() is None


@pytest.mark.gen_test
async def test_active_schedules_are_counted_up_to_the_limit_and_a_stopped_one_is_not(open_store):
    store = await open_store()
    assert await store.count_active_schedules(10) == 0
    added = await store.add([NewTask(IDS.new(), f"https://example.com/{i}", "example.com", JobSpec(every=60.0))
                             for i in range(3)])
    await store.add([NewTask(IDS.new(), "https://example.com/once", "example.com")])  # no schedule
    assert await store.count_active_schedules(10) == 3
    assert await store.count_active_schedules(2) == 2  # what --max-schedules needs, and no further
    await store.stop_schedule(added[0].schedule_id)
    assert await store.count_active_schedules(10) == 2


@pytest.mark.gen_test
async def test_a_vacuum_step_frees_at_most_its_pages_and_reports_what_is_left(open_store):
    """After finished jobs and their bodies are deleted, each step gives back at most `pages` pages and answers
    how many are still free, down to 0 (at once on MongoDB, which gives space back only through `compact`)."""
    store = await open_store()
    added = await store.add([NewTask(IDS.new(), f"https://example.com/{i}", "example.com") for i in range(6)])
    claimed = await store.claim(len(added), LEASE, [])
    for task in claimed:
        body = os.urandom(64 * 1024)  # incompressible and distinct: none is shared, all go
        assert await store.complete(Lease(task.id, task.lease_token), result_of(task.id, task.url, body))
    assert sorted(await store.delete_many([t.id for t in added])) == sorted(t.id for t in added)
    free = await store.vacuum_step(0)
    if store.name == "sqlite":
        assert free > 10  # the bodies' pages
    assert await store.vacuum_step(3) == max(free - 3, 0)
    assert await store.vacuum_step(1_000_000) == 0
    assert await store.vacuum_step(1_000_000) == 0
