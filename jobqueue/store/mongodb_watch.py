"""Following every process's job changes on MongoDB through a change stream that recovers.

The stream is opened by MongoStore._open_stream (the one place that knows motor's `watch`); this
loop decides what to do when it ends or fails:

- the resume token is kept after every `try_next`, event or not (the server's post-batch token moves
  on while nothing matches), so a reopen resumes where the stream really was;
- the resume point fell off the oplog (286 ChangeStreamHistoryLost, 280 ChangeStreamFatalError) or
  the stream was invalidated (the collection dropped or renamed: the stream stops being `alive`):
  open a fresh stream, then catch up from the last change seen (minus OVERLAP) with
  `changed_since`, so nothing between the two is lost (the hub drops what it already has);
- any other failure: reopen with backoff, resuming; after MAX_FAILURES in a row, raise
  ChangesUnavailable so the caller (peer_sync.follow_changes) polls instead of retrying silently;
- a server without change streams (standalone, or a mock) raises ChangesUnavailable at once.

Only inserts, replacements and updates that set `updated_at` pass the stream's `$match`: lease
renewals (extend sets only `available_at`) and the webhook relay's unmarking are not state changes,
and each would otherwise cost an `updateLookup` read in every process.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from pymongo.errors import OperationFailure, PyMongoError

from jobqueue.models import Task
from jobqueue.store.base import ChangesUnavailable
from jobqueue.store.mongodb_schema import task_from_doc

log = logging.getLogger("jobqueue.store.mongodb")
PIPELINE = [
    {"$match": {"$or": [{"operationType": {"$in": ["insert", "replace"]}},
                        {"operationType": "update", "updateDescription.updatedFields.updated_at": {"$exists": True}}]}},
    {"$project": {"fullDocument.result": 0}},
]
NO_CHANGE_STREAMS = (40573, 40324, 136)  # not a replica set / unsupported / capped
HISTORY_LOST = (286, 280)  # ChangeStreamHistoryLost, ChangeStreamFatalError: the token is dead
MAX_FAILURES = 5
OVERLAP = 2.0  # seconds re-read when catching up, for changes stamped a little before their commit
CATCH_UP_PAGE = 1000

OpenStream = Callable[[list[dict[str, Any]], Any], Awaitable[Any]]
ChangedSince = Callable[[float, int], Awaitable[list[Task]]]


async def follow(open_stream: OpenStream, changed_since: ChangedSince, clock: Callable[[], float], where: str,
                 ready: asyncio.Event | None = None, backoff: float = 0.5) -> AsyncIterator[Task]:
    """Yield every task change from a change stream, reopening, resuming and catching up as the module says."""
    resume: Any = None
    catch_up_from: float | None = None
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
                    async for task in _catch_up(changed_since, catch_up_from):
                        yield task
                    catch_up_from = None
                while True:
                    resume = stream.resume_token or resume
                    if change is not None:
                        doc = change.get("fullDocument")
                        if doc is not None:
                            task = task_from_doc(doc)
                            last_seen = max(last_seen, task.updated_at)
                            yield task
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
        await asyncio.sleep(min(30.0, backoff * 2**failures))


async def _catch_up(changed_since: ChangedSince, since: float) -> AsyncIterator[Task]:
    """Every task changed at or after `since`, page by page."""
    at = since
    while True:
        changed = await changed_since(at, CATCH_UP_PAGE)
        for task in changed:
            yield task
        if len(changed) < CATCH_UP_PAGE or changed[-1].updated_at == at:
            return
        at = changed[-1].updated_at
