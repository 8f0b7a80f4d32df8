"""Recurring fetches on MongoDB: each finished run queues the next, never twice for one due time.

Every run carries its `due_at` on the schedule's grid (first due time + k * every); the next run is
due at the first due time after the finish, never one already past (schedule_grid.py). Only the run
the schedule points at (`next_task_id`) queues a successor, so an older run retried and finishing
again queues nothing, and the unique "schedule_due" index on (schedule_id, due_at) refuses a second
run for a due time: two processes finishing the same run (one with a stale lease is refused anyway)
or the repair below racing a late finisher leave one run per due time.

MongoDB writes one document atomically, so the next run is inserted right after the update that
finishes the last, not in the same write; a process dying between the two leaves the schedule's
`next_task_id` naming a finished run. The maintenance round (`repair_schedules`) finds such chains
(overdue, their next run finished) and queues the last due time already past, which runs at once
(the one run that catches up) and which the unique index makes safe whoever else does it meanwhile.

`schedules` holds one document per schedule: `{_id, url, every, created_at, stopped_at, runs,
last_task_id, last_sha256, last_finish, next_task_id, next_run_at}`; `last_finish` names the
finish last recorded, so a finish is counted once. A completed run whose body's sha256 differs
from the last completed run's is written to `url_changes` (`_id` = a sequence number taken from
`counters/url_changes`) and reported to the store's `url_changed` hook.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.errors import DuplicateKeyError

from jobqueue.models import COMPLETED, FINISHED, QUEUED, Page, Schedule, Task, TaskIds
from jobqueue.store.mongodb.batches import Moves
from jobqueue.store.mongodb.parts import MongoParts
from jobqueue.store.mongodb.schema import after_cursor, encode_cursor, task_from_doc
from jobqueue.store.schedule_grid import catch_up_due, next_due
from jobqueue.store.transitions import INHERITED

_IDS = TaskIds()
REPAIR_GRACE = 60.0  # a chain is repaired only this long after its due time: its finisher may still be at it
REPAIR_LIMIT = 200  # schedules examined per maintenance round


def schedule_from_doc(doc: dict[str, Any]) -> Schedule:
    """Turn a schedules document into a Schedule."""
    return Schedule(id=doc["_id"], url=doc["url"], every=doc["every"], created_at=doc["created_at"],
                    stopped_at=doc.get("stopped_at"), runs=int(doc.get("runs") or 0),
                    last_task_id=doc.get("last_task_id"), next_task_id=doc.get("next_task_id"),
                    next_run_at=doc.get("next_run_at"))


def schedule_doc(run: dict[str, Any]) -> dict[str, Any]:
    """A new schedule, started by its first run."""
    return {"_id": run["schedule_id"], "url": run["url"], "every": run["every"], "created_at": run["created_at"],
            "stopped_at": None, "runs": 0, "last_task_id": None, "last_sha256": None, "last_finish": None,
            "next_task_id": run["_id"], "next_run_at": run["due_at"]}


def next_run_doc(run: dict[str, Any], new_id: str, due: float, now: float) -> dict[str, Any]:
    """The queued run following `run`, due at `due`, with its spec."""
    doc: dict[str, Any] = {k: run[k] for k in INHERITED if k in run}
    doc.update({"_id": new_id, "status": QUEUED, "attempts": 0, "created_at": now, "updated_at": now,
                "available_at": due, "due_at": due, "started_at": None, "finished_at": None, "lease_token": None,
                "http_status": None, "error": None, "not_before": None, "reused_from": None})
    return doc


class MongoScheduleOps(MongoParts):
    """Starting, following, stopping and listing schedules; url.changed records (mixed into MongoStore)."""

    clock: Callable[[], float]
    url_changed: Callable[[Task, str], None] | None

    if TYPE_CHECKING:  # provided by MongoStore and its other mixins; absent at run time
        async def _move(self, moves: Moves, now: float) -> None: ...
        async def _cancel_queued(self, task_id: str, now: float) -> Task | None: ...  # mongodb_cancel.py

    async def _start_schedules(self, docs: list[dict[str, Any]], now: float) -> None:
        """Record the schedules of new recurring jobs (one created completed, reusing a result, is a finished run)."""
        for doc in docs:
            if "schedule_id" not in doc:
                continue
            try:
                await self._call(self.db.schedules.insert_one(schedule_doc(doc)), allow=(DuplicateKeyError,))
            except DuplicateKeyError:
                pass  # an add repeated after an ambiguous error
            if doc["status"] == COMPLETED:
                await self._finish_run(doc, (doc.get("result") or {}).get("body_ref", {}).get("sha"), now)

    async def _finish_run(self, run: dict[str, Any], sha256: str | None, now: float) -> str | None:
        """After a run finished (completed, failed or cancelled): count it, compare its body with the last
        completed run's, queue the next due time. Returns the previous run's id when the body changed."""
        completed = run["status"] == COMPLETED
        sets: dict[str, Any] = {"last_finish": f"{run['_id']}@{run.get('finished_at')!r}"}
        if completed:
            sets["last_task_id"] = run["_id"]
            if sha256 is not None:
                sets["last_sha256"] = sha256
        fresh = schedule_doc(run)
        on_insert = {k: v for k, v in fresh.items() if k not in sets and k not in ("runs", "_id")}
        try:
            before = await self._call(self.db.schedules.find_one_and_update(
                {"_id": run["schedule_id"], "last_finish": {"$ne": sets["last_finish"]}},
                {"$set": sets, "$inc": {"runs": 1}, "$setOnInsert": on_insert}, upsert=True,
                return_document=ReturnDocument.BEFORE), allow=(DuplicateKeyError,))
        except DuplicateKeyError:
            before = None  # this finish was recorded already (a repeat): only make sure the next run exists
        changed_from = None
        if completed and before is not None and sha256 is not None and before.get("last_sha256") not in (None, sha256):
            changed_from = before["last_task_id"]
            await self._record_change(run, changed_from, now)
        if before is None:  # a repeat, or the schedule was created by this finish: read where it stands now
            before = await self._call(self.db.schedules.find_one({"_id": run["schedule_id"]},
                                                                 {"stopped_at": 1, "next_task_id": 1}))
        if before is not None and before.get("stopped_at") is None and before.get("next_task_id") in (None, run["_id"]):
            await self._queue_next(run, now)  # not when an older run was retried: the next run is queued already
        return changed_from

    async def _record_change(self, run: dict[str, Any], previous_id: str, now: float) -> None:
        """Write a url.changed record under the next sequence number."""
        counter = await self._call(self.db.counters.find_one_and_update(
            {"_id": "url_changes"}, {"$inc": {"seq": 1}}, upsert=True, return_document=ReturnDocument.AFTER))
        await self._call(self.db.url_changes.insert_one(
            {"_id": int(counter["seq"]), "task_id": run["_id"], "previous_id": previous_id,
             "schedule_id": run["schedule_id"], "created_at": now,
             **({"unhooked": True} if getattr(self, "outbox", None) is not None else {})}))

    async def _queue_next(self, run: dict[str, Any], now: float, catch_up: bool = False) -> Task | None:
        """Insert the run of the next due time (once: the unique index) and point the schedule at it; a run
        inserted after the schedule was stopped is cancelled at once. `catch_up` (a repaired chain) queues the
        last due time already past, to run at once, rather than the first one to come."""
        due = (catch_up_due if catch_up else next_due)(float(run.get("due_at", run["available_at"])),
                                                       float(run["every"]), now)
        doc = next_run_doc(run, _IDS.new(now), due, now)
        try:
            await self._call(self.db.jobs.insert_one(doc), allow=(DuplicateKeyError,))
        except DuplicateKeyError:
            return None  # this due time has its run already
        moves = Moves()
        moves.add(None, None, QUEUED)
        await self._move(moves, now)
        pointed = await self._call(self.db.schedules.update_one(
            {"_id": run["schedule_id"], "stopped_at": None},
            {"$set": {"next_task_id": doc["_id"], "next_run_at": due}}))
        if not pointed.matched_count:  # stopped meanwhile: its stop may have looked for queued runs before ours
            await self._cancel_queued(doc["_id"], now)
            return None
        return task_from_doc(doc)

    async def repair_schedules(self, now: float) -> int:
        """Queue the next run of active schedules whose chain a crash broke (their next run finished without a
        successor); the number repaired."""
        overdue = self.db.schedules.find({"stopped_at": None, "next_run_at": {"$lt": now - REPAIR_GRACE}},
                                         {"next_task_id": 1}).sort("next_run_at", ASCENDING).limit(REPAIR_LIMIT)
        repaired = 0
        for schedule in await self._call(overdue.to_list(REPAIR_LIMIT)):
            run = await self._call(self.db.jobs.find_one({"_id": schedule.get("next_task_id")}, {"result": 0}))
            if run is not None and run["status"] in FINISHED and await self._queue_next(run, now, True) is not None:
                repaired += 1
        return repaired

    async def list_schedules(self, limit: int, cursor: str | None) -> Page:
        """Schedules, newest first."""
        query = after_cursor("created_at", cursor)
        found = self.db.schedules.find(query).sort([("created_at", DESCENDING), ("_id", DESCENDING)])
        docs = await self._call(found.limit(limit + 1).to_list(limit + 1))
        more = len(docs) > limit
        docs = docs[:limit]
        return Page([schedule_from_doc(d) for d in docs],
                    encode_cursor(docs[-1]["created_at"], docs[-1]["_id"]) if more and docs else None)

    async def get_schedule(self, schedule_id: str) -> Schedule | None:
        """One schedule, or None."""
        doc = await self._call(self.db.schedules.find_one({"_id": schedule_id}))
        return schedule_from_doc(doc) if doc else None

    async def count_active_schedules(self, limit: int) -> int:
        """How many schedules are not stopped, up to `limit`."""
        return int(await self._call(self.db.schedules.count_documents({"stopped_at": None}, limit=limit)))

    async def url_changes_since(self, seq: int, limit: int) -> list[tuple[int, str, str]]:
        """url.changed records after `seq`, oldest first: (seq, task id, previous run's id), for a relay."""
        found = self.db.url_changes.find({"_id": {"$gt": seq}}).sort("_id", ASCENDING).limit(limit)
        return [(d["_id"], d["task_id"], d["previous_id"]) for d in await self._call(found.to_list(limit))]
