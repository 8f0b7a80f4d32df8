"""MongoDB's actions on many jobs: each job changed by its own atomic update (MongoDB has no multi-document
write without a transaction), so a chunk is as many round trips as jobs; a crash in between leaves
each job either changed or not, never half."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from jobqueue.errors import Conflict, NotFound
from jobqueue.models import Task
from jobqueue.store.mongodb.batches import Moves
from jobqueue.store.mongodb.parts import MongoParts
from jobqueue.store.transitions import DELETE_FROM

if TYPE_CHECKING:
    from collections.abc import Callable

FINISHED = list(DELETE_FROM)  # the states a job may be deleted in


class MongoBulkOps(MongoParts):
    """retry_many and delete_many of MongoStore, over its single-job operations (cancel_many: mongodb_cancel.py)."""

    if TYPE_CHECKING:  # provided by MongoStore and its other mixins
        clock: Callable[[], float]

        async def _move(self, moves: Moves, now: float) -> None: ...
        async def _release_body(self, ref: dict[str, Any] | None, task_id: str | None) -> None: ...
        async def _release_result(self, result: dict[str, Any] | None, task_id: str | None) -> None: ...
        async def retry(self, task_id: str) -> Task: ...

    async def retry_many(self, task_ids: list[str]) -> list[Task]:
        """Queue those of the jobs that finished again, dropping their results; the queued ones come back."""
        return [task for task in [await self._quietly(self.retry, i) for i in task_ids] if task is not None]

    async def delete_many(self, task_ids: list[str]) -> list[str]:
        """Delete those of the jobs that finished, with their results and unshared bodies; their ids come back."""
        deleted, moves, now = [], Moves(), self.clock()
        for task_id in task_ids:
            doc = await self._call(self.db.jobs.find_one_and_delete(
                {"_id": task_id, "status": {"$in": FINISHED}}, projection={"status": 1, "batch_id": 1, "result": 1}))
            if doc is None:
                continue
            deleted.append(task_id)
            moves.add(doc.get("batch_id"), doc["status"], None)
            await self._release_result(doc.get("result"), task_id)
        await self._move(moves, now)
        return deleted

    @staticmethod
    async def _quietly(action: Any, task_id: str) -> Task | None:
        try:
            return await action(task_id)
        except (Conflict, NotFound):
            return None  # moved on meanwhile, or deleted: not changed
