"""Every way a job is cancelled on SQLite: one cancel, many (a filter's chunk), a batch's chunk, and a
stopped schedule's queued run, all one UPDATE rendered from CANCEL (store/transitions.py), so a cancelled
job's fields are the same whichever path cancelled it.

A cancelled job has no lease, is finished now, and keeps nothing of its last attempt (`http_status`
and the error told of that attempt, not of the cancel). A cancelled run is recorded by its schedule
like any finished run, and the schedule queues its next due time: only stopping the schedule
(DELETE /schedules/:id, which marks it stopped before cancelling its queued run) ends it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING

from jobqueue.errors import NotFound
from jobqueue.models import Schedule, Task
from jobqueue.store.sqlite.schedules import SCHEDULE_COLUMNS, schedule_from_row
from jobqueue.store.sqlite.thread import T
from jobqueue.store.sqlite.transitions import among, move_batch_chunk, move_jobs, refuse, set_clause, status_in
from jobqueue.store.transitions import CANCEL, CANCEL_QUEUED, STOP_SCHEDULE, Given
from jobqueue.webhooks.outbox import Outbox


class SQLiteCancelOps:
    """cancel, cancel_many, cancel_batch and stop_schedule of SQLiteStore."""

    clock: Callable[[], float]
    outbox: Outbox | None

    if TYPE_CHECKING:  # provided by SQLiteStore
        async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T: ...

    async def cancel(self, task_id: str) -> Task:
        """Cancel a queued or running task; a running fetch's late completion is then refused."""
        now = self.clock()

        def update(conn: sqlite3.Connection) -> Task:
            cancelled = move_jobs(conn, CANCEL, f"id = ? AND {status_in(CANCEL)}", (task_id,), Given(now), self.outbox)
            if cancelled:
                return cancelled[0]
            raise refuse(conn, CANCEL, task_id)

        return await self._write(update)

    async def cancel_many(self, task_ids: list[str]) -> list[Task]:
        """Cancel those of the jobs that are queued or running, in one write; the cancelled ones come back."""
        if not task_ids:
            return []
        now = self.clock()
        where = among(CANCEL, len(task_ids))
        return await self._write(lambda conn: move_jobs(conn, CANCEL, where, tuple(task_ids), Given(now), self.outbox))

    async def cancel_batch(self, batch_id: str, limit: int) -> list[Task]:
        """Cancel up to `limit` unfinished jobs of a batch; [] when none is left (NotFound)."""
        now = self.clock()

        return await self._write(
            lambda conn: move_batch_chunk(conn, CANCEL, batch_id, limit, Given(now), self.outbox))

    async def stop_schedule(self, schedule_id: str) -> tuple[Schedule, list[Task]]:
        """Stop a schedule and cancel its queued run (a running one finishes, and nothing follows it);
        stopping a stopped schedule changes nothing (NotFound)."""
        now = self.clock()

        def stop(conn: sqlite3.Connection) -> tuple[Schedule, list[Task]]:
            parts, args = set_clause(STOP_SCHEDULE, Given(now))
            stopped = conn.execute(f"UPDATE schedules SET {', '.join(parts)} WHERE id = ? RETURNING id",
                                   (*args, schedule_id)).fetchone()
            if stopped is None:
                raise NotFound(schedule_id, "schedule")
            cancelled = move_jobs(conn, CANCEL_QUEUED, f"schedule_id = ? AND {status_in(CANCEL_QUEUED)}",
                                  (schedule_id,), Given(now), self.outbox)
            row = conn.execute(f"SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE id = ?", (schedule_id,)).fetchone()
            return schedule_from_row(row), cancelled

        return await self._write(stop)
