"""Every way a job is cancelled on SQLite: one cancel, many (a filter's chunk), a batch's chunk, and a
stopped schedule's queued run, all through one statement, so a cancelled job's fields are the same
whichever path cancelled it.

A cancelled job has no lease, is finished now, and keeps nothing of its last attempt (`http_status`
and the error told of that attempt, not of the cancel). A cancelled run is recorded by its schedule
like any finished run, and the schedule queues its next due time: only stopping the schedule
(DELETE /schedules/:id, which marks it stopped before cancelling its queued run) ends it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

from jobqueue.errors import Conflict, NotFound
from jobqueue.models import Schedule, Task
from jobqueue.store.sqlite.schedules import SCHEDULE_COLUMNS, finish_run, schedule_from_row
from jobqueue.store.sqlite.schema import JOB_COLUMNS, task_from_row
from jobqueue.store.sqlite.webhooks import write_outbox
from jobqueue.webhooks.outbox import Outbox

UNFINISHED = "('queued', 'running')"
# the assignments of every cancel; its two parameters are finished_at and updated_at
CANCEL_SET = ("status = 'cancelled', lease_token = NULL, finished_at = ?, updated_at = ?,"
              " http_status = NULL, error_code = NULL, error_message = NULL")
# `+status` keeps SQLite from reading every job of those states through their index to find a bulk
# chunk's 500: the ids' own index is the way in (300 ms a chunk against 2 ms, among a million jobs).
_MANY = "id IN ({marks}) AND +status IN " + UNFINISHED
_BATCH_CHUNK = ("seq IN (SELECT seq FROM jobs INDEXED BY jobs_batch_status WHERE batch_id = ?"
                f" AND status IN {UNFINISHED} LIMIT ?)")


def cancel_jobs(conn: sqlite3.Connection, where: str, args: tuple[object, ...], now: float,
                outbox: Outbox | None) -> list[Task]:
    """Cancel the jobs `where` selects (the caller limits it to unfinished ones), record each cancelled run with
    its schedule (which queues the next due time unless stopped), and write their webhook outbox."""
    rows = conn.execute(f"UPDATE jobs SET {CANCEL_SET} WHERE {where} RETURNING {JOB_COLUMNS}",
                        (now, now, *args)).fetchall()
    tasks = [task_from_row(r) for r in rows]
    for task in tasks:
        if task.schedule_id is not None:
            finish_run(conn, task, None, now)
    write_outbox(conn, outbox, tasks, now)
    return tasks


class SQLiteCancelOps:
    """cancel, cancel_many, cancel_batch and stop_schedule of SQLiteStore."""

    clock: Callable[[], float]
    outbox: Outbox | None

    async def _write(self, fn: Callable[[sqlite3.Connection], object]) -> Any: ...  # provided by SQLiteStore

    async def cancel(self, task_id: str) -> Task:
        """Cancel a queued or running task; a running fetch's late completion is then refused."""
        now = self.clock()

        def update(conn: sqlite3.Connection) -> Task:
            cancelled = cancel_jobs(conn, f"id = ? AND status IN {UNFINISHED}", (task_id,), now, self.outbox)
            if cancelled:
                return cancelled[0]
            current = conn.execute(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?", (task_id,)).fetchone()
            if current is None:
                raise NotFound(task_id)
            task = task_from_row(current)
            raise Conflict(
                task, f"task {task_id} is already {task.status}; only queued or running tasks can be cancelled"
            )

        return await self._write(update)

    async def cancel_many(self, task_ids: list[str]) -> list[Task]:
        """Cancel those of the jobs that are queued or running, in one write; the cancelled ones come back."""
        if not task_ids:
            return []
        now = self.clock()
        where = _MANY.format(marks=",".join("?" * len(task_ids)))
        return await self._write(lambda conn: cancel_jobs(conn, where, tuple(task_ids), now, self.outbox))

    async def cancel_batch(self, batch_id: str, limit: int) -> list[Task]:
        """Cancel up to `limit` unfinished jobs of a batch; [] when none is left (NotFound)."""
        now = self.clock()

        def update(conn: sqlite3.Connection) -> list[Task]:
            tasks = cancel_jobs(conn, _BATCH_CHUNK, (batch_id, limit), now, self.outbox)
            if not tasks and not conn.execute("SELECT 1 FROM batches WHERE id = ? AND sealed = 1",
                                              (batch_id,)).fetchone():
                raise NotFound(batch_id, "batch")
            return tasks

        return await self._write(update)

    async def stop_schedule(self, schedule_id: str) -> tuple[Schedule, list[Task]]:
        """Stop a schedule and cancel its queued run (a running one finishes, and nothing follows it);
        stopping a stopped schedule changes nothing (NotFound)."""
        now = self.clock()

        def stop(conn: sqlite3.Connection) -> tuple[Schedule, list[Task]]:
            stopped = conn.execute(
                "UPDATE schedules SET stopped_at = COALESCE(stopped_at, ?), next_task_id = NULL, next_run_at = NULL"
                " WHERE id = ? RETURNING id", (now, schedule_id)).fetchone()
            if stopped is None:
                raise NotFound(schedule_id, "schedule")
            cancelled = cancel_jobs(conn, "schedule_id = ? AND status = 'queued'", (schedule_id,), now, self.outbox)
            row = conn.execute(f"SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE id = ?", (schedule_id,)).fetchone()
            return schedule_from_row(row), cancelled

        return await self._write(stop)
