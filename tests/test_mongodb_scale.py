"""The MongoDB store at scale, every part a mock can show (issue #15): counters, batch claims, bodies, the
URL's options, error causes, ambiguous completions and the change stream's recovery.

Runs on mongomock-motor (an in-memory mock of MongoDB, not a server) and on a real MongoDB when
JOBQUEUE_TEST_MONGODB_URL is set; what only a server can show (query plans, failovers, failCommand)
is in test_mongodb_real.py. A driver failure is injected at the driver's edge: a wrapper around the
database whose collection raises the error a dropped connection would, after (or instead of) the
real call.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

import pytest
from pymongo.errors import AutoReconnect, OperationFailure

from jobqueue.models import Result, TaskError, TaskIds
from jobqueue.store.base import Lease, NewTask, StoreError
from jobqueue.store.mongodb.bodies import PART_SIZE, SWEEP_GRACE
from jobqueue.store.mongodb.counters import MAINTAIN_EVERY
from tests.store_backends import BACKENDS

pytestmark = pytest.mark.parametrize("open_store", [p for p in BACKENDS if p.values[0] != "sqlite"], indirect=True)
LEASE = 30.0
IDS = TaskIds()
STATUSES = ("queued", "running", "completed", "failed", "cancelled")


def tasks(n: int, host: str = "example.com") -> list[NewTask]:
    return [NewTask(IDS.new(), f"https://{host}/{i}", host) for i in range(n)]


def result(task_id: str, body: bytes = b"the page", http_status: int = 200) -> Result:
    return Result(id=task_id, url="https://example.com/", final_url="https://example.com/", http_status=http_status,
                  headers={}, content_type="text/html", encoding="utf-8", encoding_source="header", size=len(body),
                  truncated=False, elapsed_ms=1.0, fetched_at=1.0, sha256="0" * 64, body=body)


async def exact(store: Any) -> dict[str, int]:
    return {s: await store.db.jobs.count_documents({"status": s}) for s in STATUSES}


class Faulty:
    """A database whose `jobs` collection raises `error` on the chosen call (after running it, if `applied`)."""

    def __init__(self, db: Any, method: str, error: Exception, applied: bool, when: Any = None) -> None:
        self._db, self.method, self.error, self.applied, self.when, self.fired = db, method, error, applied, when, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)

    def __getitem__(self, name: str) -> Any:
        return self._db[name]

    @property
    def jobs(self) -> Any:
        return FaultyCollection(self)


class FaultyCollection:
    def __init__(self, owner: Faulty) -> None:
        self.owner, self.real = owner, owner._db.jobs

    def __getattr__(self, name: str) -> Any:
        real = getattr(self.real, name)
        owner = self.owner
        if name != owner.method:
            return real

        def call(*args: Any, **kwargs: Any) -> Any:
            if owner.fired or (owner.when is not None and not owner.when(*args)):
                return real(*args, **kwargs)
            owner.fired += 1
            if name == "find":  # a cursor whose read fails
                return FailingCursor(owner.error)
            return failing(lambda: real(*args, **kwargs), owner)

        return call


async def failing(operation: Any, owner: Faulty) -> Any:
    if owner.applied:
        await operation()
    raise owner.error


class FailingCursor:
    def __init__(self, error: Exception) -> None:
        self.error = error

    async def to_list(self, *_args: Any) -> Any:
        raise self.error


@pytest.mark.gen_test
async def test_counts_are_one_document_read_that_moves_with_every_status_change(open_store):
    store = await open_store()
    other = await open_store()  # a second process moving the same counters
    added = await store.add(tasks(6))
    claimed = await other.claim(5, LEASE, [])
    await store.complete(Lease(claimed[0].id, claimed[0].lease_token), result(claimed[0].id))
    await other.fail(Lease(claimed[1].id, claimed[1].lease_token), TaskError("http_error", "no"), 500)
    await store.reschedule(Lease(claimed[2].id, claimed[2].lease_token), 0.0, TaskError("timeout", "slow"), None)
    await store.release([Lease(claimed[3].id, claimed[3].lease_token)])
    await other.cancel(added[5].id)
    await store.retry(claimed[1].id)
    await store.delete_many([claimed[0].id])
    assert await store.counts() == await exact(store) == {"queued": 3, "running": 1, "completed": 0, "failed": 0,
                                                          "cancelled": 1}
    reads: list[Any] = []
    call = store._call

    async def counted(operation: Any, allow: Any = ()) -> Any:
        reads.append(operation)
        return await call(operation, allow)

    store._call = counted
    await store.counts()
    assert len(reads) == 1  # one find_one, whatever the number of jobs


@pytest.mark.gen_test
async def test_a_recount_repairs_drift_only_one_process_at_a_time_runs_it(open_store, clock):
    store, other = await open_store(), await open_store()
    await store.add(tasks(3))
    # a process died between moving a job and moving the counters
    await store.db.jobs.update_one({}, {"$set": {"status": "cancelled"}})
    await store.db.counters.update_one({"_id": "jobs"}, {"$inc": {"running": 2}})
    assert await store.counts() != await exact(store)
    await store.maintain()  # holds the maintenance lease (a recount is due: none ran yet)
    assert await store.counts() == await exact(store) == {"queued": 2, "running": 0, "completed": 0, "failed": 0,
                                                          "cancelled": 1}
    await store.db.counters.update_one({"_id": "jobs"}, {"$inc": {"queued": 7}})
    clock.advance(400)
    assert await store._take_maintenance(clock()) is not None
    assert await other._take_maintenance(clock()) is None  # the lease is held: the other process skips it
    clock.advance(MAINTAIN_EVERY + 1)
    await other.maintain()
    assert await other.counts() == await exact(other)


@pytest.mark.gen_test
async def test_a_claim_takes_a_batch_in_order_and_gives_it_back_when_reading_it_fails(open_store):
    from jobqueue.spec import JobSpec

    store = await open_store()
    low = await store.add(tasks(3, "busy.test"))
    [high] = await store.add([NewTask(IDS.new(), "https://quiet.test/", "quiet.test", JobSpec(priority=5))])
    assert [t.id for t in await store.claim(2, LEASE, [])] == [high.id, low[0].id]
    assert [t.id for t in await store.claim(5, LEASE, ["busy.test"])] == []

    real_db = store._db
    store._db = Faulty(real_db, "find", AutoReconnect("connection closed"), applied=False,
                       when=lambda query, *_: "lease_token" in query)
    with pytest.raises(StoreError):
        await store.claim(5, LEASE, [])
    store._db = real_db
    back = [await store.get(t.id) for t in low[1:]]
    assert [(t.status, t.attempts, t.lease_token) for t in back] == [("queued", 0, None)] * 2  # not stranded
    assert await store.counts() == await exact(store)
    again = await store.claim(5, LEASE, [])
    assert [t.id for t in again] == [t.id for t in low[1:]] and all(t.attempts == 1 for t in again)


@pytest.mark.gen_test
async def test_extend_renews_all_leases_in_one_update_and_names_the_lost(open_store, clock):
    store = await open_store()
    await store.add(tasks(3))
    claimed = await store.claim(3, LEASE, [])
    await store.cancel(claimed[1].id)
    leases = [Lease(t.id, t.lease_token) for t in claimed] + [Lease(claimed[0].id, "stale")]
    assert await store.extend(leases, LEASE * 4) == [claimed[1].id, claimed[0].id]
    clock.advance(LEASE * 2)
    assert await store.claim(3, LEASE, []) == []  # renewed: not due again


@pytest.mark.gen_test
async def test_a_completion_whose_connection_dropped_after_it_applied_succeeds_once(open_store):
    store = await open_store()
    [new] = await store.add(tasks(1))
    [claimed] = await store.claim(1, LEASE, [])
    real_db = store._db
    store._db = Faulty(real_db, "find_one_and_update", AutoReconnect("connection closed"), applied=True)
    done = await store.complete(Lease(new.id, claimed.lease_token), result(new.id, b"mine"))
    store._db = real_db
    assert done is not None and done.status == "completed"
    assert (await store.get_result(new.id, with_body=True)).body == b"mine"
    assert await store.counts() == await exact(store) == {"queued": 0, "running": 0, "completed": 1, "failed": 0,
                                                          "cancelled": 0}
    assert len((await store.get(new.id)).attempt_log) == 1  # applied once


@pytest.mark.gen_test
async def test_a_completion_that_did_not_apply_before_the_drop_is_repeated(open_store):
    store = await open_store()
    [new] = await store.add(tasks(1))
    [claimed] = await store.claim(1, LEASE, [])
    real_db = store._db
    store._db = Faulty(real_db, "find_one_and_update", AutoReconnect("connection closed"), applied=False)
    done = await store.fail(Lease(new.id, claimed.lease_token), TaskError("http_error", "gone"), 410)
    store._db = real_db
    assert done is not None and done.status == "failed" and done.http_status == 410


@pytest.mark.gen_test
async def test_bodies_are_stored_by_sha256_split_and_compressed(open_store):
    store = await open_store()
    [a, b] = await store.add(tasks(2))
    [ca, cb] = await store.claim(2, LEASE, [])
    noise = os.urandom(PART_SIZE * 2 + 10)  # incompressible: three parts
    page = b"<p>hello</p>" * 50_000  # 600 kB that compress to one part
    await store.complete(Lease(a.id, ca.lease_token), result(a.id, noise))
    await store.complete(Lease(b.id, cb.lease_token), result(b.id, page))
    assert (await store.get_result(a.id, with_body=True)).body == noise
    assert (await store.get_result(b.id, with_body=True)).body == page
    head = await store.db.bodies.find_one({"_id": hashlib.sha256(noise).hexdigest()})
    assert (head["parts"], head["codec"]) == (3, "identity")
    assert await store.db.bodies.count_documents({"of": head["_id"]}) == 3
    packed = await store.db.bodies.find_one({"_id": hashlib.sha256(page).hexdigest()})
    assert (packed["parts"], packed["codec"]) == (1, "zstd") and len(packed["body"]) < len(page) / 20
    await store.retry(a.id)
    assert await store.db.bodies.count_documents({"$or": [{"_id": head["_id"]}, {"of": head["_id"]}]}) == 0


@pytest.mark.gen_test
async def test_a_body_that_went_missing_is_no_result_not_an_empty_one(open_store):
    store = await open_store()
    [new] = await store.add(tasks(1))
    [claimed] = await store.claim(1, LEASE, [])
    await store.complete(Lease(new.id, claimed.lease_token), result(new.id))
    load = store._load_body

    async def retried_meanwhile(ref):  # another process retries the job between our two reads
        await store.retry(new.id)
        return await load(ref)

    store._load_body = retried_meanwhile
    assert await store.get_result(new.id, with_body=True) is None


@pytest.mark.gen_test
async def test_orphan_bodies_are_swept_named_ones_kept(open_store, clock):
    store = await open_store()
    [kept, lost] = await store.add(tasks(2))
    claimed = {t.id: t for t in await store.claim(2, LEASE, [])}
    await store.complete(Lease(kept.id, claimed[kept.id].lease_token), result(kept.id))
    # the process died after writing the body of `lost`, before completing it
    await store._store_body(Lease(lost.id, claimed[lost.id].lease_token), os.urandom(PART_SIZE + 1))
    assert await store.db.bodies.count_documents({"task_id": lost.id}) == 2
    await store.maintain()
    assert await store.db.bodies.count_documents({"task_id": lost.id}) == 2  # too young: may be completing
    clock.advance(SWEEP_GRACE + MAINTAIN_EVERY + 1)
    await store.maintain()
    assert await store.db.bodies.count_documents({"task_id": lost.id}) == 0
    assert (await store.get_result(kept.id, with_body=True)).body == b"the page"


@pytest.mark.gen_test
async def test_values_mongodb_cannot_store_are_a_clear_error_that_leaves_the_job_leased(open_store):
    store = await open_store()
    [new] = await store.add(tasks(1))
    [claimed] = await store.claim(1, LEASE, [])
    lease = Lease(new.id, claimed.lease_token)
    with pytest.raises(StoreError, match="cannot store this value"):
        await store.complete(lease, result(new.id, http_status=10**30))
    assert await store.db.bodies.count_documents({}) == 0  # refused before the body was written
    failed = await store.fail(lease, TaskError("protocol_error", "bad status line"), None)
    assert failed.status == "failed"


@pytest.mark.gen_test
async def test_open_names_the_real_cause_of_a_failed_migration(open_store, monkeypatch):
    from jobqueue.store.mongodb import schema as mongodb_schema

    store = await open_store()
    for code, words in ((85, "conflicts with one jobqueue needs"), (13, "refused the credentials or rights")):
        async def refused(db: Any, code: int = code) -> None:
            raise OperationFailure("refused (simulated)", code=code)

        monkeypatch.setattr(mongodb_schema, "MIGRATIONS", (*mongodb_schema.MIGRATIONS[:-1],
                                                           mongodb_schema.Migration(99, "refused", refused)))
        monkeypatch.setattr(mongodb_schema, "LATEST", 99)
        again = type(store)(store.url, clock=store.clock, client_factory=store._client_factory)
        with pytest.raises(StoreError, match=words) as caught:
            await again.open()
        assert "cannot reach" not in str(caught.value)
        await again.close()
    assert (await store.counts())["queued"] == 0  # the store already open is not disturbed
