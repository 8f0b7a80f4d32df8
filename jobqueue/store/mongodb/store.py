"""The scale-out backend: MongoDB through motor (motor is used in this file only).

A task is one document; its result's metadata is written into that same document by the one
lease-guarded update that marks it completed, so a result appears exactly when the status does and
a stale worker can never add a second one. Bodies live beside it (mongodb_bodies.py), written before
the completion that names them, and may be shared by jobs that reused a fresh result.

Documents, indexes and migrations are in mongodb_schema.py; batches and idempotency keys in
mongodb_batches.py; claims and leases in mongodb_claims.py; the status counters in
mongodb_counters.py; the change stream's recovery in mongodb_watch.py; client options and error
messages in mongodb_connect.py. Every operation that moves a job's status also moves the counters
and its batch's counts. Every motor call that is motor's own (the client, `watch`) is here:
docs/mongodb.md says what a move to PyMongo's AsyncMongoClient changes.

The finishing updates (complete, reschedule and fail through _finish, cancel) are each one
`find_one_and_update` with one update document, so whatever must be written atomically with a
job's end (the webhook outbox mark, the attempt log) goes in as more fields of that document.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import pymongo
from bson.errors import InvalidDocument
from motor.motor_asyncio import AsyncIOMotorClient
from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.errors import AutoReconnect, ExecutionTimeout, PyMongoError

from jobqueue.extract.views import EXTRACTOR_VERSION
from jobqueue.idempotency import IdempotentAdd
from jobqueue.models import COMPLETED, RUNNING, CrawlLinks, Page, Result, Task, TaskError
from jobqueue.store.base import (
    ALL_TASKS,
    BadCursor,
    Capabilities,
    Lease,
    NewTask,
    StoreError,
    TaskFilter,
)
from jobqueue.store.mongodb.batches import MongoBatchOps, Moves, answer_doc
from jobqueue.store.mongodb.bodies import MongoBodies, body_key, keep_body, packed, sha_ref
from jobqueue.store.mongodb.bulk import MongoBulkOps
from jobqueue.store.mongodb.cancel import MongoCancelOps
from jobqueue.store.mongodb.changes import MongoChangeOps, logs_changes
from jobqueue.store.mongodb.claims import MongoClaimOps
from jobqueue.store.mongodb.connect import (
    AMBIGUOUS,
    CANNOT_STORE,
    MIGRATION_SECONDS,
    RETRY_AFTER_SECONDS,
    client_options,
    database_name,
    open_error,
    operation_error,
    selection_seconds,
    storable,
    write_concern,
)
from jobqueue.store.mongodb.counters import MAINTENANCE, MongoCounterOps
from jobqueue.store.mongodb.counting import MongoCountOps
from jobqueue.store.mongodb.crawls import MongoCrawlOps
from jobqueue.store.mongodb.filters import LIST_FILTERS, MAX_TIME_MS, TOO_SLOW, mongo_query
from jobqueue.store.mongodb.history import MongoHistoryOps
from jobqueue.store.mongodb.hosts import MongoHostOps
from jobqueue.store.mongodb.robots import MongoRobotsOps
from jobqueue.store.mongodb.schedules import MongoScheduleOps
from jobqueue.store.mongodb.schema import (
    TASK_FIELDS,
    after_cursor,
    encode_cursor,
    migrate,
    new_job_doc,
    result_doc,
    result_from_doc,
    task_from_doc,
)
from jobqueue.store.mongodb.stats import MongoStatsOps
from jobqueue.store.mongodb.transitions import MongoTransitionOps, leased, update_doc
from jobqueue.store.mongodb.views import MongoViewOps
from jobqueue.store.mongodb.watch import Change, follow
from jobqueue.store.mongodb.webhooks import MongoWebhookOps, outbox_mark
from jobqueue.store.transitions import COMPLETE, FAIL, RESCHEDULE, RETRY, Given, Transition
from jobqueue.store.trip_time import CallTimer, Latency
from jobqueue.webhooks.outbox import Outbox

AMBIGUOUS_TRIES = 3
log = logging.getLogger("jobqueue.store.mongodb.store")


@logs_changes
class MongoStore(MongoTransitionOps, MongoCancelOps, MongoClaimOps, MongoCounterOps, MongoBatchOps, MongoBodies,
                 MongoWebhookOps, MongoBulkOps, MongoHistoryOps, MongoScheduleOps, MongoStatsOps, MongoChangeOps,
                 MongoViewOps, MongoCountOps, MongoRobotsOps, MongoCrawlOps, MongoHostOps):
    """Tasks, results and bodies in MongoDB; claims take a batch of jobs with one guarded update_many."""

    name = "mongodb"
    # change streams need a replica set: watch() raises ChangesUnavailable elsewhere
    capabilities = Capabilities(change_stream=True, list_filters=LIST_FILTERS)

    def __init__(self, url: str, clock: Callable[[], float] = time.time,
                 client_factory: Callable[[str], Any] | None = None, *, outbox: Outbox | None = None,
                 url_changed: Callable[[Task, str], None] | None = None, latency: Latency | None = None) -> None:
        """`outbox` and `url_changed` are the hooks of the OutboxStore and HistoryStore roles (webhooks off: None);
        `latency` is told each driver call's time (jobqueue/store/trip_time.py)."""
        self.url = url
        self.clock = clock
        self._client_factory = client_factory
        self._client: Any = None
        self._db: Any = None
        self.outbox = outbox
        self.url_changed = url_changed  # (the run, the previous run's id)
        self.latency = latency
        self._timer: CallTimer | None = None  # made at open, from `latency`

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> MongoStore:
        """Build a store from a `mongodb://host:port/dbname` URL."""
        return cls(url, **kwargs)

    @property
    def where(self) -> str:
        """The server part of the URL, without credentials, for messages."""
        return urlsplit(self.url).hostname or "localhost"

    def _new_client(self) -> Any:
        """The driver's client for the URL, with the timeouts the URL leaves out (mongodb_connect)."""
        if self._client_factory is not None:
            return self._client_factory(self.url)
        return AsyncIOMotorClient(self.url, **client_options(self.url))

    async def open(self) -> None:
        """Connect, check the server answers, and bring the database to the current schema version."""
        self._client = self._new_client()
        name = database_name(self.url)
        # the URL's database, as get_default_database reads it (mongomock-motor's get_default_database is not async)
        db = self._client.get_database(name, write_concern=write_concern(self.url))
        step = "connecting"
        try:
            with pymongo.timeout(selection_seconds(self.url)):
                await db.command("ping")
            step = "creating indexes or migrating its documents"
            with pymongo.timeout(MIGRATION_SECONDS):  # an index build over millions of jobs outlasts timeoutMS
                await migrate(db, self.clock(), self.where)
        except (PyMongoError, InvalidDocument) as exc:
            self._client.close()
            self._client = None
            raise open_error(exc, self.where, name, step) from exc
        self._timer = CallTimer(type(self), self.latency) if self.latency is not None else None
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
                             "try again shortly", retry_after=RETRY_AFTER_SECONDS)
        return self._db

    async def _call(self, operation: Any, allow: tuple[type[Exception], ...] = ()) -> Any:
        """Await a driver call, turning its errors into StoreError naming the real cause (except those in `allow`);
        every call passes here, so here it is timed."""
        timer = self._timer
        begun = timer.begin(1) if timer is not None else None
        try:
            return await operation
        except allow:
            raise
        except (PyMongoError, *CANNOT_STORE) as exc:
            raise operation_error(exc, self.where) from exc
        finally:
            if timer is not None and begun is not None:
                timer.end(begun)

    async def ping(self) -> str | None:
        """Raise StoreError when the server does not answer (the `ping` command reads and writes nothing)."""
        await self._call(self.db.command("ping"))
        return None

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
        await self._start_schedules(docs, now)
        if idempotent is not None:
            answer = idempotent.render(created) if requeued or planned is None else planned
            await self._keep_answer(idempotent.key, answer, now)
        return created

    async def get(self, task_id: str) -> Task | None:
        """Read one task."""
        doc = await self._call(self.db.jobs.find_one({"_id": task_id}, TASK_FIELDS))
        return task_from_doc(doc) if doc else None

    async def _filtered(self, find: Callable[[], Any], length: int) -> list[dict[str, Any]]:
        """A filtered listing's documents (from the cursor `find` makes) within MAX_TIME_MS, else 400
        filter_too_slow: the client's timeoutMS would otherwise replace a cursor's own maxTimeMS with its longer one.

        That cap bounds the wait for a server too (CSOT), far below an election: when no server answered within
        it (the driver's retry found none, and it raises the first try's error then), the listing waits for one
        as long as opening does (_wait_for_server) and reads again, so a stepdown delays it instead of failing it.
        """
        for attempt in range(2):
            try:
                with pymongo.timeout(MAX_TIME_MS / 1000):
                    return await self._call(find().max_time_ms(MAX_TIME_MS).to_list(length),
                                            allow=(ExecutionTimeout, AutoReconnect))
            except ExecutionTimeout:
                raise TOO_SLOW from None
            except AutoReconnect as exc:  # ServerSelectionTimeoutError, NotPrimaryError, a dropped connection
                if attempt:
                    raise operation_error(exc, self.where) from exc
            await self._wait_for_server()
        raise AssertionError("unreachable: the second try returns or raises")

    async def _wait_for_server(self) -> None:
        """Wait for a server as long as the URL's serverSelectionTimeoutMS (else SERVER_SELECTION_MS) allows, which
        under CSOT only an explicit timeout can say; StoreError when none answers by then."""
        with pymongo.timeout(selection_seconds(self.url)):
            await self._call(self.db.command("ping"))

    async def complete(self, lease: Lease, result: Result) -> Task | None:
        """Store the body once per sha256 (pinned, mongodb_bodies), then in one lease-guarded update mark completed
        and attach the result naming it; a recurring job's next run is queued right after. A result MongoDB
        cannot store is refused before anything is written; a refused completion (stale lease) lets go of its
        body, which goes unless another result has the same one."""
        body = result.body or b""
        now = self.clock()
        packed_body = await packed(body)
        ref = sha_ref(packed_body.sha256)
        # a render's screenshot and PDF are bodies too, named by result.artifact_refs (mongodb/bodies.py)
        captures = {kind: await packed(data) for kind, data in result.artifacts.items()}
        update = update_doc(COMPLETE, Given(now, http_status=result.http_status), self.outbox,
                            result=result_doc(result, ref, len(body), {k: p.sha256 for k, p in captures.items()}))
        storable(update, self.where)
        refs = [ref]
        try:
            await self._call(keep_body(self.db.bodies, packed_body, body_key(lease), lease.task_id, now))
            for kind, capture in captures.items():
                await self._call(keep_body(self.db.bodies, capture, f"{body_key(lease)}:{kind}", lease.task_id, now))
                refs.append(sha_ref(capture.sha256))
            if result.views is not None:  # computed by its worker (formats): there as soon as it is completed
                await self.put_views(packed_body.sha256, EXTRACTOR_VERSION, result.views)
            if result.crawl_links is not None:  # before the completion: a crash in between loses no page
                await self._crawl_links(lease, result.crawl_links, now)
            doc = await self._finish(lease, update, applied={"_id": lease.task_id, "status": COMPLETED,
                                                             "finished_at": now, "result.body_ref": ref})
        finally:
            for pinned in refs:
                await self._after_finish(lease.task_id, self._unpin_body(pinned), "letting go of its body's pin",
                                         "the pin runs out within the hour")
        if doc is None:  # a stale worker's body goes, unless a result has the same one
            for kept in refs:
                await self._after_finish(lease.task_id, self._release_body(kept, None), "dropping the body stored "
                                         "under its lost lease", "the maintenance round's sweep deletes it")
            return None
        await self._after_finish(lease.task_id, self._moved(doc, RUNNING, now),
                                 "its outcome is recorded, but moving the counts",
                                 "the maintenance round's recount repairs them")
        task = task_from_doc(doc)
        follow = self._follow(COMPLETE, doc, now, result.compared_key(ref["sha"]))
        changed_from = await self._after_finish(lease.task_id, follow,
                                                "its outcome is recorded, but queueing the schedule's next run",
                                                "the maintenance round queues it")
        if changed_from is not None and self.url_changed is not None:
            self.url_changed(task, changed_from)
        return task

    async def _crawl_links(self, lease: Lease, links: CrawlLinks, now: float) -> None:
        """Queue a completing crawl page's links, while its lease holds."""
        doc = await self._call(self.db.jobs.find_one({"_id": lease.task_id, "lease_token": lease.token},
                                                     {"crawl_id": 1}))
        if doc is not None and doc.get("crawl_id") is not None:
            await self._insert_pages(doc["crawl_id"], links, now)

    @staticmethod
    async def _after_finish(task_id: str, step: Awaitable[Any], what: str, repair: str) -> Any:
        """Run a step that follows a finishing update; its failure is logged (`what` failed; `repair` says what
        mends it), not raised: the caller would otherwise report a finished job as "not recorded, it will run
        again"."""
        try:
            return await step
        except StoreError as exc:
            log.warning("task %s: %s failed (%s); %s", task_id, what, exc, repair)
            return None

    async def _finish(self, lease: Lease, update: dict[str, Any], applied: dict[str, Any]) -> dict[str, Any] | None:
        """The one lease-guarded update that ends an attempt; the job after it, or None for a stale lease.

        After an ambiguous error (the connection dropped, or the write concern failed: the update may have
        been applied) it looks for the job as `applied` describes it, which only this update can produce,
        and else repeats the update (still guarded by the lease, so it cannot apply twice).
        """
        storable(update, self.where)
        guard = leased(COMPLETE, lease.task_id, lease.token)  # every move under a lease leaves `running`
        unsure: Exception | None = None  # the last ambiguous error: until `applied` is read, ours may have landed
        for _ in range(AMBIGUOUS_TRIES):
            matched_nothing = False
            try:
                doc = await self._call(self.db.jobs.find_one_and_update(
                    guard, update, projection=TASK_FIELDS, return_document=ReturnDocument.AFTER), allow=AMBIGUOUS)
            except AMBIGUOUS as exc:
                unsure = exc
            else:
                if doc is not None or unsure is None:
                    return doc
                matched_nothing = True  # after an ambiguous try: ours landed then, or the lease was lost
            try:
                mine = await self._call(self.db.jobs.find_one(applied, TASK_FIELDS), allow=AMBIGUOUS)
            except AMBIGUOUS as exc:
                unsure = exc
                continue  # still unreachable: repeat the guarded update, which is safe either way
            if mine is not None:
                return mine  # it was applied before the connection dropped
            if matched_nothing:
                return None  # not ours, and no longer under our lease
        assert unsure is not None
        raise operation_error(unsure, self.where) from unsure

    async def _finish_attempt(self, move: Transition, lease: Lease, given: Given) -> Task | None:
        """Reschedule or fail under the lease, then move the counts and, after a failed run, queue the next."""
        doc = await self._finish(lease, update_doc(move, given, self.outbox),
                                 applied={"_id": lease.task_id, "status": move.target, "updated_at": given.now,
                                          "lease_token": None})
        if doc is None:
            return None
        await self._after_finish(lease.task_id, self._moved(doc, RUNNING, given.now),
                                 "its outcome is recorded, but moving the counts",
                                 "the maintenance round's recount repairs them")
        await self._after_finish(lease.task_id, self._follow(move, doc, given.now),
                                 "its outcome is recorded, but queueing the schedule's next run",
                                 "the maintenance round queues it")
        return task_from_doc(doc)

    async def reschedule(self, lease: Lease, at: float, error: TaskError, http_status: int | None) -> Task | None:
        """Queue again for `at`, keeping the last error; only under a live lease."""
        return await self._finish_attempt(RESCHEDULE, lease, Given(self.clock(), at=at, http_status=http_status,
                                                                 error=error))

    async def fail(self, lease: Lease, error: TaskError, http_status: int | None) -> Task | None:
        """Mark failed for good; only under a live lease."""
        return await self._finish_attempt(FAIL, lease, Given(self.clock(), http_status=http_status, error=error))

    async def retry(self, task_id: str) -> Task:
        """Queue a finished task again and drop its old result (its body too, unless another job shares it)."""
        after = await self._transit(RETRY, task_id, Given(self.clock()))
        if after is None:
            raise await self._refusal(RETRY, task_id)
        return task_from_doc(after)

    async def get_result(self, task_id: str, with_body: bool) -> Result | None:
        """Read a completed task's result, loading the body only when asked."""
        doc = await self._call(self.db.jobs.find_one({"_id": task_id, "status": COMPLETED}, {"result": 1}))
        if doc is None or "result" not in doc:
            return None
        body = None
        if with_body:
            body = await self._load_body(doc["result"]["body_ref"])
            if body is None:
                return None  # a retry dropped it after we read the result: there is no result now
        return result_from_doc(task_id, doc["result"], body)

    async def get_artifact(self, task_id: str, kind: str) -> bytes | None:
        """A completed rendered job's screenshot or PDF (None when it has none)."""
        doc = await self._call(self.db.jobs.find_one({"_id": task_id, "status": COMPLETED},
                                                     {f"result.render.captured.{kind}": 1}))
        sha = (((doc or {}).get("result") or {}).get("render") or {}).get("captured", {}).get(kind)
        return await self._load_body(sha_ref(sha)) if sha else None

    async def list_results(self, limit: int, cursor: str | None, where: TaskFilter = ALL_TASKS) -> Page:
        """Completed tasks' results, newest completion first, without bodies, narrowed by the jobs' fields."""
        query: dict[str, Any] = {**mongo_query(where), "status": COMPLETED}
        if where.status not in (None, COMPLETED):
            return Page([], None)
        query.update(after_cursor("finished_at", cursor))
        docs = await self._filtered(lambda: self.db.jobs.find(query, {"result": 1, "finished_at": 1})
                                    .sort([("finished_at", DESCENDING), ("_id", DESCENDING)]).limit(limit + 1),
                                    limit + 1)
        more = len(docs) > limit
        docs = docs[:limit]
        items = [result_from_doc(d["_id"], d["result"], None) for d in docs if "result" in d]
        next_cursor = encode_cursor(docs[-1]["finished_at"], docs[-1]["_id"]) if more and docs else None
        return Page(items, next_cursor)

    async def changed_since(self, since: float, limit: int) -> list[Task]:
        """Recently changed tasks, for processes without change streams."""
        found = self.db.jobs.find({"updated_at": {"$gte": since}}, TASK_FIELDS).sort("updated_at", ASCENDING)
        return [task_from_doc(d) for d in await self._call(found.limit(limit).to_list(limit))]

    async def watch(self, ready: asyncio.Event | None = None) -> AsyncIterator[Change]:
        """Yield every task change (a Task) and deletion (JobDeleted) any process commits, from a change stream that
        recovers (mongodb_watch).

        Raises ChangesUnavailable on a server without change streams (standalone, or a mock) and after
        repeated failures; `ready` is set once the stream is open, so a caller knows from when on nothing
        is missed.
        """
        async for task in follow(self._open_stream, self.changed_from, self.clock, self.where, ready):
            yield task

    async def _open_stream(self, pipeline: list[dict[str, Any]], start_after: Any) -> Any:
        """motor's change stream on jobs (PyMongo's AsyncMongoClient would need `await` before watch)."""
        return self.db.jobs.watch(pipeline, full_document="updateLookup", start_after=start_after)

    async def maintain(self) -> None:
        """One maintenance round, by one process per MAINTAIN_EVERY seconds: recount when due, sweep orphan bodies,
        repair schedules whose chain a crash broke."""
        now = self.clock()
        lease = await self._take_maintenance(now)
        if lease is None:
            return
        if await self._recount_due(now):
            await self.recount_counters()
        swept_to = await self.sweep_bodies(float(lease.get("swept_to") or 0.0), now)
        await self.repair_schedules(now)
        await self._call(self.db.counters.update_one({"_id": MAINTENANCE}, {"$set": {"swept_to": swept_to}}))

    async def purge_idempotency(self, before: float) -> int:
        """Delete old keys (a bounded number per call); when none is left, run a maintenance round (housekeeping
        calls this every minute until it returns 0)."""
        purged = await super().purge_idempotency(before)
        if not purged:
            await self.maintain()
        return purged

    # last: below it, `list` in this class's annotations names this method, not the builtin
    async def list(self, where: TaskFilter, limit: int, cursor: str | None) -> Page:
        """Newest first by id (ids sort by creation time), narrowed by the filter (mongodb_filters)."""
        query = mongo_query(where)
        if cursor is not None:
            if not cursor.startswith("i") or len(cursor) < 2:
                raise BadCursor(f"unknown cursor {cursor!r}: use the 'next' value of a previous page")
            query["_id"] = {"$lt": cursor[1:]}
        docs = await self._filtered(
            lambda: self.db.jobs.find(query, TASK_FIELDS).sort("_id", DESCENDING).limit(limit + 1), limit + 1)
        more = len(docs) > limit
        docs = docs[:limit]
        return Page([task_from_doc(d) for d in docs], f"i{docs[-1]['_id']}" if more and docs else None)
