"""Following every process's job changes on MongoDB through a change stream that recovers.

The stream is opened by MongoStore._open_stream (the one place that knows motor's `watch`); this
loop decides what to do when it ends or fails:

- the resume token is kept after every `try_next`, event or not (the server's post-batch token moves
  on while nothing matches), so a reopen resumes where the stream really was;
- the resume point fell off the oplog (286 ChangeStreamHistoryLost, 280 ChangeStreamFatalError) or
  the stream was invalidated (the collection dropped or renamed: the stream stops being `alive`):
  open a fresh stream, then catch up from the last change seen (minus OVERLAP) with `catch_up`,
  which pages by (updated_at, _id), so nothing between the two is lost however many changes share
  a time (the hub drops what it already has; the gap's intermediate states and deletions are not
  recoverable);
- any other failure: reopen with backoff, resuming; after MAX_FAILURES in a row, raise
  ChangesUnavailable so the caller (peer_sync.follow_changes) polls instead of retrying silently;
- a server without change streams (standalone, or a mock) raises ChangesUnavailable at once.

Only inserts, replacements, deletions and updates that set `updated_at` pass the stream's `$match`: lease
renewals (extend sets only `available_at`) and the webhook relay's unmarking are not state changes,
and each would otherwise cost an `updateLookup` read in every process.

An update's `fullDocument` is looked up when the event is read, so it may show a later state (a job
that ran 5 ms shows `completed` in the event of its claim): `task_as_of` takes the state from the
event's own `updatedFields`, so each event yields the state that change made, in the stream's order.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from pymongo.errors import OperationFailure, PyMongoError

from jobqueue.backoff import delay as backoff_delay
from jobqueue.models import QUEUED, RUNNING, Task
from jobqueue.store.base import ChangesUnavailable, JobDeleted
from jobqueue.store.mongodb.schema import task_from_doc

log = logging.getLogger("jobqueue.store.mongodb.store")
PIPELINE: list[dict[str, Any]] = [
    {"$match": {"$or": [{"operationType": {"$in": ["insert", "replace", "delete"]}},
                        {"operationType": "update", "updateDescription.updatedFields.updated_at": {"$exists": True}}]}},
    {"$project": {"fullDocument.result": 0, "updateDescription.updatedFields.result": 0}},
]
NO_CHANGE_STREAMS = (40573, 40324, 136)  # not a replica set / unsupported / capped
HISTORY_LOST = (286, 280)  # ChangeStreamHistoryLost, ChangeStreamFatalError: the token is dead
MAX_FAILURES = 5
OVERLAP = 2.0  # seconds re-read when catching up, for changes stamped a little before their commit
# the fields a state change sets; those an update did not set are the later state's, or cleared
STATE_FIELDS = ("status", "attempts", "updated_at", "started_at", "finished_at", "http_status", "error",
                "lease_token", "available_at")
OUTCOME_FIELDS = ("finished_at", "http_status", "error")
KEEP_ATTEMPTS = 10000

OpenStream = Callable[[list[dict[str, Any]], Any], Awaitable[Any]]
CatchUp = Callable[[float], AsyncIterator[Task]]  # every job changed at or after a time, each once
Change = Task | JobDeleted


def task_as_of(change: dict[str, Any], attempts: int | None = None) -> Task | None:
    """The job as this change left it (None when it is gone): an insert's document is its own; an update's
    looked-up document is overlaid with the fields the update set, when the job has changed again since
    (`attempts`: the count an earlier event of this job gave, for an update that did not set it)."""
    doc = change.get("fullDocument")
    if doc is None:
        return None
    updated = (change.get("updateDescription") or {}).get("updatedFields") or {}
    at = updated.get("updated_at")
    if change.get("operationType") != "update" or at is None or doc.get("updated_at") == at:
        return task_from_doc(doc)
    state = dict(doc)
    if attempts is not None:
        state["attempts"] = attempts
    state.update((name, updated[name]) for name in STATE_FIELDS if name in updated)
    if state["status"] in (QUEUED, RUNNING):  # an unfinished state has no outcome of its own unless it set one
        state.update((name, None) for name in OUTCOME_FIELDS if name not in updated)
    state["attempt_log"] = [e for e in doc.get("attempt_log") or () if e.get("at", at) <= at]
    return task_from_doc(state)


async def follow(open_stream: OpenStream, catch_up: CatchUp, clock: Callable[[], float], where: str,
                 ready: asyncio.Event | None = None, backoff: float = 0.5) -> AsyncIterator[Change]:
    """Yield every task change (and deletion) from a change stream, reopening, resuming and catching up as the
    module says."""
    resume: Any = None
    catch_up_from: float | None = None
    attempts: OrderedDict[str, int] = OrderedDict()  # the latest attempt count seen per job, of the last few
    last_seen = clock()
    failures = 0
    while True:
        try:
            stream = await open_stream(PIPELINE, resume)
            async with stream:
                change = await stream.try_next()  # opens the server-side cursor
                if ready is not None:
                    ready.set()
                if catch_up_from is not None:
                    async for task in catch_up(catch_up_from):
                        last_seen = max(last_seen, task.updated_at)
                        yield task
                    catch_up_from = None
                while True:
                    resume = stream.resume_token or resume
                    if change is not None and change.get("operationType") == "delete":
                        gone = change["documentKey"]["_id"]
                        attempts.pop(gone, None)
                        yield JobDeleted(gone)
                        change = None
                    found = _as_of(change, attempts) if change is not None else None
                    if found is not None:
                        last_seen = max(last_seen, found.updated_at)
                        yield found
                    if not stream.alive:
                        break
                    change = await stream.try_next()
                    failures = 0  # it opened and answered twice: a working stream again
            log.warning("the change stream on %s was invalidated (collection dropped or renamed); reopening", where)
            resume, catch_up_from = None, last_seen - OVERLAP
            continue
        except OperationFailure as exc:
            if exc.code in NO_CHANGE_STREAMS or "replica set" in str(exc).lower():
                raise ChangesUnavailable(f"MongoDB at {where} has no change streams: {exc}") from exc
            if exc.code in HISTORY_LOST:  # the token is dead: start afresh and read what the gap held
                resume, catch_up_from = None, last_seen - OVERLAP
            failures += 1
            error: Exception = exc
        except (NotImplementedError, AttributeError, TypeError) as exc:
            raise ChangesUnavailable(f"this MongoDB client has no change streams: {exc}") from exc
        except PyMongoError as exc:
            failures += 1
            error = exc
        if failures >= MAX_FAILURES:
            raise ChangesUnavailable(f"the change stream on MongoDB at {where} failed {failures} times in a row "
                                     f"(last: {error})") from error
        log.warning("the change stream on %s failed (%s); reopening", where, error)
        await asyncio.sleep(backoff_delay(failures, backoff, 30.0))


def _as_of(change: dict[str, Any], attempts: OrderedDict[str, int]) -> Task | None:
    """task_as_of, remembering each job's attempt count for its next events (a claim sets it, a finish does not)."""
    job_id = (change.get("documentKey") or change.get("fullDocument") or {}).get("_id")
    task = task_as_of(change, attempts.get(job_id) if job_id is not None else None)
    if task is not None:
        attempts[task.id] = task.attempts
        attempts.move_to_end(task.id)
        if len(attempts) > KEEP_ATTEMPTS:
            attempts.popitem(last=False)
    return task
