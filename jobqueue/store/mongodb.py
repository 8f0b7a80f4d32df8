"""The scale-out backend: MongoDB through motor (motor is used in this file only).

A task is one document; its result's metadata is written into that same document by the one
lease-guarded update that marks it completed, so a result appears exactly when the status does and
a stale worker can never add a second one. Bodies live beside it: in `bodies` (one document each)
or in GridFS when they are too large for a document, written before the completion that names them.
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
from pymongo.errors import OperationFailure, PyMongoError
from pymongo.write_concern import WriteConcern

from jobqueue.models import STATUSES, Page, Result, Task, TaskError
from jobqueue.store.base import BadCursor, ChangesUnavailable, Conflict, Lease, NewTask, NotFound, StoreError

INLINE_BODY_LIMIT = 8 * 1024 * 1024  # larger bodies go to GridFS (documents stop at 16 MB)
_TASK_FIELDS = {"result": 0}


def _task(doc: dict[str, Any]) -> Task:
    error = doc.get("error")
    return Task(
        id=doc["_id"], url=doc["url"], host=doc["host"], status=doc["status"], attempts=doc["attempts"],
        created_at=doc["created_at"], updated_at=doc["updated_at"], started_at=doc.get("started_at"),
        finished_at=doc.get("finished_at"), available_at=doc["available_at"], http_status=doc.get("http_status"),
        error=TaskError(error["code"], error["message"]) if error else None, lease_token=doc.get("lease_token"),
    )


def _result_doc(result: Result, body_ref: dict[str, Any]) -> dict[str, Any]:
    return {
        "url": result.url, "final_url": result.final_url, "http_status": result.http_status,
        "headers": result.headers, "content_type": result.content_type, "encoding": result.encoding,
        "encoding_source": result.encoding_source, "size": result.size, "truncated": result.truncated,
        "elapsed_ms": result.elapsed_ms, "fetched_at": result.fetched_at, "sha256": result.sha256,
        "redirects": result.redirects, "timings": result.timings, "body_ref": body_ref,
    }


def _result(task_id: str, doc: dict[str, Any], body: bytes | None) -> Result:
    return Result(
        id=task_id, url=doc["url"], final_url=doc["final_url"], http_status=doc["http_status"],
        headers=doc["headers"], content_type=doc["content_type"], encoding=doc["encoding"],
        encoding_source=doc["encoding_source"], size=doc["size"], truncated=doc["truncated"],
        elapsed_ms=doc["elapsed_ms"], fetched_at=doc["fetched_at"], sha256=doc["sha256"],
        redirects=doc["redirects"], timings=doc["timings"], body=body,
    )


def _encode_cursor(at: float, task_id: str) -> str:
    return f"{at!r}~{task_id}"


def _decode_cursor(cursor: str | None) -> tuple[float, str] | None:
    if cursor is None:
        return None
    at, sep, task_id = cursor.partition("~")
    try:
        return float(at), task_id if sep else ""
    except ValueError:
        raise BadCursor(f"unknown cursor {cursor!r}: use the 'next' value of a previous page") from None


class MongoStore:
    """Tasks, results and bodies in MongoDB; claims are atomic find_one_and_update calls."""

    name = "mongodb"

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
        """Connect, check the server answers, and create the indexes the queries need."""
        if self._client_factory is not None:
            self._client = self._client_factory(self.url)
        else:
            options = {} if "serverselectiontimeoutms" in self.url.lower() else {"serverSelectionTimeoutMS": 5000}
            self._client = AsyncIOMotorClient(self.url, tz_aware=False, **options)
        parsed = urlsplit(self.url)
        name = parsed.path.lstrip("/") or "jobqueue"
        concern = WriteConcern(w="majority", j=True) if "w=" not in parsed.query else None
        self._db = self._client.get_database(name, write_concern=concern) if concern else self._client[name]
        try:
            await self._db.command("ping")
            jobs = self._db.jobs
            await jobs.create_index([("status", ASCENDING), ("available_at", ASCENDING)], name="claim")
            await jobs.create_index([("status", ASCENDING), ("_id", DESCENDING)], name="by_status")
            await jobs.create_index([("updated_at", ASCENDING)], name="by_update")
            await jobs.create_index([("status", ASCENDING), ("finished_at", DESCENDING), ("_id", DESCENDING)],
                                    name="results")
            await self._db.bodies.create_index([("task_id", ASCENDING)], name="by_task")
        except PyMongoError as exc:
            raise StoreError(
                f"cannot reach MongoDB at {self.where} ({type(exc).__name__}: {exc}); check that mongod is "
                "running and the URL is right, e.g. `docker run -d -p 27017:27017 mongo:7 --replSet rs0` "
                "then `docker exec <id> mongosh --eval 'rs.initiate()'`"
            ) from exc

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
            raise StoreError(f"the connection to MongoDB at {self.where} is closed")
        return self._db

    async def _call(self, operation: Any) -> Any:
        try:
            return await operation
        except PyMongoError as exc:
            raise StoreError(f"MongoDB at {self.where} failed: {exc}") from exc

    async def ping(self) -> None:
        """Raise StoreError when the server does not answer."""
        await self._call(self.db.command("ping"))

    async def add(self, tasks: list[NewTask]) -> list[Task]:
        """Insert queued tasks with the configured write concern (majority + journal by default)."""
        now = self.clock()
        docs = [
            {"_id": t.id, "url": t.url, "host": t.host, "status": "queued", "attempts": 0, "created_at": now,
             "updated_at": now, "available_at": now, "started_at": None, "finished_at": None,
             "lease_token": None, "http_status": None, "error": None}
            for t in tasks
        ]
        await self._call(self.db.jobs.insert_many(docs, ordered=True))
        return [_task(d) for d in docs]

    async def get(self, task_id: str) -> Task | None:
        """Read one task."""
        doc = await self._call(self.db.jobs.find_one({"_id": task_id}, _TASK_FIELDS))
        return _task(doc) if doc else None

    async def list(self, status: str | None, limit: int, cursor: str | None) -> Page:
        """Newest first by id (ids sort by creation time)."""
        query: dict[str, Any] = {}
        if status is not None:
            query["status"] = status
        if cursor is not None:
            if not cursor.startswith("i") or len(cursor) < 2:
                raise BadCursor(f"unknown cursor {cursor!r}: use the 'next' value of a previous page")
            query["_id"] = {"$lt": cursor[1:]}
        found = self.db.jobs.find(query, _TASK_FIELDS).sort("_id", DESCENDING).limit(limit + 1)
        docs = await self._call(found.to_list(limit + 1))
        more = len(docs) > limit
        docs = docs[:limit]
        return Page([_task(d) for d in docs], f"i{docs[-1]['_id']}" if more and docs else None)

    async def counts(self) -> dict[str, int]:
        """Count by status on the status index."""
        numbers = await asyncio.gather(*(self._call(self.db.jobs.count_documents({"status": s})) for s in STATUSES))
        return dict(zip(STATUSES, (int(n) for n in numbers), strict=True))

    async def claim(self, limit: int, lease_seconds: float, exclude_hosts: list[str]) -> list[Task]:
        """Take due tasks one atomic find_one_and_update at a time, oldest due first."""
        now = self.clock()
        token = secrets.token_hex(8)
        query: dict[str, Any] = {"status": {"$in": ["queued", "running"]}, "available_at": {"$lte": now}}
        if exclude_hosts:
            query["host"] = {"$nin": exclude_hosts}
        update = {"$set": {"status": "running", "lease_token": token, "available_at": now + lease_seconds,
                           "started_at": now, "updated_at": now}, "$inc": {"attempts": 1}}
        claimed = []
        for _ in range(limit):
            doc = await self._call(self.db.jobs.find_one_and_update(
                query, update, sort=[("available_at", ASCENDING)], projection=_TASK_FIELDS,
                return_document=ReturnDocument.AFTER))
            if doc is None:
                break
            claimed.append(_task(doc))
        return claimed

    async def extend(self, leases: list[Lease], lease_seconds: float) -> list[str]:
        """Renew each lease still held; report the lost ones."""
        until = self.clock() + lease_seconds
        lost = []
        for lease in leases:
            outcome = await self._call(self.db.jobs.update_one(
                {"_id": lease.task_id, "lease_token": lease.token, "status": "running"},
                {"$set": {"available_at": until}}))
            if outcome.matched_count == 0:
                lost.append(lease.task_id)
        return lost

    async def release(self, leases: list[Lease]) -> list[Task]:
        """Give tasks back as queued without counting the interrupted attempt."""
        now = self.clock()
        released = []
        for lease in leases:
            doc = await self._call(self.db.jobs.find_one_and_update(
                {"_id": lease.task_id, "lease_token": lease.token, "status": "running"},
                {"$set": {"status": "queued", "lease_token": None, "available_at": now, "updated_at": now},
                 "$inc": {"attempts": -1}},
                projection=_TASK_FIELDS, return_document=ReturnDocument.AFTER))
            if doc is not None:
                released.append(_task(doc))
        return released

    async def _store_body(self, lease: Lease, body: bytes) -> dict[str, Any]:
        key = f"{lease.task_id}:{lease.token}:{secrets.token_hex(4)}"  # never overwrites another write
        if len(body) > INLINE_BODY_LIMIT:
            bucket = AsyncIOMotorGridFSBucket(self.db, bucket_name="bodies_fs")
            file_id = await self._call(bucket.upload_from_stream(key, body, metadata={"task_id": lease.task_id}))
            return {"gridfs": file_id}
        await self._call(self.db.bodies.replace_one({"_id": key}, {"_id": key, "task_id": lease.task_id,
                                                                    "body": body}, upsert=True))
        return {"doc": key}

    async def _drop_body(self, ref: dict[str, Any] | None) -> None:
        if not ref:
            return
        if "gridfs" in ref:
            bucket = AsyncIOMotorGridFSBucket(self.db, bucket_name="bodies_fs")
            await self._call(bucket.delete(ref["gridfs"]))
        else:
            await self._call(self.db.bodies.delete_one({"_id": ref["doc"]}))

    async def complete(self, lease: Lease, result: Result) -> Task | None:
        """Write the body, then in one lease-guarded update mark completed and attach the result."""
        ref = await self._store_body(lease, result.body or b"")
        now = self.clock()
        doc = await self._call(self.db.jobs.find_one_and_update(
            {"_id": lease.task_id, "lease_token": lease.token, "status": "running"},
            {"$set": {"status": "completed", "lease_token": None, "finished_at": now, "updated_at": now,
                      "http_status": result.http_status, "error": None, "result": _result_doc(result, ref)}},
            projection=_TASK_FIELDS, return_document=ReturnDocument.AFTER))
        if doc is None:
            await self._drop_body(ref)  # a stale worker: its body must not linger
            return None
        return _task(doc)

    async def _finish_attempt(self, lease: Lease, changes: dict[str, Any]) -> Task | None:
        doc = await self._call(self.db.jobs.find_one_and_update(
            {"_id": lease.task_id, "lease_token": lease.token, "status": "running"},
            {"$set": {"lease_token": None, **changes}}, projection=_TASK_FIELDS,
            return_document=ReturnDocument.AFTER))
        return _task(doc) if doc else None

    async def reschedule(self, lease: Lease, at: float, error: TaskError, http_status: int | None) -> Task | None:
        """Queue again for `at`, keeping the last error; only under a live lease."""
        return await self._finish_attempt(lease, {"status": "queued", "available_at": at, "updated_at": self.clock(),
                                                  "http_status": http_status, "error": error.to_json()})

    async def fail(self, lease: Lease, error: TaskError, http_status: int | None) -> Task | None:
        """Mark failed for good; only under a live lease."""
        now = self.clock()
        return await self._finish_attempt(lease, {"status": "failed", "finished_at": now, "updated_at": now,
                                                  "http_status": http_status, "error": error.to_json()})

    async def _conflict_or_missing(self, task_id: str, message: str) -> Exception:
        doc = await self._call(self.db.jobs.find_one({"_id": task_id}, _TASK_FIELDS))
        if doc is None:
            return NotFound(task_id)
        task = _task(doc)
        return Conflict(task, message.format(id=task_id, status=task.status))

    async def cancel(self, task_id: str) -> Task:
        """Cancel a queued or running task."""
        now = self.clock()
        doc = await self._call(self.db.jobs.find_one_and_update(
            {"_id": task_id, "status": {"$in": ["queued", "running"]}},
            {"$set": {"status": "cancelled", "lease_token": None, "finished_at": now, "updated_at": now,
                      "http_status": None, "error": None}},  # they told of the last attempt
            projection=_TASK_FIELDS, return_document=ReturnDocument.AFTER))
        if doc is None:
            raise await self._conflict_or_missing(
                task_id, "task {id} is already {status}; only queued or running tasks can be cancelled")
        return _task(doc)

    async def retry(self, task_id: str) -> Task:
        """Queue a finished task again and drop its old result and body."""
        now = self.clock()
        before = await self._call(self.db.jobs.find_one_and_update(
            {"_id": task_id, "status": {"$in": ["completed", "failed", "cancelled"]}},
            {"$set": {"status": "queued", "attempts": 0, "available_at": now, "updated_at": now, "started_at": None,
                      "finished_at": None, "http_status": None, "error": None, "lease_token": None},
             "$unset": {"result": ""}},
            return_document=ReturnDocument.BEFORE))
        if before is None:
            raise await self._conflict_or_missing(
                task_id, "task {id} is still {status}; only finished tasks can be retried")
        await self._drop_body((before.get("result") or {}).get("body_ref"))
        return await self.get(task_id)  # type: ignore[return-value]

    async def get_result(self, task_id: str, with_body: bool) -> Result | None:
        """Read a completed task's result, loading the body only when asked."""
        doc = await self._call(self.db.jobs.find_one({"_id": task_id, "status": "completed"}, {"result": 1}))
        if doc is None or "result" not in doc:
            return None
        body = await self._load_body(doc["result"]["body_ref"]) if with_body else None
        return _result(task_id, doc["result"], body)

    async def _load_body(self, ref: dict[str, Any]) -> bytes:
        if "gridfs" in ref:
            bucket = AsyncIOMotorGridFSBucket(self.db, bucket_name="bodies_fs")
            stream = await self._call(bucket.open_download_stream(ref["gridfs"]))
            return await self._call(stream.read())
        doc = await self._call(self.db.bodies.find_one({"_id": ref["doc"]}))
        return bytes(doc["body"]) if doc else b""

    async def list_results(self, limit: int, cursor: str | None) -> Page:
        """Completed tasks' results, newest completion first, without bodies."""
        query: dict[str, Any] = {"status": "completed"}
        after = _decode_cursor(cursor)
        if after is not None:
            at, task_id = after
            query["$or"] = [{"finished_at": {"$lt": at}}, {"finished_at": at, "_id": {"$lt": task_id}}]
        found = (self.db.jobs.find(query, {"result": 1, "finished_at": 1})
                 .sort([("finished_at", DESCENDING), ("_id", DESCENDING)]).limit(limit + 1))
        docs = await self._call(found.to_list(limit + 1))
        more = len(docs) > limit
        docs = docs[:limit]
        items = [_result(d["_id"], d["result"], None) for d in docs if "result" in d]
        next_cursor = _encode_cursor(docs[-1]["finished_at"], docs[-1]["_id"]) if more and docs else None
        return Page(items, next_cursor)

    async def changed_since(self, since: float, limit: int) -> list[Task]:
        """Recently changed tasks, for processes without change streams."""
        found = self.db.jobs.find({"updated_at": {"$gte": since}}, _TASK_FIELDS).sort("updated_at", ASCENDING)
        return [_task(d) for d in await self._call(found.limit(limit).to_list(limit))]

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
                                yield _task(doc)
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
