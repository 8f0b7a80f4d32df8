"""The MongoDB store at the exact points where a failure or another process can come in between two writes.

Runs on mongomock-motor (an in-memory mock of MongoDB, not a server) and on a real MongoDB when
JOBQUEUE_TEST_MONGODB_URL is set. Each interleaving is forced (tests/mongo_faults.py): a reply lost
after its write was applied, a check read that fails too, another process's completion or counter
move landing between a read and the write that relies on it.
"""

from __future__ import annotations

import os

import pytest
from pymongo.errors import AutoReconnect

from jobqueue.models import Result, TaskIds
from jobqueue.spec import JobSpec
from jobqueue.store.base import Lease, NewTask, StoreError
from jobqueue.store.mongodb.bodies import PART_SIZE, SWEEP_GRACE
from jobqueue.store.mongodb.schema import new_job_doc
from tests.mongo_faults import Faults
from tests.store_backends import BACKENDS

pytestmark = pytest.mark.parametrize("open_store", [p for p in BACKENDS if p.values[0] != "sqlite"], indirect=True)
LEASE = 30.0
IDS = TaskIds()
URL = "https://example.com/page"
BIG = os.urandom(PART_SIZE + 4096)  # incompressible: stored in two parts


def new(spec: JobSpec | None = None) -> NewTask:
    return NewTask(IDS.new(), URL, "example.com", spec or JobSpec())


def page(task_id: str, body: bytes) -> Result:
    return Result(id=task_id, url=URL, final_url=URL, http_status=200, headers={}, content_type="text/plain",
                  encoding="utf-8", encoding_source="header", size=len(body), truncated=False, elapsed_ms=1.0,
                  fetched_at=1.0, sha256="0" * 64, body=body)


async def running(store, spec: JobSpec | None = None) -> Lease:
    [task] = await store.add([new(spec)])
    [claimed] = await store.claim(1, LEASE, [])
    assert claimed.id == task.id
    return Lease(claimed.id, claimed.lease_token)


def counts(**given: int) -> dict[str, int]:
    return {"queued": 0, "running": 0, "completed": 0, "failed": 0, "cancelled": 0, **given}


def lose_once(what: list[str], after: bool):
    """A hook raising AutoReconnect once per entry of `what`: after the real call (its reply lost) or before it."""
    async def hook(real, *args, **kwargs):
        if not what:
            return await real(*args, **kwargs)
        what.pop()
        if after:
            await real(*args, **kwargs)
        raise AutoReconnect("connection closed (simulated)")
    return hook


@pytest.mark.gen_test
async def test_a_completion_applied_whose_reply_and_check_read_were_both_lost_is_reported_completed(open_store):
    store = await open_store()
    lease = await running(store, JobSpec(every=60))
    faults = Faults(store)
    faults.on("jobs", "find_one_and_update", lose_once(["the completion's reply"], after=True))
    faults.on("jobs", "find_one", lose_once(["the check read"], after=False))
    done = await store.complete(lease, page(lease.task_id, b"the page"))
    # was None ("lease lost"): the retry matched nothing and `applied` was never read again
    assert done is not None and done.status == "completed"
    assert await store.counts() == counts(completed=1, queued=1)  # and the schedule's next run is queued
    assert (await store.get_schedule(lease.task_id)).next_task_id not in (None, lease.task_id)


@pytest.mark.gen_test
async def test_a_completion_that_never_landed_under_a_lost_lease_is_still_none(open_store):
    store = await open_store()
    lease = await running(store)
    await store.release([lease])  # another process took the job back meanwhile
    faults = Faults(store)
    faults.on("jobs", "find_one_and_update", lose_once(["the completion"], after=False))
    faults.on("jobs", "find_one", lose_once(["the check read"], after=False))
    assert await store.complete(lease, page(lease.task_id, b"late")) is None
    assert await store.counts() == counts(queued=1)


@pytest.mark.gen_test
async def test_an_unknown_outcome_is_a_store_error_not_a_lost_lease(open_store):
    store = await open_store()
    lease = await running(store)
    faults = Faults(store)
    faults.on("jobs", "find_one_and_update", lose_once(["1", "2", "3"], after=False))
    faults.on("jobs", "find_one", lose_once(["1", "2", "3"], after=False))
    with pytest.raises(StoreError):
        await store.complete(lease, page(lease.task_id, b"the page"))


@pytest.mark.gen_test
@pytest.mark.parametrize("step", ["_unpin_body", "_moved", "_finish_run"])
async def test_a_failure_after_the_finish_does_not_report_a_completed_job_as_unrecorded(open_store, step):
    store = await open_store()
    lease = await running(store, JobSpec(every=60))

    async def failed(*_args, **_kwargs):
        raise StoreError(f"{step} failed (simulated)")

    setattr(store, step, failed)
    done = await store.complete(lease, page(lease.task_id, b"the page"))
    assert done is not None and done.status == "completed"  # was a StoreError: "it will run again"
    assert (await store.get(lease.task_id)).status == "completed"


@pytest.mark.gen_test
async def test_deleting_a_body_leaves_the_parts_of_a_new_copy_written_meanwhile(open_store):
    store = await open_store()
    first = await running(store)
    assert (await store.complete(first, page(first.task_id, BIG))).status == "completed"
    second = await running(store)
    faults = Faults(store)

    copied: list[bool] = []

    async def copy_meanwhile(real, query, *args, **kwargs):
        gone = await real(query, *args, **kwargs)
        if "rev" in query and not copied:  # the head's deletion (whichever call makes it)
            copied.append(True)
            # another process completes a job with the same body between the head's deletion and its parts'
            assert (await store.complete(second, page(second.task_id, BIG))).status == "completed"
        return gone

    faults.on("bodies", "find_one_and_delete", copy_meanwhile)
    faults.on("bodies", "delete_one", copy_meanwhile)
    await store.retry(first.task_id)  # its body goes: no other result named it when it was read
    kept = await store.get_result(second.task_id, with_body=True)
    assert copied and kept is not None and kept.body == BIG  # was None: every layout's parts were deleted


@pytest.mark.gen_test
async def test_the_sweep_deletes_every_dead_layout_of_a_body_not_one_per_body(open_store, clock):
    store = await open_store()
    lease = await running(store)
    await store.complete(lease, page(lease.task_id, BIG))
    head = await store.db.bodies.find_one({"layout": {"$ne": None}, "of": {"$exists": False}})
    sha, now = head["_id"], clock()
    for i, layout in enumerate(("dead-1:x", "dead-2:x")):  # writers that died before their parts were named
        await store.db.bodies.insert_one({"_id": f"{sha}:{layout}#0", "of": sha, "layout": layout, "task_id": "t",
                                          "created_at": now - 10 + i, "body": b"x"})
    clock.advance(SWEEP_GRACE + 1)
    await store.sweep_bodies(0.0, clock())
    layouts = {d["layout"] for d in await store.db.bodies.find({"of": sha}).to_list(None)}
    assert layouts == {head["layout"]}  # was both dead layouts left: only one layout per body was looked at
    assert (await store.get_result(lease.task_id, with_body=True)).body == BIG


@pytest.mark.gen_test
async def test_a_recount_does_not_apply_a_difference_a_late_counter_move_made_stale(open_store):
    store = await open_store()
    await store.add([new()])
    # another process inserted a job and has not moved the counters yet
    await store.db.jobs.insert_one(new_job_doc(new(), store.clock()))
    faults = Faults(store)
    landed: list[bool] = []

    async def late_move_lands(real, query, update, *args, **kwargs):
        if "$inc" in update and "recounted_at" in update.get("$set", {}) and not landed:
            landed.append(True)
            await real({"_id": "jobs"}, {"$inc": {"queued": 1, "rev": 1}})  # its move lands just before ours
        return await real(query, update, *args, **kwargs)

    faults.on("counters", "update_one", late_move_lands)
    assert (await store.recount_counters())["queued"] == 2
    assert landed and await store.counts() == counts(queued=2)  # was 3: the move was counted twice
