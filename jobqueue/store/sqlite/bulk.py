"""SQLite's actions on many jobs at once: one statement per chunk of ids, each chunk its own transaction
(cancel_many is with the other cancels, in sqlite_cancel.py)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

from jobqueue.models import Task
from jobqueue.store.sqlite.schema import JOB_COLUMNS, drop_result, task_from_row
from jobqueue.webhooks.outbox import Outbox

_FINISHED = "('completed', 'failed', 'cancelled')"
# `+status` keeps SQLite from reading every job of those states through their index to find the
# chunk's 500: the ids' own index is the way in (300 ms a chunk against 2 ms, among a million jobs).


class SQLiteBulkOps:
    """retry_many and delete_many of SQLiteStore (ids come from a filtered listing)."""

    clock: Callable[[], float]
    outbox: Outbox | None

    async def _write(self, fn: Callable[[sqlite3.Connection], object]) -> Any: ...  # provided by SQLiteStore

    async def retry_many(self, task_ids: list[str]) -> list[Task]:
        """Queue those of the jobs that finished again, dropping their results; the queued ones come back."""
        now = self.clock()
        marks = ",".join("?" * len(task_ids))

        def update(conn: sqlite3.Connection) -> list[Task]:
            rows = conn.execute(
                "UPDATE jobs SET status = 'queued', attempts = 0, available_at = ?, updated_at = ?,"
                " started_at = NULL, finished_at = NULL, http_status = NULL, error_code = NULL,"
                " error_message = NULL, lease_token = NULL, reused_from = NULL"
                f" WHERE id IN ({marks}) AND +status IN {_FINISHED} RETURNING {JOB_COLUMNS}",
                (now, now, *task_ids)).fetchall()
            for row in rows:
                drop_result(conn, row["id"])
            return [task_from_row(r) for r in rows]

        return await self._write(update) if task_ids else []

    async def delete_many(self, task_ids: list[str]) -> list[str]:
        """Delete those of the jobs that finished, with their results (a body shared with another result
        stays with it); the deleted ids come back."""
        marks = ",".join("?" * len(task_ids))

        def delete(conn: sqlite3.Connection) -> list[str]:
            doomed = [r[0] for r in conn.execute(
                f"SELECT id FROM jobs WHERE id IN ({marks}) AND +status IN {_FINISHED}", task_ids).fetchall()]
            for task_id in doomed:
                drop_result(conn, task_id)
            if doomed:
                conn.execute(f"DELETE FROM jobs WHERE id IN ({','.join('?' * len(doomed))})", doomed)
            return doomed

        return await self._write(delete) if task_ids else []
