"""Every way a job is cancelled on MongoDB: one cancel, many (a filter's chunk), a batch's chunk, and a
stopped schedule's queued run, all one update rendered from CANCEL (store/transitions.py), so a cancelled
job's fields are the same whichever path cancelled it.

A cancelled job has no lease, is finished now, and keeps nothing of its last attempt (`http_status`
and the error told of that attempt, not of the cancel). A cancelled run is recorded by its schedule
like any finished run (`_finish_run`), and the schedule queues its next due time: only stopping the
schedule (DELETE /schedules/:id, which marks it stopped before cancelling its queued run) ends it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pymongo import ReturnDocument

from jobqueue.errors import NotFound
from jobqueue.models import Schedule, Task
from jobqueue.store.mongodb.parts import MongoParts
from jobqueue.store.mongodb.schedules import schedule_from_doc
from jobqueue.store.mongodb.schema import task_from_doc
from jobqueue.store.mongodb.transitions import pipeline_set, status_filter
from jobqueue.store.transitions import CANCEL, CANCEL_QUEUED, STOP_SCHEDULE, Given, Transition
from jobqueue.webhooks.outbox import Outbox

if TYPE_CHECKING:
    from collections.abc import Callable


class MongoCancelOps(MongoParts):
    """cancel, cancel_many, cancel_batch and stop_schedule of MongoStore (mixed in)."""

    if TYPE_CHECKING:  # provided by MongoStore and its other mixins
        clock: Callable[[], float]
        outbox: Outbox | None

        async def _transit(self, move: Transition, task_id: str, given: Given) -> dict[str, Any] | None: ...
        async def _refusal(self, move: Transition, task_id: str) -> Exception: ...
        async def _batch_chunk(self, batch_id: str, move: Transition, given: Given, limit: int
                               ) -> list[dict[str, Any]]: ...
        async def recount_batch(self, batch_id: str) -> Any: ...

    async def cancel(self, task_id: str) -> Task:
        """Cancel a queued or running task; a running fetch's late completion is then refused."""
        after = await self._transit(CANCEL, task_id, Given(self.clock()))
        if after is None:
            raise await self._refusal(CANCEL, task_id)
        return task_from_doc(after)

    async def cancel_many(self, task_ids: list[str]) -> list[Task]:
        """Cancel those of the jobs still queued or running, each by its own atomic update; the cancelled ones."""
        given = Given(self.clock())
        found = [await self._transit(CANCEL, task_id, given) for task_id in task_ids]
        return [task_from_doc(after) for after in found if after is not None]

    async def cancel_batch(self, batch_id: str, limit: int) -> list[Task]:
        """Cancel up to `limit` unfinished jobs of a sealed batch; [] when none is left (NotFound)."""
        docs = await self._batch_chunk(batch_id, CANCEL, Given(self.clock()), limit)
        if not docs:
            await self.recount_batch(batch_id)  # nothing left to run: a quiet moment to repair any drift
        return [task_from_doc(d) for d in docs]

    async def stop_schedule(self, schedule_id: str) -> tuple[Schedule, list[Task]]:
        """Stop a schedule, then cancel its queued run (a running one finishes, and nothing follows it);
        stopping a stopped schedule changes nothing (NotFound)."""
        now = self.clock()
        stopped = await self._call(self.db.schedules.find_one_and_update(
            {"_id": schedule_id},
            pipeline_set(STOP_SCHEDULE, Given(now)), return_document=ReturnDocument.AFTER))
        if stopped is None:
            raise NotFound(schedule_id, "schedule")
        queued = self.db.jobs.find({"schedule_id": schedule_id, **status_filter(CANCEL_QUEUED)}, {"_id": 1})
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
        after = await self._transit(CANCEL_QUEUED, task_id, Given(now))
        return task_from_doc(after) if after is not None else None
