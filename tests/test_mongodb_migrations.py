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
from jobqueue.store.mongodb.schema import CLAIM_INDEX, CLAIM_INDEX_NAME, LATEST, MIGRATIONS, current_version, migrate
from tests.store_backends import FakeClock

DUMP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "mongodb-release-0.1.json")
WRITTEN_AT = 1_795_838_726.0  # make_release_mongodb.py's clock; its leases ran for 60 s
ADDED_FIELDS = {"priority", "reuse_key"}  # what migration 2 adds to a release 0.1 job
MOVED_RESULT_FIELDS = {"body_ref", "body_size"}  # what migration 5 changes in a result: its body's name


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
    from jobqueue.store.mongodb.store import MongoStore

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
        assert sorted(meta["steps"], key=int) == [str(m.version) for m in MIGRATIONS]
        for before, after in zip(old_jobs, await raw(client, "jobs"), strict=True):
            kept = {k: v for k, v in after.items() if k not in ADDED_FIELDS}
            if "result" in before:
                assert set(kept["result"]) - set(before["result"]) == {"body_size"}
                kept["result"] = {k: v for k, v in kept["result"].items() if k not in MOVED_RESULT_FIELDS}
                before = {**before, "result": {k: v for k, v in before["result"].items() if k != "body_ref"}}
            assert kept == before  # nothing else moved
            assert after["priority"] == 0 and after["reuse_key"] == DEFAULT_FETCH.reuse_key(before["url"])
        by_sha = {hashlib.sha256(b["body"]).hexdigest() for b in old_bodies}
        assert {b["_id"] for b in await raw(client, "bodies")} == by_sha  # each now stored once, by content
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
    from jobqueue.store.mongodb import schema as mongodb_schema

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
                "body_ref", "history", "by_finish", "schedule_due", "schedule_status"} <= set(jobs)
        assert jobs["schedule_due"]["unique"] and jobs["history"]["partialFilterExpression"] == {"status": "completed"}
        assert "newest" in await db.schedules.index_information()
        assert [(k, int(v)) for k, v in jobs[CLAIM_INDEX_NAME]["key"]] == CLAIM_INDEX
        assert jobs["fresh"]["partialFilterExpression"] == {"status": "completed"}
        assert {"listing", "storing"} <= set(await db.batches.index_information())
        assert "by_age" in await db.idempotency.index_information()
        assert {"by_created", "by_head", "by_layout"} <= set(await db.bodies.index_information())
        assert await db.counters.find_one({"_id": "jobs"}, {"_id": 0, "rev": 0, "recounted_at": 0}) == dict.fromkeys(
            ("queued", "running", "completed", "failed", "cancelled"), 0)
    finally:
        await store.close()


def legacy_job(job_id: str, url: str, ref: dict[str, Any], size: int) -> dict[str, Any]:
    """A completed job as schema 4 wrote it, its result naming a body by task and lease (or GridFS)."""
    result = {"url": url, "final_url": url, "http_status": 200, "headers": {}, "content_type": "text/html",
              "encoding": "utf-8", "encoding_source": "header", "size": size, "truncated": False, "elapsed_ms": 1.0,
              "fetched_at": WRITTEN_AT, "sha256": "0" * 64, "redirects": [], "timings": {}, "body_ref": ref}
    return {"_id": job_id, "url": url, "host": "example.com", "status": "completed", "attempts": 1,
            "created_at": WRITTEN_AT, "updated_at": WRITTEN_AT, "available_at": WRITTEN_AT, "started_at": WRITTEN_AT,
            "finished_at": WRITTEN_AT, "lease_token": None, "http_status": 200, "error": None, "priority": 0,
            "not_before": None, "reuse_key": url, "reused_from": None, "result": result}


@pytest.mark.gen_test
async def test_schema_4_bodies_in_parts_zlib_shared_or_in_gridfs_move_byte_identical_on_mongomock():
    import zlib

    client = mock_client()
    db = client.get_database("jobqueue")
    for step in MIGRATIONS[:4]:
        await step.run(db)
    await db.meta.insert_one({"_id": "schema", "version": 4})
    page = b"".join(b"<p>row %d of a page that compresses</p>\n" % i for i in range(40_000))  # 1.4 MB
    packed = zlib.compress(page, 6)
    part = 256 * 1024
    chunks = [packed[i:i + part] for i in range(0, len(packed), part)]
    noise = os.urandom(300_000)
    await db.bodies.insert_many(
        [{"_id": "a:t1", "task_id": "a", "created_at": WRITTEN_AT, "parts": len(chunks), "z": True,
          "body": chunks[0]}]
        + [{"_id": f"a:t1#{i}", "of": "a:t1", "task_id": "a", "created_at": WRITTEN_AT, "body": c}
           for i, c in enumerate(chunks) if i]
        + [{"_id": "c:t3", "task_id": "c", "created_at": WRITTEN_AT, "parts": 1, "z": False, "body": page}])
    await db["bodies_fs.files"].insert_one({"_id": "f1", "length": len(noise), "chunkSize": 255 * 1024})
    await db["bodies_fs.chunks"].insert_many([{"files_id": "f1", "n": n, "data": noise[i:i + 255 * 1024]}
                                           for n, i in enumerate(range(0, len(noise), 255 * 1024))])
    await db.jobs.insert_many([
        legacy_job("a", "https://example.com/a", {"doc": "a:t1"}, len(page)),
        {**legacy_job("b", "https://example.com/a", {"doc": "a:t1"}, len(page)), "reused_from": "a"},  # shared
        legacy_job("c", "https://example.com/c", {"doc": "c:t3"}, len(page)),  # the same page, stored apart
        legacy_job("g", "https://example.com/g", {"gridfs": "f1"}, len(noise)),
        legacy_job("lost", "https://example.com/lost", {"doc": "gone:t9"}, 3),  # its body was already lost
    ])
    store = store_on(client, FakeClock(WRITTEN_AT + 120))
    await store.open()
    try:
        assert await current_version(db) == LATEST
        for job_id, body in (("a", page), ("b", page), ("c", page), ("g", noise)):
            assert (await store.get_result(job_id, with_body=True)).body == body
        assert await store.get_result("lost", with_body=True) is None  # still no result, not an empty one
        stats = await store.storage_stats()
        assert (stats["results"], stats["distinct_bodies"]) == (5, 2)
        assert stats["body_bytes"] == 3 * len(page) + len(noise) + 3
        assert stats["stored_bytes"] < len(noise) + len(page) / 20  # the page once, zstd-compressed
        assert await db.bodies.count_documents({"task_id": {"$in": ["a", "c"]}}) == 0  # the old copies went
        for name in ("bodies_fs.files", "bodies_fs.chunks"):
            assert await db[name].count_documents({}) == 0
        assert await migrate(db, WRITTEN_AT, "mock") == []
    finally:
        await store.close()


@pytest.mark.gen_test
async def test_migration_9_gives_the_upkeep_reads_their_indexes_and_drops_the_one_it_replaces_on_mongomock():
    client = mock_client()
    await load_release_0_1(client)
    db = client.get_database("jobqueue")
    await migrate(db, WRITTEN_AT, "mock")
    await db.meta.update_one({"_id": "schema"}, {"$set": {"version": 8}})  # opened by the release before it
    await db.webhook_deliveries.create_index([("status", 1), ("next_attempt_at", 1)], name="due")
    assert 9 in await migrate(db, WRITTEN_AT, "mock")
    deliveries = await db.webhook_deliveries.index_information()
    assert "due" not in deliveries  # served by the new index's prefix
    assert [(k, int(v)) for k, v in deliveries["due_by_endpoint"]["key"]] == [
        ("status", 1), ("next_attempt_at", 1), ("endpoint", 1)]  # the claim's $nin read from the keys
    assert [(k, int(v)) for k, v in deliveries["status_newest"]["key"]] == [
        ("status", 1), ("created_at", -1), ("_id", -1)]  # list_deliveries by status, and retention
    assert [(k, int(v)) for k, v in (await db.schedules.index_information())["overdue"]["key"]] == [
        ("stopped_at", 1), ("next_run_at", 1)]  # repair_schedules
    assert "by_created" in await db.url_changes.index_information()


# Every index of `jobs` at LATEST, `_id_` included: docs/mongodb.md ("Indexes of jobs") says what needs each, and
# "What one job writes" counts their entries; a new index is added to both.
JOBS_INDEXES = {"_id_", "by_status", "by_update", "results", "fresh", "by_batch", "batch_status", "body_ref", "outbox",
                "by_host", "by_tag", "by_error", "by_http_status", "by_created", CLAIM_INDEX_NAME, "due_rendered",
                "history", "by_finish", "schedule_due", "schedule_status", "artifact_refs", "crawl_page",
                "crawl_status", "by_crawl"}
ABSENT = object()


def field_of(doc: dict[str, Any], path: str) -> Any:
    """The value at a dotted path, or ABSENT (below a null or a missing field too)."""
    value: Any = doc
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return ABSENT
        value = value[part]
    return value


def index_keys(indexes: dict[str, Any], doc: dict[str, Any]) -> dict[str, tuple[Any, ...]]:
    """The key each index holds for `doc`, as a server builds them (the mock keeps no entries to read): a missing
    field is a null key, a sparse index leaves out a document with none of its fields, a partial one a document its
    filter does not match."""
    keys = {}
    for name, spec in indexes.items():
        values = [field_of(doc, field) for field, _ in spec["key"]]
        if spec.get("sparse") and all(value is ABSENT for value in values):
            continue
        wanted = spec.get("partialFilterExpression", {})  # {field: value} or {field: {"$exists": True}} here
        if any((field_of(doc, f) is not ABSENT) != cond["$exists"] if isinstance(cond, dict)
               else field_of(doc, f) != cond for f, cond in wanted.items()):
            continue
        keys[name] = tuple(None if value is ABSENT else value for value in values)
    return keys


def rewritten(indexes: dict[str, Any], before: dict[str, Any], after: dict[str, Any]) -> set[str]:
    """The indexes whose entry for a document an update inserts, removes or replaces."""
    old, new = index_keys(indexes, before), index_keys(indexes, after)
    return {name for name in indexes if old.get(name, ABSENT) != new.get(name, ABSENT)}


@pytest.mark.gen_test
async def test_jobs_has_the_indexes_the_docs_list_and_a_plain_job_writes_the_entries_they_count_on_mongomock():
    from jobqueue.models import Result
    from jobqueue.store.base import Lease

    client = mock_client()
    clock = FakeClock()
    store = store_on(client, clock)
    await store.open()
    try:
        indexes = await client.get_database("jobqueue").jobs.index_information()
        assert set(indexes) == JOBS_INDEXES
        await store.add([NewTask("plain", "https://example.com/a", "example.com")])
        [queued] = await raw(client, "jobs")
        assert set(index_keys(indexes, queued)) == {  # 11: the partial and sparse ones leave a plain job out
            "_id_", "by_status", "by_update", "results", "by_host", "by_tag", "by_error", "by_http_status",
            "by_created", CLAIM_INDEX_NAME, "by_finish"}
        clock.advance(1)
        [task] = await store.claim(1, 60.0, [])
        [running] = await raw(client, "jobs")
        assert rewritten(indexes, queued, running) == {"by_status", "results", CLAIM_INDEX_NAME, "by_update"}
        clock.advance(1)
        page = b"the page"
        done = await store.complete(Lease(task.id, task.lease_token), Result(
            id=task.id, url=task.url, final_url=task.url, http_status=200, headers={}, content_type="text/html",
            encoding="utf-8", encoding_source="header", size=len(page), truncated=False, elapsed_ms=1.0,
            fetched_at=clock.now, sha256=hashlib.sha256(page).hexdigest(), body=page))
        assert done is not None and done.status == "completed"
        [completed] = await raw(client, "jobs")
        assert rewritten(indexes, running, completed) == {  # 6 rewritten, 3 entered
            "by_status", "results", CLAIM_INDEX_NAME, "by_update", "by_finish", "by_http_status", "history", "fresh",
            "body_ref"}
        entered = set(index_keys(indexes, completed)) - set(index_keys(indexes, queued))
        assert entered == {"history", "fresh", "body_ref"}
    finally:
        await store.close()
