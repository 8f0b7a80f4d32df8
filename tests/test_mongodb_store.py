"""What the MongoDB backend does without transactions: shared bodies, crash windows, count repair.

Runs on mongomock-motor (an in-memory mock of MongoDB, not a server) and on a real MongoDB when
JOBQUEUE_TEST_MONGODB_URL is set. A "crash" is simulated by making the write after it raise, as a
process dying there would leave the database.
"""

from __future__ import annotations

import pytest

from jobqueue.errors import IdempotencyConflict, NotFound
from jobqueue.idempotency import IdempotencyKey, IdempotentAdd, StoredAnswer
from jobqueue.models import Result, TaskIds
from jobqueue.spec import JobSpec
from jobqueue.store.base import Lease, NewTask, StoreError
from tests.store_backends import BACKENDS

pytestmark = pytest.mark.parametrize("open_store", [p for p in BACKENDS if p.values[0] != "sqlite"], indirect=True)
LEASE = 30.0
IDS = TaskIds()
URL = "https://example.com/page"


def task(spec: JobSpec | None = None, batch_id: str | None = None) -> NewTask:
    return NewTask(IDS.new(), URL, "example.com", spec or JobSpec(), batch_id)


async def fetched(store, body: bytes = b"the page"):
    [new] = await store.add([task()])
    [claimed] = await store.claim(1, LEASE, [])
    result = Result(id=new.id, url=URL, final_url=URL, http_status=200, headers={}, content_type="text/plain",
                    encoding="utf-8", encoding_source="header", size=len(body), truncated=False, elapsed_ms=1.0,
                    fetched_at=1.0, sha256="0" * 64, body=body)
    return await store.complete(Lease(claimed.id, claimed.lease_token), result)


def crash_at(store, method: str) -> None:
    """Make `store.<method>` fail as if the process died right before it."""
    async def died(*_args, **_kwargs):
        raise StoreError(f"the process died before {method} (simulated)")

    setattr(store, method, died)


def render(tasks) -> StoredAnswer:
    return StoredAnswer(201, ",".join(t.id for t in tasks), "/x")


@pytest.mark.gen_test
async def test_a_shared_body_lives_until_the_last_job_naming_it_lets_go(open_store):
    store = await open_store()
    first = await fetched(store)
    [reused] = await store.add([task(JobSpec(max_age=60))])
    assert reused.reused_from == first.id and await store.db.bodies.count_documents({}) == 1
    await store.retry(first.id)
    assert await store.db.bodies.count_documents({}) == 1
    assert (await store.get_result(reused.id, with_body=True)).body == b"the page"
    await store.retry(reused.id)
    assert await store.db.bodies.count_documents({}) == 0


@pytest.mark.gen_test
async def test_a_source_retried_between_lookup_and_insert_leaves_the_new_job_queued(open_store):
    store = await open_store()
    first = await fetched(store)
    lookup = store._fresh_sources

    async def retried_meanwhile(tasks, now):
        found = await lookup(tasks, now)
        await store.retry(first.id)  # another process, between our lookup and our insert
        return found

    store._fresh_sources = retried_meanwhile
    [again] = await store.add([task(JobSpec(max_age=60))])
    assert again.status == "queued" and again.reused_from is None
    stored = await store.get(again.id)
    assert stored.status == "queued" and await store.get_result(again.id, with_body=False) is None
    assert await store.db.bodies.count_documents({}) == 0
    assert (await store.counts())["queued"] == 2


@pytest.mark.gen_test
async def test_a_keyed_add_that_died_before_keeping_its_answer_is_replayed_not_stored_twice(open_store, clock):
    store = await open_store()
    key = IdempotencyKey("ip:1", "k", "fp")
    assert await store.idempotency_begin(key, 10) is None
    crash_at(store, "_keep_answer")
    new = [task(), task()]
    with pytest.raises(StoreError):
        await store.add(new, IdempotentAdd(key, render))
    repeat = await open_store()  # the client repeats the request to another process
    with pytest.raises(IdempotencyConflict):
        await repeat.idempotency_begin(key, 10)  # the dead request's lock has not run out yet
    clock.advance(11)
    replayed = await repeat.idempotency_begin(key, 10)
    assert replayed == render(new)
    assert (await repeat.counts())["queued"] == 2
    assert await repeat.idempotency_begin(key, 10) == replayed


@pytest.mark.gen_test
async def test_a_keyed_add_whose_answer_could_not_be_written_is_replayed_after_the_request_failed(open_store):
    store = await open_store()
    key = IdempotencyKey("ip:1", "k", "fp")
    assert await store.idempotency_begin(key, 10) is None
    crash_at(store, "_keep_answer")  # the database failed on that write: a 503, and the handler frees the key
    new = [task()]
    with pytest.raises(StoreError):
        await store.add(new, IdempotentAdd(key, render))
    await store.idempotency_abort(key)
    assert await store.idempotency_begin(key, 10) == render(new)  # the client's retry: no second job
    assert (await store.counts())["queued"] == 1


@pytest.mark.gen_test
async def test_a_keyed_add_that_died_before_storing_its_jobs_frees_the_key(open_store, clock):
    store = await open_store()
    key = IdempotencyKey("ip:1", "k", "fp")
    assert await store.idempotency_begin(key, 10) is None
    plan = store._plan

    async def died_after_planning(*args):
        await plan(*args)
        raise StoreError("the process died before insert_many (simulated)")

    store._plan = died_after_planning
    with pytest.raises(StoreError):
        await store.add([task()], IdempotentAdd(key, render))
    repeat = await open_store()
    clock.advance(11)
    assert await repeat.idempotency_begin(key, 10) is None
    [added] = await repeat.add([task()], IdempotentAdd(key, render))
    assert await repeat.idempotency_begin(key, 10) == StoredAnswer(201, added.id, "/x")
    assert (await repeat.counts())["queued"] == 1


@pytest.mark.gen_test
async def test_a_keyed_batch_sealed_before_its_process_died_is_replayed(open_store, clock):
    store = await open_store()
    key = IdempotencyKey("ip:1", "kb", "fp")
    assert await store.idempotency_begin(key, 10) is None
    await store.create_batch("b", 1, (), 300)
    await store.add([task(batch_id="b")])
    crash_at(store, "_keep_answer")
    with pytest.raises(StoreError):
        await store.seal_batch("b", (key, StoredAnswer(201, '{"batch": "b"}', "/b")))
    repeat = await open_store()
    clock.advance(11)
    assert await repeat.idempotency_begin(key, 10) == StoredAnswer(201, '{"batch": "b"}', "/b")
    assert (await repeat.get_batch("b")).counts["queued"] == 1


@pytest.mark.gen_test
async def test_sealing_repairs_counts_a_dead_process_left_behind(open_store, clock):
    store = await open_store()
    await store.create_batch("b", 3, (), 300)
    jobs = await store.add([task(batch_id="b") for _ in range(3)])
    # a process cancelled a job and died before moving its batch's counts
    await store.db.jobs.update_one({"_id": jobs[0].id}, {"$set": {"status": "cancelled"}})
    sealed = await store.seal_batch("b", None)
    assert sealed.counts == {"queued": 2, "running": 0, "completed": 0, "failed": 0, "cancelled": 1}
    first = await store.claim(2, LEASE, [])
    clock.advance(LEASE + 1)
    again = await store.claim(2, LEASE, [])  # the leases ran out: running again, not counted twice
    assert {t.id for t in again} == {t.id for t in first}
    assert (await store.get_batch("b")).counts == {"queued": 0, "running": 2, "completed": 0, "failed": 0,
                                                   "cancelled": 1}


@pytest.mark.gen_test
async def test_a_batch_being_dropped_cannot_be_sealed(open_store, clock, monkeypatch):
    from jobqueue.store.mongodb import batches as mongodb_batches

    monkeypatch.setattr(mongodb_batches, "DROP_LIMIT", 2)
    store = await open_store()
    await store.create_batch("slow", 4, (), 60)
    await store.add([task(batch_id="slow") for _ in range(4)])
    clock.advance(61)
    assert await store.drop_abandoned_batches() == 2
    with pytest.raises(NotFound):
        await store.seal_batch("slow", None)  # its storing process came back too late
    assert (await store.db.batches.find_one({"_id": "slow"}))["queued"] == 2  # deletes move the counts too
    assert await store.drop_abandoned_batches() == 2
    assert await store.db.batches.count_documents({}) == 0 and (await store.counts())["queued"] == 0


# --- content-addressed bodies and recurring fetches (issue #12) --------------------------------------------


async def completed_with(store, body: bytes, url: str = URL, spec: JobSpec | None = None):
    """Add a job and complete it with `body`; the task."""
    await store.add([NewTask(IDS.new(), url, "example.com", spec or JobSpec())])
    [claimed] = await store.claim(1, LEASE, [])
    return await store.complete(Lease(claimed.id, claimed.lease_token), page_result(claimed.id, body, url))


def page_result(task_id: str, body: bytes, url: str = URL) -> Result:
    return Result(id=task_id, url=url, final_url=url, http_status=200, headers={}, content_type="text/plain",
                  encoding="utf-8", encoding_source="header", size=len(body), truncated=False, elapsed_ms=1.0,
                  fetched_at=1.0, sha256="0" * 64, body=body)


@pytest.mark.gen_test
async def test_equal_bodies_in_parts_are_stored_once_and_go_with_the_last_result(open_store):
    import os

    from jobqueue.store.mongodb.bodies import PART_SIZE

    store = await open_store()
    noise = os.urandom(PART_SIZE * 2 + 10)  # incompressible: three parts
    first = await completed_with(store, noise)
    second = await completed_with(store, noise, "https://example.com/elsewhere")
    assert await store.db.bodies.count_documents({"of": {"$exists": False}}) == 1
    assert await store.db.bodies.count_documents({"of": {"$exists": True}}) == 3  # no second copy of the parts
    head = await store.db.bodies.find_one({"of": {"$exists": False}})
    assert (head["codec"], head["parts"], head["ready"], head["pending"]) == ("identity", 3, True, 0)
    assert (await store.get_result(second.id, with_body=True)).body == noise
    assert await store.delete_many([first.id]) == [first.id]
    assert (await store.get_result(second.id, with_body=True)).body == noise
    await store.retry(second.id)
    assert await store.db.bodies.count_documents({}) == 0


@pytest.mark.gen_test
async def test_a_body_a_completion_is_naming_is_not_deleted_under_it(open_store):
    store = await open_store()
    first = await completed_with(store, b"the same page")
    [new] = await store.add([task()])
    [claimed] = await store.claim(1, LEASE, [])
    finish = store._finish

    async def deleted_meanwhile(*args, **kwargs):  # another process deletes the only other result meanwhile
        assert await store.delete_many([first.id]) == [first.id]
        return await finish(*args, **kwargs)

    store._finish = deleted_meanwhile
    await store.complete(Lease(claimed.id, claimed.lease_token), page_result(new.id, b"the same page"))
    assert (await store.get_result(new.id, with_body=True)).body == b"the same page"
    assert (await store.db.bodies.find_one({}))["pending"] == 0  # unpinned once named


@pytest.mark.gen_test
async def test_a_refused_completion_with_the_same_body_leaves_the_shared_one(open_store, clock):
    store = await open_store()
    first = await completed_with(store, b"shared")
    [new] = await store.add([task()])
    [stale] = await store.claim(1, LEASE, [])
    clock.advance(LEASE + 1)
    [live] = await store.claim(1, LEASE, [])
    assert await store.complete(Lease(stale.id, stale.lease_token), page_result(new.id, b"shared")) is None
    assert (await store.get_result(first.id, with_body=True)).body == b"shared"
    assert await store.complete(Lease(live.id, live.lease_token), page_result(new.id, b"shared"))
    assert (await store.storage_stats())["distinct_bodies"] == 1


@pytest.mark.gen_test
async def test_the_pin_of_a_completion_that_died_runs_out_and_the_sweep_takes_the_body(open_store, clock):
    from jobqueue.store.mongodb.bodies import PIN_SECONDS
    from jobqueue.store.mongodb.counters import MAINTAIN_EVERY

    store = await open_store()
    [new] = await store.add([task()])
    [claimed] = await store.claim(1, LEASE, [])
    await store._store_body(Lease(new.id, claimed.lease_token), b"never named")  # then the process died
    await store.maintain()
    assert await store.db.bodies.count_documents({}) == 1  # pinned: its completion may be under way
    clock.advance(PIN_SECONDS + MAINTAIN_EVERY + 1)
    await store.maintain()
    assert await store.db.bodies.count_documents({}) == 0


@pytest.mark.gen_test
async def test_a_due_time_runs_once_across_processes_a_stale_lease_and_a_retried_run(open_store, clock):
    store = await open_store()
    other = await open_store()  # a second process on the same database
    [first] = await store.add([task(JobSpec(every=60))])
    [stalled] = await store.claim(1, LEASE, [])
    clock.advance(LEASE + 1)
    [taken] = await other.claim(1, LEASE, [])
    assert await store.complete(Lease(stalled.id, stalled.lease_token), page_result(first.id, b"x")) is None
    assert await other.complete(Lease(taken.id, taken.lease_token), page_result(first.id, b"x"))
    await other.retry(first.id)
    clock.advance(1)
    [again] = await store.claim(1, LEASE, [])
    assert again.id == first.id
    await store.complete(Lease(again.id, again.lease_token), page_result(first.id, b"x"))
    runs = await store.db.jobs.find({"schedule_id": first.id}, {"due_at": 1}).to_list(None)
    assert sorted(r["due_at"] for r in runs) == [first.available_at, first.available_at + 60]
    assert (await store.counts())["queued"] == 1 and (await store.get_schedule(first.id)).runs == 2


@pytest.mark.gen_test
async def test_a_chain_broken_by_a_crash_after_the_finish_is_repaired_once(open_store, clock):
    from jobqueue.store.mongodb.counters import MAINTAIN_EVERY
    from jobqueue.store.mongodb.schedules import REPAIR_GRACE

    store = await open_store()
    [first] = await store.add([task(JobSpec(every=60))])
    [run] = await store.claim(1, LEASE, [])
    crash_at(store, "_queue_next")
    done = await store.complete(Lease(run.id, run.lease_token), page_result(run.id, b"x"))
    assert done is not None and done.status == "completed"  # recorded: not reported as "it will run again"
    assert (await store.get(run.id)).status == "completed" and (await store.counts())["queued"] == 0
    repair = await open_store()  # another process's maintenance round
    clock.advance(REPAIR_GRACE + MAINTAIN_EVERY + 1)
    await repair.maintain()
    schedule = await repair.get_schedule(first.id)
    nxt = await repair.get(schedule.next_task_id)
    assert nxt.status == "queued" and nxt.available_at == first.available_at + 120  # the next due time from now
    clock.advance(MAINTAIN_EVERY + 1)
    await repair.maintain()
    assert await repair.db.jobs.count_documents({"schedule_id": first.id}) == 2 and schedule.runs == 1


@pytest.mark.gen_test
async def test_a_run_queued_by_a_finisher_that_missed_the_stop_is_cancelled(open_store):
    store = await open_store()
    [first] = await store.add([task(JobSpec(every=60))])
    [run] = await store.claim(1, LEASE, [])
    await store.complete(Lease(run.id, run.lease_token), page_result(run.id, b"x"))
    _schedule, cancelled = await store.stop_schedule(first.id)
    assert len(cancelled) == 1
    finished = await store.db.jobs.find_one({"_id": first.id})
    assert await store._queue_next({**finished, "due_at": finished["due_at"] + 60}, store.clock()) is None
    assert await store.db.jobs.count_documents({"schedule_id": first.id, "status": "queued"}) == 0
    assert (await store.counts())["queued"] == 0 and (await store.get_schedule(first.id)).next_task_id is None


@pytest.mark.gen_test
async def test_url_changes_get_increasing_numbers(open_store, clock):
    store = await open_store()
    await store.add([task(JobSpec(every=60))])
    ids = []
    for body in (b"1", b"2", b"2", b"3"):
        [run] = await store.claim(1, LEASE, [])
        await store.complete(Lease(run.id, run.lease_token), page_result(run.id, body))
        ids.append(run.id)
        clock.advance(60)
    changes = await store.url_changes_since(0, 10)
    assert [(t, p) for _s, t, p in changes] == [(ids[1], ids[0]), (ids[3], ids[2])]
    assert [s for s, _t, _p in changes] == [1, 2] and await store.url_changes_since(1, 10) == changes[1:]
