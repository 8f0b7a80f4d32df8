"""MongoDB documents: how jobs, results and batches are stored, the indexes, and the versioned migrations.

No motor here: the functions take the database (or a collection) the store opened and call it.
A database's version lives in `meta` as `{_id: "schema", version: N}`; a database without it that
has a `jobs` collection was written by release 0.1 (version 1). Steps are never edited once
released: a change is a new step. Every step is idempotent (indexes are ensured by name, backfills
only touch documents that lack the field), so two processes opening the same old database at once
may both run a step without harm; `$max` keeps the recorded version from going backwards.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pymongo import ASCENDING, DESCENDING, UpdateOne
from pymongo.errors import OperationFailure

from jobqueue.models import COMPLETED, QUEUED, STATUSES, Batch, Result, Task, TaskError
from jobqueue.spec import FetchOptions, load_render, stored_render
from jobqueue.store.base import BadCursor, NewTask, StoreError
from jobqueue.store.mongodb.bodies import content_address_bodies
from jobqueue.store.mongodb.hosts import v15_hosts
from jobqueue.webhooks.spec import WebhookSpec

TASK_FIELDS = {"result": 0}
CLAIM_ORDER = [("priority", DESCENDING), ("available_at", ASCENDING)]
# Equality (status), sort (priority, due time), then the host exclusion, read from the keys: a claim that
# skips a host holding most due jobs examines index keys, not documents. Hinted by claims (migration 4).
CLAIM_INDEX_NAME = "due_by_host"
CLAIM_INDEX = [("status", ASCENDING), *CLAIM_ORDER, ("host", ASCENDING)]
# Rendered jobs (a `render` field) are claimed by the render workers on an index of their own, partial on that
# field, so their claims never walk the plain queue; the curl workers' claim leaves them out by the same field.
RENDER_CLAIM_INDEX_NAME = "due_rendered"
RENDERED_FILTER = {"render": {"$exists": True}}
PLAIN_FILTER = {"render": {"$exists": False}}


def task_from_doc(doc: Mapping[str, Any]) -> Task:
    """Turn a job document (of any version: release 0.1's lack the spec fields) into a Task."""
    error = doc.get("error")
    return Task(
        id=doc["_id"], url=doc["url"], host=doc["host"], status=doc["status"], attempts=doc["attempts"],
        created_at=doc["created_at"], updated_at=doc["updated_at"], started_at=doc.get("started_at"),
        finished_at=doc.get("finished_at"), available_at=doc["available_at"], http_status=doc.get("http_status"),
        error=TaskError(error["code"], error["message"]) if error else None, lease_token=doc.get("lease_token"),
        fetch=FetchOptions.from_stored(doc.get("fetch")), priority=doc.get("priority", 0),
        not_before=doc.get("not_before"), tags=tuple(doc.get("tags") or ()), batch_id=doc.get("batch_id"),
        reused_from=doc.get("reused_from"), webhook=WebhookSpec.from_json(doc.get("webhook")),
        attempt_log=tuple({"attempt": i + 1, **entry} for i, entry in enumerate(doc.get("attempt_log") or ())),
        schedule_id=doc.get("schedule_id"), every=doc.get("every"), render=load_render(doc.get("render")),
        formats=tuple(doc.get("formats") or ()), changed_on=doc.get("changed_on") or "body",
        robots=doc.get("robots"), crawl_id=doc.get("crawl_id"), depth=doc.get("depth"),
        parent_id=doc.get("parent_id"),
    )


def attempt_entry(at: float, outcome: str, http_status: int | None, error: Mapping[str, Any] | None
                  ) -> dict[str, Any]:
    """One finished attempt, as the finishing update pushes it onto the job's attempt_log."""
    return {"at": at, "outcome": outcome, "http_status": http_status,
            "error": error["code"] if error else None, "message": error["message"] if error else None}


def new_job_doc(new: NewTask, now: float, source: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The document of a new job: queued, or completed at once sharing `source`'s result (and body)."""
    spec = new.spec
    doc: dict[str, Any] = {
        "_id": new.id, "url": new.url, "host": new.host, "status": QUEUED, "attempts": 0, "created_at": now,
        "updated_at": now, "available_at": max(now, spec.not_before) if spec.not_before is not None else now,
        "started_at": None, "finished_at": None, "lease_token": None, "http_status": None, "error": None,
        "priority": spec.priority, "not_before": spec.not_before, "reuse_key": new.reuse_key, "reused_from": None,
    }
    stored = spec.fetch.to_stored()
    if stored:
        doc["fetch"] = stored
    if spec.tags:
        doc["tags"] = list(spec.tags)
    if new.batch_id is not None:
        doc["batch_id"] = new.batch_id
    if spec.webhook is not None:
        doc["webhook"] = spec.webhook.to_json()
    if spec.render is not None:  # absent otherwise: the rendered claim's index is partial on it
        doc["render"] = stored_render(spec.render, spec.capture)
    if spec.formats:  # readable content: absent at their defaults
        doc["formats"] = list(spec.formats)
    if spec.changed_on != "body":
        doc["changed_on"] = spec.changed_on
    if spec.robots is not None:  # politeness: absent for the server's --robots
        doc["robots"] = spec.robots
    if new.crawl_id is not None:  # absent otherwise: the unique (crawl_id, crawl_key) index covers pages only
        doc.update(crawl_id=new.crawl_id, crawl_key=new.crawl_key, depth=new.depth, parent_id=new.parent_id)
    if spec.every is not None:  # absent otherwise: the unique (schedule_id, due_at) index covers runs only
        doc.update(schedule_id=new.id, every=spec.every, due_at=doc["available_at"])
    if source is not None:
        doc.update(status=COMPLETED, finished_at=now, http_status=source["http_status"], reused_from=source["_id"],
                   result=source["result"])  # the result names the source's body: shared, not copied
    return doc


def applied(before: Mapping[str, Any], sets: Mapping[str, Any], unset: tuple[str, ...] = (),
            attempts: int = 0) -> dict[str, Any]:
    """A document as an update made it, computed from the state before it (ReturnDocument.BEFORE)."""
    after = {**before, **sets}
    for name in unset:
        after.pop(name, None)
    if attempts:
        after["attempts"] = after["attempts"] + attempts
    return after


def result_doc(result: Result, body_ref: dict[str, Any], body_size: int, captured: Mapping[str, str] | None = None
               ) -> dict[str, Any]:
    """The result sub-document written into a job by the completion that marks it completed; `body_size` is
    the stored body's raw length (GET /stats/storage adds them up); `captured` the sha256 of each capture of a
    render (its screenshot, its PDF), stored as bodies and named in `artifact_refs`."""
    return {
        "url": result.url, "final_url": result.final_url, "http_status": result.http_status,
        "headers": result.headers, "content_type": result.content_type, "encoding": result.encoding,
        "encoding_source": result.encoding_source, "size": result.size, "truncated": result.truncated,
        "elapsed_ms": result.elapsed_ms, "fetched_at": result.fetched_at, "sha256": result.sha256,
        "redirects": result.redirects, "timings": result.timings, "body_ref": body_ref,
        "body_size": body_size, **({"raw_headers": result.raw_headers} if result.raw_headers else {}),
        **({"render": {"blocked_requests": result.blocked_requests, "timings": result.render_timings,
                       "captured": dict(captured or {})}} if result.rendered else {}),
        **({"artifact_refs": [{"sha": sha} for sha in sorted(set(captured.values()))]} if captured else {}),
    }


def result_from_doc(task_id: str, doc: Mapping[str, Any], body: bytes | None) -> Result:
    """Turn a job's result sub-document into a Result (with the body when it was loaded)."""
    return Result(
        id=task_id, url=doc["url"], final_url=doc["final_url"], http_status=doc["http_status"],
        headers=doc["headers"], content_type=doc["content_type"], encoding=doc["encoding"],
        encoding_source=doc["encoding_source"], size=doc["size"], truncated=doc["truncated"],
        elapsed_ms=doc["elapsed_ms"], fetched_at=doc["fetched_at"], sha256=doc["sha256"],
        redirects=doc["redirects"], timings=doc["timings"], body=body,
        raw_headers=bytes(doc["raw_headers"]) if doc.get("raw_headers") is not None else None,
        **({"rendered": True, "blocked_requests": doc["render"]["blocked_requests"],
            "render_timings": doc["render"]["timings"], "captured": tuple(sorted(doc["render"].get("captured", ())))}
           if doc.get("render") else {}),
    )


def new_batch_doc(batch_id: str, total: int, tags: tuple[str, ...], now: float, storing_until: float,
                  webhook: WebhookSpec | None = None) -> dict[str, Any]:
    """An unsealed batch with zero counts; `rev` moves with every count change (see recount_batch)."""
    return {"_id": batch_id, "created_at": now, "total": total, "tags": list(tags), "sealed": False,
            "storing_until": storing_until, "finished_at": None, "rev": 0, **dict.fromkeys(STATUSES, 0),
            "webhook": webhook.to_json() if webhook is not None else None, "hooked_at": None}


def batch_from_doc(doc: Mapping[str, Any]) -> Batch:
    """Turn a batch document into a Batch."""
    return Batch(id=doc["_id"], created_at=doc["created_at"], total=doc["total"],
                 counts={s: int(doc.get(s, 0)) for s in STATUSES}, finished_at=doc.get("finished_at"),
                 tags=tuple(doc.get("tags") or ()), sealed=bool(doc.get("sealed")))


def _finished(now: float) -> dict[str, Any]:
    """finished_at as the counts make it: kept (or now) once sealed with nothing queued or running, else null."""
    idle = {"$eq": [{"$add": [{"$ifNull": ["$queued", 0]}, {"$ifNull": ["$running", 0]}]}, 0]}
    return {"$cond": [{"$and": [{"$eq": ["$sealed", True]}, idle]}, {"$ifNull": ["$finished_at", now]}, None]}


def count_update(deltas: Mapping[str, int], now: float) -> list[dict[str, Any]]:
    """A pipeline update moving a batch's counts and setting or clearing finished_at in the same write."""
    moved = {s: {"$add": [{"$ifNull": [f"${s}", 0]}, n]} for s, n in deltas.items()}
    return [{"$set": {**moved, "rev": {"$add": [{"$ifNull": ["$rev", 0]}, 1]}}},
            {"$set": {"finished_at": _finished(now)}}]


def recount_update(counted: Mapping[str, int], now: float) -> list[dict[str, Any]]:
    """A pipeline update replacing a batch's counts with exact ones."""
    exact = {s: {"$literal": n} for s, n in counted.items()}
    return [{"$set": {**exact, "rev": {"$add": [{"$ifNull": ["$rev", 0]}, 1]}}},
            {"$set": {"finished_at": _finished(now)}}]


def seal_update(now: float) -> list[dict[str, Any]]:
    """A pipeline update sealing a batch, finished at once when none of its jobs is left to run."""
    # $literal: in a pipeline stage a bare `true` could read as a field inclusion ($project's meaning)
    return [{"$set": {"sealed": {"$literal": True}, "storing_until": None}}, {"$set": {"finished_at": _finished(now)}}]


def encode_cursor(at: float, object_id: str) -> str:
    """The opaque cursor of a page that ended at (time, id)."""
    return f"{at!r}~{object_id}"


def decode_cursor(cursor: str | None) -> tuple[float, str] | None:
    """The (time, id) a cursor points after (BadCursor for anything this store did not hand out)."""
    if cursor is None:
        return None
    at, sep, object_id = cursor.partition("~")
    try:
        return float(at), object_id if sep else ""
    except ValueError:
        raise BadCursor(f"unknown cursor {cursor!r}: use the 'next' value of a previous page") from None


def after_cursor(field: str, cursor: str | None) -> dict[str, Any]:
    """The query clause of a (field desc, _id desc) listing continuing after `cursor`."""
    after = decode_cursor(cursor)
    if after is None:
        return {}
    at, object_id = after
    return {"$or": [{field: {"$lt": at}}, {field: at, "_id": {"$lt": object_id}}]}


# --- indexes and migrations -------------------------------------------------------------------


async def ensure_index(collection: Any, keys: list[tuple[str, int]], name: str, replace: bool = True,
                       **options: Any) -> None:
    """Make the index `name` have `keys`: create it, or (with `replace`) drop one of that name with other keys.

    A concurrent opener may create the same name in between (code 85/86): look again, at most 3 times.
    """
    for attempt in range(3):
        existing = (await collection.index_information()).get(name)
        if existing is not None:
            found = [(k, int(v) if isinstance(v, int | float) else v) for k, v in existing["key"]]
            if not replace or found == keys:
                return
            try:
                await collection.drop_index(name)
            except OperationFailure as exc:
                if exc.code != 27:  # IndexNotFound: another opener dropped it first
                    raise
        try:
            await collection.create_index(keys, name=name, **options)
            return
        except OperationFailure as exc:
            if exc.code not in (85, 86) or attempt == 2:  # IndexOptionsConflict, IndexKeySpecsConflict
                raise


async def _v1_release_0_1(db: Any) -> None:
    """The indexes release 0.1 made (a database of that release already has them)."""
    jobs = db.jobs
    await ensure_index(jobs, [("status", ASCENDING), ("available_at", ASCENDING)], "claim", replace=False)
    await ensure_index(jobs, [("status", ASCENDING), ("_id", DESCENDING)], "by_status")
    await ensure_index(jobs, [("updated_at", ASCENDING)], "by_update")
    await ensure_index(jobs, [("status", ASCENDING), ("finished_at", DESCENDING), ("_id", DESCENDING)], "results")
    await ensure_index(db.bodies, [("task_id", ASCENDING)], "by_task")


async def _v2_job_specs(db: Any) -> None:
    """Claims by priority, freshness reuse, shared bodies, batches, idempotency keys; backfill old jobs."""
    jobs = db.jobs
    # mongomock-motor accepts these (partial and sparse ones too) but plans no query with them: a real
    # server is where they matter.
    # replaces release 0.1's (status, available_at); migration 4 replaces this one
    await ensure_index(jobs, [("status", ASCENDING), *CLAIM_ORDER], "claim")
    # reused_from in the key keeps the lookup off the (many) jobs that reused a result: they are never a source.
    await ensure_index(jobs, [("reuse_key", ASCENDING), ("reused_from", ASCENDING), ("finished_at", DESCENDING)],
                       "fresh", partialFilterExpression={"status": COMPLETED})
    in_batch = {"batch_id": {"$exists": True}}
    await ensure_index(jobs, [("batch_id", ASCENDING), ("_id", DESCENDING)], "by_batch",
                       partialFilterExpression=in_batch)
    await ensure_index(jobs, [("batch_id", ASCENDING), ("status", ASCENDING)], "batch_status",
                       partialFilterExpression=in_batch)
    await ensure_index(jobs, [("result.body_ref", ASCENDING)], "body_ref", sparse=True)
    await ensure_index(db.batches, [("sealed", ASCENDING), ("created_at", DESCENDING), ("_id", DESCENDING)],
                       "listing")
    await ensure_index(db.batches, [("storing_until", ASCENDING)], "storing",
                       partialFilterExpression={"sealed": False})
    await ensure_index(db.idempotency, [("created_at", ASCENDING)], "by_age")
    await jobs.update_many({"priority": {"$exists": False}}, {"$set": {"priority": 0}})
    # Release 0.1's jobs were plain GETs: their reuse key is DEFAULT_FETCH's (from_stored(None) is DEFAULT_FETCH).
    pending: list[tuple[dict[str, Any], dict[str, Any]]] = []
    async for doc in jobs.find({"reuse_key": {"$exists": False}}, {"url": 1, "fetch": 1}):
        key = FetchOptions.from_stored(doc.get("fetch")).reuse_key(doc["url"])
        pending.append(({"_id": doc["_id"], "reuse_key": {"$exists": False}}, {"$set": {"reuse_key": key}}))
        if len(pending) >= 1000:
            await _bulk(jobs, pending)
            pending = []
    await _bulk(jobs, pending)


async def _bulk(collection: Any, updates: list[tuple[dict[str, Any], dict[str, Any]]]) -> None:
    """Apply (filter, update) pairs in one round trip."""
    if not updates:
        return
    try:
        await collection.bulk_write([UpdateOne(f, u) for f, u in updates], ordered=False)
    except TypeError:
        # mongomock 4.3's bulk_write cannot read PyMongo 4.9+'s UpdateOne (it passes `sort=`): one at a time.
        for query, update in updates:
            await collection.update_one(query, update)


async def _v3_webhooks_filters(db: Any) -> None:
    """The webhook outbox (marked jobs, deliveries, finished batches) and the listing filters' indexes."""
    jobs, deliveries = db.jobs, db.webhook_deliveries
    await ensure_index(jobs, [("outbox", ASCENDING)], "outbox", sparse=True)
    await ensure_index(db.batches, [("finished_at", ASCENDING)], "finished")
    await ensure_index(deliveries, [("status", ASCENDING), ("next_attempt_at", ASCENDING)], "due")
    await ensure_index(deliveries, [("created_at", DESCENDING), ("_id", DESCENDING)], "newest")
    await ensure_index(deliveries, [("task_id", ASCENDING), ("created_at", DESCENDING)], "by_task")
    await ensure_index(deliveries, [("batch_id", ASCENDING), ("created_at", DESCENDING)], "by_batch")
    for name, key in (("by_host", "host"), ("by_tag", "tags"), ("by_error", "error.code"),
                      ("by_http_status", "http_status"), ("by_created", "created_at")):
        await ensure_index(jobs, [(key, ASCENDING), ("_id", DESCENDING)], name)


async def _v4_scale(db: Any) -> None:
    """Claims that skip busy hosts on the index, status counters, and bodies the sweep can walk by age."""
    jobs = db.jobs
    await ensure_index(jobs, CLAIM_INDEX, CLAIM_INDEX_NAME)
    if "claim" in await jobs.index_information():
        try:
            await jobs.drop_index("claim")  # the new index serves every claim; one fewer to write
        except OperationFailure as exc:
            if exc.code != 27:  # IndexNotFound: another opener dropped it first
                raise
    await ensure_index(db.bodies, [("created_at", ASCENDING)], "by_created")
    await ensure_index(db.bodies, [("of", ASCENDING)], "by_head", sparse=True)
    counted = {s: int(await jobs.count_documents({"status": s})) for s in STATUSES}
    # $setOnInsert: a process that opened first already counted (and its moves since are in the document)
    await db.counters.update_one({"_id": "jobs"}, {"$setOnInsert": {**counted, "rev": 0, "recounted_at": 0.0}},
                                 upsert=True)


async def _v5_history(db: Any) -> None:
    """Content-addressed bodies (older ones moved byte-identical), URL history, retention, recurring fetches."""
    jobs = db.jobs
    await ensure_index(jobs, [("url", ASCENDING), ("finished_at", DESCENDING), ("_id", DESCENDING)], "history",
                       partialFilterExpression={"status": COMPLETED})
    await ensure_index(jobs, [("finished_at", ASCENDING), ("_id", ASCENDING)], "by_finish")
    # One run per due time of a schedule, whatever finishes twice. Sparse: only runs carry schedule_id and
    # due_at at all (sparse rather than partial, which mongomock ignores when it checks existing documents).
    await ensure_index(jobs, [("schedule_id", ASCENDING), ("due_at", ASCENDING)], "schedule_due", unique=True,
                       sparse=True)
    await ensure_index(jobs, [("schedule_id", ASCENDING), ("status", ASCENDING)], "schedule_status",
                       partialFilterExpression={"schedule_id": {"$exists": True}})
    await ensure_index(db.schedules, [("created_at", DESCENDING), ("_id", DESCENDING)], "newest")
    await ensure_index(db.bodies, [("of", ASCENDING), ("layout", ASCENDING)], "by_layout", sparse=True)
    await content_address_bodies(db, time.time())


async def _v6_url_changed_hooks(db: Any) -> None:
    """url.changed records waiting for the webhook relay, found on a sparse index (relayed ones drop out)."""
    await ensure_index(db.url_changes, [("unhooked", ASCENDING)], "unhooked", sparse=True)


async def _v7_job_changes(db: Any) -> None:
    """The change log kept where there are no change streams (mongodb_changes.py), read and pruned by the numbers
    its writers reserve from the server's counter."""
    await ensure_index(db.job_changes, [("seq", ASCENDING)], "by_seq", unique=True)


async def _v8_slots(db: Any) -> None:
    """Slots of requests in flight per host and per webhook endpoint (mongodb_slots.py): read by scope at each
    claim, freed and renewed by their holders' lease tokens."""
    await ensure_index(db.slots, [("scope", ASCENDING)], "by_scope")
    await ensure_index(db.slots, [("token", ASCENDING)], "by_token")


async def _v9_upkeep_indexes(db: Any) -> None:
    """Indexes for the reads that scanned: the schedule repair's overdue chains, claims of webhook deliveries
    (the endpoint exclusion read from the keys, as claims of jobs skip busy hosts), deliveries listed by status,
    and retention's old deliveries and url.changed records."""
    deliveries = db.webhook_deliveries
    await ensure_index(db.schedules, [("stopped_at", ASCENDING), ("next_run_at", ASCENDING)], "overdue")
    await ensure_index(deliveries, [("status", ASCENDING), ("next_attempt_at", ASCENDING), ("endpoint", ASCENDING)],
                       "due_by_endpoint")
    if "due" in await deliveries.index_information():
        try:
            await deliveries.drop_index("due")  # the new index's prefix serves what it served; one fewer to write
        except OperationFailure as exc:
            if exc.code != 27:  # IndexNotFound: another opener dropped it first
                raise
    await ensure_index(deliveries, [("status", ASCENDING), ("created_at", DESCENDING), ("_id", DESCENDING)],
                       "status_newest")
    await ensure_index(db.url_changes, [("created_at", ASCENDING)], "by_created")


async def _v10_stats(db: Any) -> None:
    """Live statistics every process adds its counts to (mongodb_stats.py): one document per slot, found by
    its (width, host, start), unique so that two processes adding to a new slot at once make one document."""
    await ensure_index(db.stats_slots, [("w", ASCENDING), ("h", ASCENDING), ("s", ASCENDING)], "slot", unique=True)


async def _v11_rendered(db: Any) -> None:
    """Rendered jobs are claimed on an index of their own, partial on their `render` field; the bodies their
    screenshots and PDFs are stored as are found named (before a deletion) on `result.artifact_refs`."""
    await ensure_index(db.jobs, CLAIM_INDEX, RENDER_CLAIM_INDEX_NAME, partialFilterExpression=RENDERED_FILTER)
    await ensure_index(db.jobs, [("result.artifact_refs", ASCENDING)], "artifact_refs", sparse=True)


async def _v12_body_views(db: Any) -> None:
    """Derived views of a body (mongodb/views.py), one document per (sha, extractor version): unique, so that two
    processes keeping the same views at once keep one; its prefix finds a body's views when the body goes."""
    await ensure_index(db.body_views, [("sha", ASCENDING), ("v", ASCENDING)], "key", unique=True)


async def _v13_robots(db: Any) -> None:
    """Each origin's robots.txt (mongodb/robots.py), one document per origin: unique, so every process shares it."""
    await ensure_index(db.robots, [("origin", ASCENDING)], "origin", unique=True)


async def _v14_crawls(db: Any) -> None:
    """Crawls (mongodb/crawls.py): each page once per crawl (unique, sparse as schedule_due is), a crawl's pages
    counted and listed by status and newest first, crawls listed newest first."""
    await ensure_index(db.jobs, [("crawl_id", ASCENDING), ("crawl_key", ASCENDING)], "crawl_page", unique=True,
                       sparse=True)
    await ensure_index(db.jobs, [("crawl_id", ASCENDING), ("status", ASCENDING)], "crawl_status",
                       partialFilterExpression={"crawl_id": {"$exists": True}})
    await ensure_index(db.jobs, [("crawl_id", ASCENDING), ("_id", DESCENDING)], "by_crawl",
                       partialFilterExpression={"crawl_id": {"$exists": True}})
    await ensure_index(db.crawls, [("created_at", DESCENDING), ("_id", DESCENDING)], "newest")


@dataclass(frozen=True)
class Migration:
    """One step, run once per database."""

    version: int
    description: str
    run: Callable[[Any], Awaitable[None]]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "release 0.1: jobs with results, bodies beside them", _v1_release_0_1),
    Migration(2, "job specs, priority claims, freshness reuse, batches, idempotency keys", _v2_job_specs),
    Migration(3, "webhook outbox and deliveries, listing filter indexes", _v3_webhooks_filters),
    Migration(4, "claims skip busy hosts on the index, status counters, bodies swept by age", _v4_scale),
    Migration(5, "content-addressed zstd bodies, URL history, retention, recurring fetches", _v5_history),
    Migration(6, "url.changed records relayed to webhooks", _v6_url_changed_hooks),
    Migration(7, "the change log of job states, for live updates where there are no change streams",
              _v7_job_changes),
    Migration(8, "slots: requests in flight per host and per webhook endpoint, counted across processes", _v8_slots),
    Migration(9, "indexes for schedule repair, delivery claims and listings, retention of deliveries",
              _v9_upkeep_indexes),
    Migration(10, "live statistics every process adds its counts to, so every dashboard shows the service's",
              _v10_stats),
    Migration(11, "rendered jobs claimed on an index of their own", _v11_rendered),
    Migration(12, "derived views of a body kept once per extractor version, dropped with their body",
              _v12_body_views),
    Migration(13, "each origin's robots.txt, shared by every process until it expires", _v13_robots),
    Migration(14, "crawls: each page once per crawl, a crawl's pages by status and newest first", _v14_crawls),
    Migration(15, "per-host pacing: each host's policy and next allowed fetch start, shared by every process",
              lambda db: v15_hosts(db, ensure_index)),
)
LATEST = MIGRATIONS[-1].version


async def _stored_version(db: Any) -> tuple[int, bool]:
    """The schema version of a database and whether `meta` records it (release 0.1 did not)."""
    meta = await db.meta.find_one({"_id": "schema"})
    if meta is not None:
        return int(meta["version"]), True
    return (1 if "jobs" in await db.list_collection_names() else 0), False


async def current_version(db: Any) -> int:
    """The schema version of a database: 0 when empty, 1 for one written by release 0.1."""
    return (await _stored_version(db))[0]


async def _record(db: Any, step: Migration, now: float) -> None:
    await db.meta.update_one(
        {"_id": "schema"},
        {"$max": {"version": step.version},
         "$set": {f"steps.{step.version}": {"description": step.description, "applied_at": now}}},
        upsert=True)


async def migrate(db: Any, now: float, where: str) -> list[int]:
    """Bring the database up to LATEST; return the versions applied. A newer database is refused, not misread."""
    version, recorded = await _stored_version(db)
    if version > LATEST:
        raise StoreError(
            f"the MongoDB database {db.name!r} at {where} has schema version {version}, newer than this jobqueue "
            f"understands ({LATEST}); upgrade jobqueue, or point --database at another database")
    if version == 1 and not recorded:
        await _record(db, MIGRATIONS[0], now)
    done = []
    for step in MIGRATIONS:
        if step.version > version:
            await step.run(db)
            await _record(db, step, now)
            done.append(step.version)
    return done
