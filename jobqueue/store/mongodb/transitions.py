"""The job state machine (store/transitions.py) as MongoDB writes it: a Transition becomes one update document
(`$set`, `$unset`, `$inc`, `$push`) and a `status` filter, and its follow-ups run right after the update (MongoDB
changes one document atomically, so they are separate writes): the status and batch counts, the schedule's next
run, the body of a dropped result. The webhook outbox mark is a field of the update itself."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from pymongo import ReturnDocument

from jobqueue.models import TaskError
from jobqueue.store.mongodb.parts import MongoParts
from jobqueue.store.mongodb.schema import TASK_FIELDS, applied, attempt_entry, task_from_doc
from jobqueue.store.mongodb.webhooks import outbox_mark
from jobqueue.store.transitions import ERROR, UNSHARE, First, Given, Param, Step, Transition, Value, refusal
from jobqueue.webhooks.outbox import Outbox


def status_filter(move: Transition | tuple[str, ...]) -> dict[str, Any]:
    """The filter that a job is in one of the states `move` leaves (or of those named)."""
    sources = move.sources if isinstance(move, Transition) else move
    return {"status": sources[0] if len(sources) == 1 else {"$in": list(sources)}}


def leased(move: Transition, task_id: str, token: str) -> dict[str, Any]:
    """The filter of a move made under an attempt's lease."""
    assert move.leased, f"{move.name} is not made under a lease"
    return {"_id": task_id, "lease_token": token, **status_filter(move)}


def field_values(sets: Mapping[str, Value], given: Given) -> dict[str, Any]:
    """The `$set` values of `sets` (their Steps go to `$inc`, First needs an update pipeline: `pipeline_set`)."""
    out: dict[str, Any] = {}
    for name, value in sets.items():
        if isinstance(value, Step):
            continue
        if isinstance(value, Param):
            given_value = given[value]
            if name == ERROR.name and isinstance(given_value, TaskError):
                given_value = given_value.to_json()
            out[name] = given_value
        else:
            out[name] = value
    return out


def pipeline_set(sets: Mapping[str, Value], given: Given) -> list[dict[str, Any]]:
    """`sets` as an update pipeline, where a First keeps the value a field already has."""
    stage: dict[str, Any] = {}
    for name, value in sets.items():
        if isinstance(value, First):
            stage[name] = {"$ifNull": [f"${name}", given[value.value]]}
        else:
            stage[name] = {"$literal": field_values({name: value}, given)[name]}
    return [{"$set": stage}]


def update_doc(move: Transition, given: Given, outbox: Outbox | None, **more: Any) -> dict[str, Any]:
    """The update document of `move`: the status and its fields (with `more`, a completion's result), the outbox
    mark of a job that finishes, the counters it moves, the result it drops and the attempt it logs."""
    update: dict[str, Any] = {"$set": {"status": move.target, **field_values(move.sets, given), **more,
                                       **outbox_mark(outbox, move.target, given.now)}}
    steps = {name: value.by for name, value in move.sets.items() if isinstance(value, Step)}
    if steps:
        update["$inc"] = steps  # Mongo's $inc has no floor: a running job has counted its attempt, so none is needed
    if move.drops_result:
        update["$unset"] = {"result": ""}
    if move.attempt is not None:
        error = given.error.to_json() if given.error is not None else None
        update["$push"] = {"attempt_log": attempt_entry(given.now, move.attempt, given.http_status, error)}
    return update


def after(before: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """A job as `update` (from update_doc) left it, computed from the job before it (ReturnDocument.BEFORE)."""
    return applied(before, update["$set"], unset=tuple(update.get("$unset", ())),
                   attempts=int(update.get("$inc", {}).get("attempts", 0)))


class MongoTransitionOps(MongoParts):
    """A move of one job with its follow-ups, and the refusal of one it could not make (mixed into MongoStore)."""

    clock: Callable[[], float]
    outbox: Outbox | None

    if TYPE_CHECKING:  # provided by MongoStore and its other mixins
        async def _moved(self, doc: dict[str, Any], old: str, now: float) -> None: ...
        async def _finish_crawl(self, crawl_id: str, now: float) -> None: ...
        async def _finish_run(self, run: dict[str, Any], sha256: str | None, now: float) -> str | None: ...
        async def _release_body(self, ref: dict[str, Any] | None, task_id: str | None) -> None: ...
        async def _release_result(self, result: dict[str, Any] | None, task_id: str | None) -> None: ...

    async def _transit(self, move: Transition, task_id: str, given: Given) -> dict[str, Any] | None:
        """Make `move` for one job if it is in one of its states, then its follow-ups; the job after it, or None."""
        update = update_doc(move, given, self.outbox)
        before = await self._call(self.db.jobs.find_one_and_update(
            {"_id": task_id, **status_filter(move)}, update,
            projection=None if move.drops_result else TASK_FIELDS, return_document=ReturnDocument.BEFORE))
        if before is None:
            return None
        moved = after(before, update)
        await self._moved(moved, before["status"], given.now)
        if move.drops_result:
            await self._release_result(before.get("result"), task_id)
        await self._follow(move, moved, given.now)
        return moved

    async def _unshare(self, doc: dict[str, Any], now: float) -> None:
        """Queue a job just created on another job's result that its source dropped meanwhile; `doc` follows."""
        update = update_doc(UNSHARE, Given(now), None)
        await self._call(self.db.jobs.update_one({"_id": doc["_id"], **status_filter(UNSHARE)}, update))
        doc.update(after(doc, update))
        doc.pop("result")

    async def _follow(self, move: Transition, doc: dict[str, Any], now: float, sha256: str | None = None
                      ) -> str | None:
        """A finished run recorded by its schedule, which queues the next due time unless it is stopped; the
        previous run's id when the body changed."""
        if move.ends_run and doc.get("crawl_id") is not None:
            await self._finish_crawl(doc["crawl_id"], now)
        if move.ends_run and doc.get("schedule_id") is not None:
            return await self._finish_run(doc, sha256, now)
        return None

    async def _refusal(self, move: Transition, task_id: str) -> Exception:
        """The error for a job `move` did not change: NotFound, or Conflict with the job as it is now."""
        doc = await self._call(self.db.jobs.find_one({"_id": task_id}, TASK_FIELDS))
        return refusal(move, task_id, task_from_doc(doc) if doc is not None else None)
