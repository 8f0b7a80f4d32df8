"""MongoDB schema migrations, on mongomock-motor (an in-memory mock of MongoDB, not a server).

A database written by release 0.1's own MongoStore (tests/fixtures/mongodb-release-0.1.json, made by
make_release_mongodb.py) opens with today's code and keeps every job, result and body.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from typing import Any

import pytest
from bson import json_util
from pymongo.errors import OperationFailure

from jobqueue.spec import DEFAULT_FETCH, JobSpec
from jobqueue.store.base import NewTask, StoreError, TaskFilter
from jobqueue.store.mongodb_schema import CLAIM_INDEX, CLAIM_INDEX_NAME, LATEST, MIGRATIONS, current_version, migrate
from tests.store_backends import FakeClock

DUMP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "mongodb-release-0.1.json")
WRITTEN_AT = 1_795_838_726.0  # make_release_mongodb.py's clock; its leases ran for 60 s
ADDED_FIELDS = {"priority", "reuse_key"}  # what migration 2 adds to a release 0.1 job


def mock_client() -> Any:
    from mongomock_motor import AsyncMongoMockClient

    return AsyncMongoMockClient()


def read_dump() -> dict[str, Any]:
    with open(DUMP) as handle:
        return json_util.loads(handle.read())


async def load_release_0_1(client: Any) -> dict[str, Any]:
    """Put release 0.1's documents and indexes into the mock's `jobqueue` database."""
    dump = read_dump()
    db = client.get_database("jobqueue")
    for name, docs in dump["collections"].items():
        await db[name].insert_many(docs)
    for name, indexes in dump["indexes"].items():
        for index, spec in indexes.items():
            await db[name].create_index([tuple(k) for k in spec["key"]], name=index)
    return dump


def store_on(client: Any, clock: FakeClock) -> Any:
    from jobqueue.store.mongodb import MongoStore

    return MongoStore("mongodb://mock/jobqueue", clock=clock, client_factory=lambda _url: client)


async def raw(client: Any, name: str) -> list[dict[str, Any]]:
    return await client.get_database("jobqueue")[name].find().sort("_id", 1).to_list(None)


@pytest.mark.gen_test
async def test_a_release_0_1_database_opens_and_keeps_every_job_result_and_body_on_mongomock():
    client = mock_client()
    dump = await load_release_0_1(client)
    old_jobs, old_bodies = dump["collections"]["jobs"], dump["collections"]["bodies"]
    assert len(old_jobs) == 12 and len(old_bodies) == 6
    clock = FakeClock(WRITTEN_AT + 120)
    store = store_on(client, clock)
    await store.open()
    try:
        db = client.get_database("jobqueue")
        assert await current_version(db) == LATEST
        meta = await db.meta.find_one({"_id": "schema"})
        assert sorted(meta["steps"]) == [str(m.version) for m in MIGRATIONS]
        for before, after in zip(old_jobs, await raw(client, "jobs"), strict=True):
            assert {k: v for k, v in after.items() if k not in ADDED_FIELDS} == before  # nothing else moved
            assert after["priority"] == 0 and after["reuse_key"] == DEFAULT_FETCH.reuse_key(before["url"])
        assert await raw(client, "bodies") == old_bodies
        indexes = await db.jobs.index_information()
        assert [(k, int(v)) for k, v in indexes[CLAIM_INDEX_NAME]["key"]] == CLAIM_INDEX
        assert "claim" not in indexes  # release 0.1's (status, available_at), replaced

        page = await store.list(TaskFilter(), 100, None)
        by_id = {t.id: t for t in page.items}
        assert len(by_id) == 12
        for doc in old_jobs:
            task = by_id[doc["_id"]]
            assert (task.url, task.status, task.attempts, task.finished_at, task.http_status) == (
                doc["url"], doc["status"], doc["attempts"], doc["finished_at"], doc["http_status"])
            assert (task.error.code if task.error else None) == (doc["error"] or {}).get("code")
            assert task.priority == 0 and task.tags == () and task.batch_id is None and task.fetch is DEFAULT_FETCH
        bodies = {b["task_id"]: b["body"] for b in old_bodies}
        for doc in old_jobs:
            if doc["status"] != "completed":
                continue
            result = await store.get_result(doc["_id"], with_body=True)
            assert result.body == bodies[doc["_id"]] and result.size == len(result.body)
            assert result.http_status == doc["result"]["http_status"] == doc["http_status"]
            assert hashlib.sha256(result.body).hexdigest() == doc["result"]["sha256"]
        assert await store.counts() == {"queued": 2, "running": 1, "completed": 6, "failed": 2, "cancelled": 1}

        claimed = await store.claim(10, 30.0, [])  # "/later" waits an hour; "/running"'s lease ran out
        assert [t.url.rsplit("/", 1)[1] for t in claimed] == ["retry-me", "running"]
        utf8 = next(d for d in old_jobs if d["url"].endswith("/utf8"))
        [again] = await store.add([NewTask("z-reuse", utf8["url"], utf8["host"], JobSpec(max_age=3600))])
        assert again.status == "completed" and again.reused_from == utf8["_id"]  # the backfilled reuse key
        assert (await store.get_result(again.id, with_body=True)).body == bodies[utf8["_id"]]
    finally:
        await store.close()


@pytest.mark.gen_test
async def test_migrating_again_changes_nothing_and_a_newer_database_is_refused_on_mongomock():
    client = mock_client()
    await load_release_0_1(client)
    clock = FakeClock(WRITTEN_AT + 120)
    first = store_on(client, clock)
    await first.open()
    await first.close()
    db = client.get_database("jobqueue")
    jobs = await raw(client, "jobs")
    assert await migrate(db, clock.now, "mock") == []
    second = store_on(client, clock)
    await second.open()
    await second.close()
    assert await raw(client, "jobs") == jobs
    await db.meta.update_one({"_id": "schema"}, {"$set": {"version": LATEST + 1}})
    refused = store_on(client, clock)
    with pytest.raises(StoreError, match=f"schema version {LATEST + 1}, newer than this jobqueue understands"):
        await refused.open()
    with pytest.raises(StoreError, match="closed"):
        await refused.counts()  # not opened: nothing reads the newer documents with the old meaning
    await refused.close()


@pytest.mark.gen_test
async def test_two_processes_opening_a_release_0_1_database_at_once_both_succeed_on_mongomock():
    client = mock_client()
    await load_release_0_1(client)
    clock = FakeClock(WRITTEN_AT + 120)
    stores = [store_on(client, clock) for _ in range(3)]
    await asyncio.gather(*(s.open() for s in stores))
    try:
        db = client.get_database("jobqueue")
        assert await current_version(db) == LATEST
        indexes = await db.jobs.index_information()
        assert [(k, int(v)) for k, v in indexes[CLAIM_INDEX_NAME]["key"]] == CLAIM_INDEX
        assert (await stores[1].counts())["completed"] == 6
    finally:
        for store in stores:
            await store.close()


@pytest.mark.gen_test
async def test_a_failing_step_is_a_clear_error_and_runs_again_at_the_next_open_on_mongomock(monkeypatch):
    from jobqueue.store import mongodb_schema

    client = mock_client()
    await load_release_0_1(client)
    clock = FakeClock(WRITTEN_AT + 120)

    async def broken(db: Any) -> None:
        await MIGRATIONS[1].run(db)  # the step fails after doing its work, as a server refusing the last write
        raise OperationFailure("not authorized on jobqueue to execute command { createIndexes: ... }", code=13)

    monkeypatch.setattr(mongodb_schema, "MIGRATIONS", (MIGRATIONS[0], mongodb_schema.Migration(2, "broken", broken)))
    store = store_on(client, clock)
    with pytest.raises(StoreError, match="cannot prepare the MongoDB database 'jobqueue' at mock"):
        await store.open()
    await store.close()
    db = client.get_database("jobqueue")
    assert await current_version(db) == 1  # not recorded: the step runs again, and it is idempotent
    monkeypatch.undo()
    again = store_on(client, clock)
    await again.open()
    try:
        assert await current_version(db) == LATEST
        assert (await again.counts())["completed"] == 6
    finally:
        await again.close()


@pytest.mark.gen_test
async def test_a_fresh_database_gets_every_index_of_every_step_on_mongomock():
    client = mock_client()
    store = store_on(client, FakeClock())
    await store.open()
    try:
        db = client.get_database("jobqueue")
        assert await current_version(db) == LATEST
        jobs = await db.jobs.index_information()
        assert {CLAIM_INDEX_NAME, "by_status", "by_update", "results", "fresh", "by_batch", "batch_status",
                "body_ref"} <= set(jobs)
        assert [(k, int(v)) for k, v in jobs[CLAIM_INDEX_NAME]["key"]] == CLAIM_INDEX
        assert jobs["fresh"]["partialFilterExpression"] == {"status": "completed"}
        assert {"listing", "storing"} <= set(await db.batches.index_information())
        assert "by_age" in await db.idempotency.index_information()
        assert {"by_created", "by_head"} <= set(await db.bodies.index_information())
        assert await db.counters.find_one({"_id": "jobs"}, {"_id": 0, "rev": 0, "recounted_at": 0}) == dict.fromkeys(
            ("queued", "running", "completed", "failed", "cancelled"), 0)
    finally:
        await store.close()
