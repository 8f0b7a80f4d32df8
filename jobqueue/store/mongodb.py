"""The scale-out backend: MongoDB through motor (motor is used in this file only).

A task is one document; its result's metadata is written into that same document by the one
lease-guarded update that marks it completed, so a result appears exactly when the status does and
a stale worker can never add a second one. Bodies live beside it (mongodb_bodies.py), written before
the completion that names them, and may be shared by jobs that reused a fresh result.

Documents, indexes and migrations are in mongodb_schema.py; batches and idempotency keys in
mongodb_batches.py. Every operation that moves a job's status also moves its batch's counts.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlsplit

from motor.motor_asyncio import AsyncIOMotorClient, AsyncIOMotorGridFSBucket
from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.errors import ExecutionTimeout, OperationFailure, PyMongoError
from pymongo.write_concern import WriteConcern

from jobqueue.idempotency import IdempotentAdd
from jobqueue.models import CANCELLED, COMPLETED, FAILED, QUEUED, RUNNING, STATUSES, Page, Result, Task, TaskError
from jobqueue.store.base import (
    ALL_TASKS,
    BadCursor,
    Capabilities,
    ChangesUnavailable,
    Conflict,
    Lease,
    NewTask,
    NotFound,
    StoreError,
    TaskFilter,
)
from jobqueue.store.mongodb_batches import MongoBatchOps, Moves, answer_doc
from jobqueue.store.mongodb_bodies import MongoBodies
from jobqueue.store.mongodb_bulk import MongoBulkOps
from jobqueue.store.mongodb_filters import LIST_FILTERS, MAX_TIME_MS, TOO_SLOW, mongo_query
from jobqueue.store.mongodb_schema import (
    CLAIM_ORDER,
    TASK_FIELDS,
    after_cursor,
    applied,
    attempt_entry,
    encode_cursor,
    migrate,
    new_job_doc,
    result_doc,
    result_from_doc,
    task_from_doc,
)
from jobqueue.store.mongodb_webhooks import MongoWebhookOps, outbox_mark


class MongoStore(MongoBatchOps, MongoBodies, MongoWebhookOps, MongoBulkOps):
    """Tasks, results and bodies in MongoDB; claims are atomic find_one_and_update calls."""

    name = "mongodb"
    # change streams need a replica set: watch() raises ChangesUnavailable elsewhere
    capabilities = Capabilities(change_stream=True, list_filters=LIST_FILTERS)

    def __init__(self, url: str, clock: Callable[[], float] = time.time,
                 client_factory: Callable[[str], Any] | None = None) -> None:
        self.url = url
        self.clock = clock
        self._client_factory = client_factory
        self._client: Any = None
        self._db: Any = None

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> MongoStore:
        """Build a store from a `mongodb://host:port/dbname` URL."""
        return cls(url, **kwargs)

    @property
    def where(self) -> str:
        """The server part of the URL, without credentials, for messages."""
        return urlsplit(self.url).hostname or "localhost"

    async def open(self) -> None:
        """Connect, check the server answers, and bring the database to the current schema version."""
        if self._client_factory is not None:
            self._client = self._client_factory(self.url)
        else:
            options = {} if "serverselectiontimeoutms" in self.url.lower() else {"serverSelectionTimeoutMS": 5000}
            self._client = AsyncIOMotorClient(self.url, tz_aware=False, **options)
        parsed = urlsplit(self.url)
        name = parsed.path.lstrip("/") or "jobqueue"
        concern = WriteConcern(w="majority", j=True) if "w=" not in parsed.query else None
        db = self._client.get_database(name, write_concern=concern) if concern else self._client[name]
        try:
            await db.command("ping")
        except PyMongoError as exc:
            raise StoreError(
                f"cannot reach MongoDB at {self.where} ({type(exc).__name__}: {exc}); check that mongod is "
                "running and the URL is right, e.g. `docker run -d -p 27017:27017 mongo:7 --replSet rs0` "
                "then `docker exec <id> mongosh --eval 'rs.initiate()'`"
            ) from exc
        try:
            await migrate(db, self.clock(), self.where)
        except PyMongoError as exc:
            raise StoreError(f"cannot prepare the MongoDB database {name!r} at {self.where} (creating indexes or "
                             f"migrating its documents failed: {exc}); the user in the URL needs the readWrite role "
                             "on it") from exc
        self._db = db

    async def close(self) -> None:
        """Close the client."""
        if self._client is not None:
            self._client.close()
            self._client = None
            self._db = None

    @property
    def db(self) -> Any:
        """The database handle; StoreError (a 503, not a 500) once the store is closed."""
        if self._db is None:
            raise StoreError(f"the connection to MongoDB at {self.where} is closed (the server is stopping); "
                             "try again shortly")
        return self._db

    @property
    def bucket(self) -> Any:
        """The GridFS bucket of bodies too large for a document (StoreError once closed)."""
        return AsyncIOMotorGridFSBucket(self.db, bucket_name="bodies_fs")

    async def _call(self, operation: Any, allow: tuple[type[Exception], ...] = ()) -> Any:
        """Await a driver call, turning its errors into StoreError (except those in `allow`)."""
        try:
            return await operation
        except allow:
            raise
        except PyMongoError as exc:
            raise StoreError(f"MongoDB at {self.where} failed: {exc}; try again shortly") from exc

    async def ping(self) -> None:
        """Raise StoreError when the server does not answer."""
        await self._call(self.db.command("ping"))

    async def add(self, tasks: list[NewTask], idempotent: IdempotentAdd | None = None) -> list[Task]:
        """Insert tasks (reusing fresh results where asked) with the configured write concern, then their
        batches' counts, then a keyed answer: three writes, as MongoDB without a transaction cannot make
        them one (see mongodb_batches.py for what a crash between them leaves)."""
        now = self.clock()
        db = self.db
        sources = await self._fresh_sources(tasks, now)
        docs = [new_job_doc(t, now, sources.get(t.id)) for t in tasks]
        for doc in docs:
            doc.update(outbox_mark(self.outbox, doc["status"], now))  # a reused result completes at once
        created = [task_from_doc(d) for d in docs]
        planned = None
        if idempotent is not None:
            planned = idempotent.render(created)
            await self._plan(idempotent.key, {"ids": [d["_id"] for d in docs], **answer_doc(planned)})
        if docs:
            await self._call(db.jobs.insert_many(docs, ordered=True))
        requeued = bool(sources) and await self._confirm_sources(docs, now)
        if requeued:
            created = [task_from_doc(d) for d in docs]
        moves = Moves()
        for doc in docs:
            moves.add(doc.get("batch_id"), None, doc["status"])
        await self._move(moves, now)
        if idempotent is not None:
            answer = idempotent.render(created) if requeued or planned is None else planned
            await self._keep_answer(idempotent.key, answer, now)
        return created

    async def get(self, task_id: str) -> Task | None:
        """Read one task."""
        doc = await self._call(self.db.jobs.find_one({"_id": task_id}, TASK_FIELDS))
        return task_from_doc(doc) if doc else None

    async def list(self, where: TaskFilter, limit: int, cursor: str | None) -> Page:
        """Newest first by id (ids sort by creation time), narrowed by the filter (mongodb_filters)."""
        query = mongo_query(where)
        if cursor is not None:
            if not cursor.startswith("i") or len(cursor) < 2:
                raise BadCursor(f"unknown cursor {cursor!r}: use the 'next' value of a previous page")
            query["_id"] = {"$lt": cursor[1:]}
        found = self.db.jobs.find(query, TASK_FIELDS).sort("_id", DESCENDING).limit(limit + 1)
        docs = await self._filtered(found.max_time_ms(MAX_TIME_MS), limit + 1)
        more = len(docs) > limit
        docs = docs[:limit]
        return Page([task_from_doc(d) for d in docs], f"i{docs[-1]['_id']}" if more and docs else None)

    async def _filtered(self, cursor: Any, length: int) -> list[dict[str, Any]]:
        try:
            return await self._call(cursor.to_list(length), allow=(ExecutionTimeout,))
        except ExecutionTimeout:
            raise TOO_SLOW from None

    async def counts(self) -> dict[str, int]:
        """Count by status on the status index."""
        numbers = await asyncio.gather(*(self._call(self.db.jobs.count_documents({"status": s})) for s in STATUSES))
        return dict(zip(STATUSES, (int(n) for n in numbers), strict=True))

    async def claim(self, limit: int, lease_seconds: float, exclude_hosts: list[str]) -> list[Task]:
        """Take due tasks one atomic find_one_and_update at a time: higher priority first, then older due time
        (the "claim" index: status, priority desc, available_at). Returned in the order claimed."""
        now = self.clock()
        token = secrets.token_hex(8)
        query: dict[str, Any] = {"status": {"$in": [QUEUED, RUNNING]}, "available_at": {"$lte": now}}
        if exclude_hosts:
            query["host"] = {"$nin": exclude_hosts}
        sets = {"status": RUNNING, "lease_token": token, "available_at": now + lease_seconds, "started_at": now,
                "updated_at": now}
        claimed, moves = [], Moves()
        try:
            for _ in range(limit):
                before = await self._call(self.db.jobs.find_one_and_update(
                    query, {"$set": sets, "$inc": {"attempts": 1}}, sort=CLAIM_ORDER, projection=TASK_FIELDS,
                    return_document=ReturnDocument.BEFORE))
                if before is None:
                    break
                moves.add(before.get("batch_id"), before["status"], RUNNING)  # running again when a lease ran out
                claimed.append(task_from_doc(applied(before, sets, attempts=1)))
        finally:
            await self._move(moves, now)
        return claimed

    async def extend(self, leases: list[Lease], lease_seconds: float) -> list[str]:
        """Renew each lease still held; report the lost ones."""
        until = self.clock() + lease_seconds
        lost = []
        for lease in leases:
            outcome = await self._call(self.db.jobs.update_one(
                {"_id": lease.task_id, "lease_token": lease.token, "status": RUNNING},
                {"$set": {"available_at": until}}))
            if outcome.matched_count == 0:
                lost.append(lease.task_id)
        return lost

    async def release(self, leases: list[Lease]) -> list[Task]:
        """Give tasks back as queued without counting the interrupted attempt."""
        now = self.clock()
        released, moves = [], Moves()
        try:
            for lease in leases:
                doc = await self._call(self.db.jobs.find_one_and_update(
                    {"_id": lease.task_id, "lease_token": lease.token, "status": RUNNING},
                    {"$set": {"status": QUEUED, "lease_token": None, "available_at": now, "updated_at": now},
                     "$inc": {"attempts": -1}},
                    projection=TASK_FIELDS, return_document=ReturnDocument.AFTER))
                if doc is not None:
                    moves.add(doc.get("batch_id"), RUNNING, QUEUED)
                    released.append(task_from_doc(doc))
        finally:
            await self._move(moves, now)
        return released

    async def complete(self, lease: Lease, result: Result) -> Task | None:
        """Write the body, then in one lease-guarded update mark completed and attach the result."""
        ref = await self._store_body(lease, result.body or b"")
        now = self.clock()
        doc = await self._call(self.db.jobs.find_one_and_update(
            {"_id": lease.task_id, "lease_token": lease.token, "status": RUNNING},
            {"$set": {"status": COMPLETED, "lease_token": None, "finished_at": now, "updated_at": now,
                      "http_status": result.http_status, "error": None, "result": result_doc(result, ref),
                      **outbox_mark(self.outbox, COMPLETED, now)},
             "$push": {"attempt_log": attempt_entry(now, COMPLETED, result.http_status, None)}},
            projection=TASK_FIELDS, return_document=ReturnDocument.AFTER))
        if doc is None:
            await self._drop_body(ref)  # a stale worker: its body must not linger
            return None
        await self._moved(doc, RUNNING, now)
        return task_from_doc(doc)

    async def _finish_attempt(self, lease: Lease, changes: dict[str, Any], now: float) -> Task | None:
        doc = await self._call(self.db.jobs.find_one_and_update(
            {"_id": lease.task_id, "lease_token": lease.token, "status": RUNNING},
            {"$set": {"lease_token": None, **changes, **outbox_mark(self.outbox, changes["status"], now)},
             "$push": {"attempt_log": attempt_entry(now, "retry" if changes["status"] == QUEUED else FAILED,
                                                    changes.get("http_status"), changes.get("error"))}},
            projection=TASK_FIELDS,
            return_document=ReturnDocument.AFTER))
        if doc is None:
            return None
        await self._moved(doc, RUNNING, now)
        return task_from_doc(doc)

    async def reschedule(self, lease: Lease, at: float, error: TaskError, http_status: int | None) -> Task | None:
        """Queue again for `at`, keeping the last error; only under a live lease."""
        now = self.clock()
        return await self._finish_attempt(lease, {"status": QUEUED, "available_at": at, "updated_at": now,
                                                  "http_status": http_status, "error": error.to_json()}, now)

    async def fail(self, lease: Lease, error: TaskError, http_status: int | None) -> Task | None:
        """Mark failed for good; only under a live lease."""
        now = self.clock()
        return await self._finish_attempt(lease, {"status": FAILED, "finished_at": now, "updated_at": now,
                                                  "http_status": http_status, "error": error.to_json()}, now)

    async def _conflict_or_missing(self, task_id: str, message: str) -> Exception:
        doc = await self._call(self.db.jobs.find_one({"_id": task_id}, TASK_FIELDS))
        if doc is None:
            return NotFound(task_id)
        task = task_from_doc(doc)
        return Conflict(task, message.format(id=task_id, status=task.status))

    async def cancel(self, task_id: str) -> Task:
        """Cancel a queued or running task."""
        now = self.clock()
        sets = {"status": CANCELLED, "lease_token": None, "finished_at": now, "updated_at": now,
                "http_status": None, "error": None,  # they told of the last attempt
                **outbox_mark(self.outbox, CANCELLED, now)}
        before = await self._call(self.db.jobs.find_one_and_update(
            {"_id": task_id, "status": {"$in": [QUEUED, RUNNING]}}, {"$set": sets},
            projection=TASK_FIELDS, return_document=ReturnDocument.BEFORE))
        if before is None:
            raise await self._conflict_or_missing(
                task_id, "task {id} is already {status}; only queued or running tasks can be cancelled")
        after = applied(before, sets)
        await self._moved(after, before["status"], now)
        return task_from_doc(after)

    async def retry(self, task_id: str) -> Task:
        """Queue a finished task again and drop its old result (its body too, unless another job shares it)."""
        now = self.clock()
        sets = {"status": QUEUED, "attempts": 0, "available_at": now, "updated_at": now, "started_at": None,
                "finished_at": None, "http_status": None, "error": None, "lease_token": None, "reused_from": None}
        before = await self._call(self.db.jobs.find_one_and_update(
            {"_id": task_id, "status": {"$in": [COMPLETED, FAILED, CANCELLED]}},
            {"$set": sets, "$unset": {"result": ""}}, return_document=ReturnDocument.BEFORE))
        if before is None:
            raise await self._conflict_or_missing(
                task_id, "task {id} is still {status}; only finished tasks can be retried")
        after = applied(before, sets, unset=("result",))
        await self._moved(after, before["status"], now)
        await self._release_body((before.get("result") or {}).get("body_ref"), task_id)
        return task_from_doc(after)

    async def get_result(self, task_id: str, with_body: bool) -> Result | None:
        """Read a completed task's result, loading the body only when asked."""
        doc = await self._call(self.db.jobs.find_one({"_id": task_id, "status": COMPLETED}, {"result": 1}))
        if doc is None or "result" not in doc:
            return None
        body = await self._load_body(doc["result"]["body_ref"]) if with_body else None
        return result_from_doc(task_id, doc["result"], body)

    async def list_results(self, limit: int, cursor: str | None, where: TaskFilter = ALL_TASKS) -> Page:
        """Completed tasks' results, newest completion first, without bodies, narrowed by the jobs' fields."""
        query: dict[str, Any] = {**mongo_query(where), "status": COMPLETED}
        if where.status not in (None, COMPLETED):
            return Page([], None)
        query.update(after_cursor("finished_at", cursor))
        found = (self.db.jobs.find(query, {"result": 1, "finished_at": 1})
                 .sort([("finished_at", DESCENDING), ("_id", DESCENDING)]).limit(limit + 1))
        docs = await self._filtered(found.max_time_ms(MAX_TIME_MS), limit + 1)
        more = len(docs) > limit
        docs = docs[:limit]
        items = [result_from_doc(d["_id"], d["result"], None) for d in docs if "result" in d]
        next_cursor = encode_cursor(docs[-1]["finished_at"], docs[-1]["_id"]) if more and docs else None
        return Page(items, next_cursor)

    async def changed_since(self, since: float, limit: int) -> list[Task]:
        """Recently changed tasks, for processes without change streams."""
        found = self.db.jobs.find({"updated_at": {"$gte": since}}, TASK_FIELDS).sort("updated_at", ASCENDING)
        return [task_from_doc(d) for d in await self._call(found.limit(limit).to_list(limit))]

    async def watch(self, ready: asyncio.Event | None = None) -> AsyncIterator[Task]:
        """Yield every task change any process commits, from a change stream (replica sets only).

        Raises ChangesUnavailable on a server without change streams (standalone, or a mock);
        resumes after the last event it saw when the connection drops. `ready` is set once the
        stream is open, so a caller knows from when on nothing is missed.
        """
        pipeline = [{"$match": {"operationType": {"$in": ["insert", "update", "replace"]}}},
                    {"$project": {"fullDocument.result": 0}}]
        resume: Any = None
        failures = 0
        while True:
            try:
                async with self._db.jobs.watch(pipeline, full_document="updateLookup",
                                               resume_after=resume) as stream:
                    failures = 0
                    change = await stream.try_next()  # opens the server-side cursor
                    if ready is not None:
                        ready.set()
                    while True:
                        if change is not None:
                            resume = stream.resume_token
                            doc = change.get("fullDocument")
                            if doc is not None:
                                yield task_from_doc(doc)
                        change = await stream.next()
            except OperationFailure as exc:
                if exc.code in (40573, 40324, 136) or "replica set" in str(exc).lower():
                    raise ChangesUnavailable(f"MongoDB at {self.where} has no change streams: {exc}") from exc
                failures += 1
            except (NotImplementedError, AttributeError, TypeError) as exc:
                raise ChangesUnavailable(f"this MongoDB client has no change streams: {exc}") from exc
            except PyMongoError:
                failures += 1
            await asyncio.sleep(min(30.0, 0.5 * 2**failures))
