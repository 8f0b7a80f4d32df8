"""SQLite's actions on many jobs at once: one statement per chunk of ids, each chunk its own transaction
(cancel_many is with the other cancels, in sqlite_cancel.py)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING

from jobqueue.models import Task
from jobqueue.store.sqlite.schema import drop_result
from jobqueue.store.sqlite.thread import T
from jobqueue.store.sqlite.transitions import among, move_jobs
from jobqueue.store.transitions import DELETE_FROM, RETRY, Given
from jobqueue.webhooks.outbox import Outbox


class SQLiteBulkOps:
    """retry_many and delete_many of SQLiteStore (ids come from a filtered listing)."""

    clock: Callable[[], float]
    outbox: Outbox | None

    if TYPE_CHECKING:  # provided by SQLiteStore
        async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T: ...

    async def retry_many(self, task_ids: list[str]) -> list[Task]:
        """Queue those of the jobs that finished again, dropping their results; the queued ones come back."""
        now = self.clock()
        where = among(RETRY, len(task_ids))
        return await self._write(
            lambda conn: move_jobs(conn, RETRY, where, tuple(task_ids), Given(now), self.outbox)) if task_ids else []

    async def delete_many(self, task_ids: list[str]) -> list[str]:
        """Delete those of the jobs that finished, with their results (a body shared with another result
        stays with it); the deleted ids come back."""
        where = among(DELETE_FROM, len(task_ids))

        def delete(conn: sqlite3.Connection) -> list[str]:
            doomed = [r[0] for r in conn.execute(f"SELECT id FROM jobs WHERE {where}", task_ids).fetchall()]
            for task_id in doomed:
                drop_result(conn, task_id)
            if doomed:
                conn.execute(f"DELETE FROM jobs WHERE id IN ({','.join('?' * len(doomed))})", doomed)
            return doomed

        return await self._write(delete) if task_ids else []
