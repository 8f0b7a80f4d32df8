"""Every way a job is cancelled on MongoDB: one cancel, many (a filter's chunk), a batch's chunk, and a
stopped schedule's queued run, all writing the fields of `cancel_sets`, so a cancelled job's fields
are the same whichever path cancelled it.

A cancelled job has no lease, is finished now, and keeps nothing of its last attempt (`http_status`
and the error told of that attempt, not of the cancel). A cancelled run is recorded by its schedule
like any finished run (`_finish_run`), and the schedule queues its next due time: only stopping the
schedule (DELETE /schedules/:id, which marks it stopped before cancelling its queued run) ends it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pymongo import ReturnDocument

from jobqueue.errors import NotFound
from jobqueue.models import CANCELLED, QUEUED, RUNNING, Schedule, Task
from jobqueue.store.mongodb.schedules import schedule_from_doc
from jobqueue.store.mongodb.schema import TASK_FIELDS, applied, task_from_doc
from jobqueue.store.mongodb.webhooks import outbox_mark
from jobqueue.webhooks.outbox import Outbox

if TYPE_CHECKING:
    from collections.abc import Callable

UNFINISHED = (QUEUED, RUNNING)


def cancel_sets(outbox: Outbox | None, now: float) -> dict[str, Any]:
    """The `$set` of every cancel."""
    return {"status": CANCELLED, "lease_token": None, "finished_at": now, "updated_at": now,
            "http_status": None, "error": None, **outbox_mark(outbox, CANCELLED, now)}


class MongoCancelOps:
    """cancel, cancel_many, cancel_batch and stop_schedule of MongoStore (mixed in)."""

    if TYPE_CHECKING:  # provided by MongoStore and its other mixins
        clock: Callable[[], float]
        outbox: Outbox | None

        @property
        def db(self) -> Any: ...

        async def _call(self, operation: Any, allow: tuple[type[Exception], ...] = ()) -> Any: ...
        async def _moved(self, doc: dict[str, Any], old: str, now: float) -> None: ...
        async def _finish_run(self, run: dict[str, Any], sha256: str | None, now: float) -> str | None: ...
        async def _conflict_or_missing(self, task_id: str, message: str) -> Exception: ...
        async def _batch_chunk(self, batch_id: str, statuses: tuple[str, ...], sets: dict[str, Any], limit: int,
                               now: float) -> list[dict[str, Any]]: ...
        async def recount_batch(self, batch_id: str) -> Any: ...

    async def cancel(self, task_id: str) -> Task:
        """Cancel a queued or running task; a running fetch's late completion is then refused."""
        now = self.clock()
        after = await self._cancelled(task_id, UNFINISHED, now)
        if after is None:
            raise await self._conflict_or_missing(
                task_id, "task {id} is already {status}; only queued or running tasks can be cancelled")
        return task_from_doc(after)

    async def cancel_many(self, task_ids: list[str]) -> list[Task]:
        """Cancel those of the jobs still queued or running, each by its own atomic update; the cancelled ones."""
        now = self.clock()
        found = [await self._cancelled(task_id, UNFINISHED, now) for task_id in task_ids]
        return [task_from_doc(after) for after in found if after is not None]

    async def cancel_batch(self, batch_id: str, limit: int) -> list[Task]:
        """Cancel up to `limit` unfinished jobs of a sealed batch; [] when none is left (NotFound)."""
        now = self.clock()
        docs = await self._batch_chunk(batch_id, UNFINISHED, cancel_sets(self.outbox, now), limit, now)
        for doc in docs:
            await self._follow(doc, now)
        if not docs:
            await self.recount_batch(batch_id)  # nothing left to run: a quiet moment to repair any drift
        return [task_from_doc(d) for d in docs]

    async def stop_schedule(self, schedule_id: str) -> tuple[Schedule, list[Task]]:
        """Stop a schedule, then cancel its queued run (a running one finishes, and nothing follows it);
        stopping a stopped schedule changes nothing (NotFound)."""
        now = self.clock()
        stopped = await self._call(self.db.schedules.find_one_and_update(
            {"_id": schedule_id},
            [{"$set": {"stopped_at": {"$ifNull": ["$stopped_at", now]}, "next_task_id": {"$literal": None},
                       "next_run_at": {"$literal": None}}}], return_document=ReturnDocument.AFTER))
        if stopped is None:
            raise NotFound(schedule_id, "schedule")
        queued = self.db.jobs.find({"schedule_id": schedule_id, "status": QUEUED}, {"_id": 1})
        cancelled = []
        for run in await self._call(queued.to_list(None)):
            task = await self._cancel_queued(run["_id"], now)
            if task is not None:
                cancelled.append(task)
        if cancelled:  # each was counted as a finished run
            stopped = await self._call(self.db.schedules.find_one({"_id": schedule_id})) or stopped
        return schedule_from_doc(stopped), cancelled

    async def _cancel_queued(self, task_id: str, now: float) -> Task | None:
        """Cancel a queued run of a stopped schedule (nothing follows it); None when it is no longer queued."""
        after = await self._cancelled(task_id, (QUEUED,), now)
        return task_from_doc(after) if after is not None else None

    async def _cancelled(self, task_id: str, statuses: tuple[str, ...], now: float) -> dict[str, Any] | None:
        """Cancel a job in one of `statuses`, moving the counts and recording a run with its schedule; the job
        after it, or None when it was in none."""
        sets = cancel_sets(self.outbox, now)
        before = await self._call(self.db.jobs.find_one_and_update(
            {"_id": task_id, "status": {"$in": list(statuses)}}, {"$set": sets},
            projection=TASK_FIELDS, return_document=ReturnDocument.BEFORE))
        if before is None:
            return None
        after = applied(before, sets)
        await self._moved(after, before["status"], now)
        await self._follow(after, now)
        return after

    async def _follow(self, run: dict[str, Any], now: float) -> None:
        """Record a cancelled run with its schedule, which queues the next due time unless it is stopped."""
        if run.get("schedule_id") is not None:
            await self._finish_run(run, None, now)
