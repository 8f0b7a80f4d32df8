"""The store contract for acting on many jobs: cancel_many, retry_many, delete_many (on every backend)."""

from __future__ import annotations

import pytest

from jobqueue.models import Result, TaskError, TaskIds
from jobqueue.spec import JobSpec
from jobqueue.store.base import Lease, NewTask

IDS = TaskIds()


def new() -> NewTask:
    return NewTask(IDS.new(), "https://example.com/", "example.com", JobSpec())


def result(task_id: str) -> Result:
    return Result(id=task_id, url="u", final_url="u", http_status=200, headers={}, content_type="text/plain",
                  encoding="utf-8", encoding_source="header", size=2, truncated=False, elapsed_ms=1.0,
                  fetched_at=1.0, sha256="0" * 64, body=b"ok")


async def three_states(store):
    """One completed, one failed, one queued job."""
    done, bad, waiting = await store.add([new(), new(), new()])
    [a] = await store.claim(1, 30, [])
    await store.complete(Lease(a.id, a.lease_token), result(a.id))
    [b] = await store.claim(1, 30, [])
    await store.fail(Lease(b.id, b.lease_token), TaskError("timeout", "slow"), None)
    return done, bad, waiting


@pytest.mark.gen_test
async def test_each_action_changes_only_the_jobs_in_its_states(open_store):
    store = await open_store()
    done, bad, waiting = await three_states(store)
    ids = [done.id, bad.id, waiting.id, "no-such-job"]
    cancelled = await store.cancel_many(ids)
    assert [t.id for t in cancelled] == [waiting.id] and cancelled[0].status == "cancelled"
    retried = await store.retry_many([done.id, bad.id])
    assert sorted(t.id for t in retried) == sorted([done.id, bad.id]) and {t.status for t in retried} == {"queued"}
    assert await store.get_result(done.id, with_body=True) is None  # the old result is dropped
    assert (await store.counts())["queued"] == 2
    assert await store.delete_many([done.id, waiting.id]) == [waiting.id]  # done is queued again: kept
    assert await store.get(waiting.id) is None and await store.get(done.id) is not None
    assert sum((await store.counts()).values()) == 2
    assert await store.cancel_many([]) == [] and await store.delete_many([]) == []


@pytest.mark.gen_test
async def test_delete_removes_the_result_but_keeps_a_body_another_job_reuses(open_store):
    store = await open_store()
    [first] = await store.add([new()])
    [a] = await store.claim(1, 30, [])
    await store.complete(Lease(a.id, a.lease_token), result(a.id))
    [second] = await store.add([NewTask(IDS.new(), "https://example.com/", "example.com", JobSpec(max_age=3600))])
    assert second.reused_from == first.id
    assert await store.delete_many([first.id]) == [first.id]
    assert await store.get_result(first.id, with_body=False) is None
    assert (await store.get_result(second.id, with_body=True)).body == b"ok"
