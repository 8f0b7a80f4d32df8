"""Recurring fetches on SQLite: a schedule's next run is written in the transaction that finishes the last.

Every run of a schedule carries its `due_at` on the schedule's grid (first due time + k * every); the
next run is due at the first due time after the finish, never one already past (schedule_grid.py).
Only the run the schedule points at (`next_task_id`) queues a successor, and a unique index on
(schedule_id, due_at) makes a due time impossible to insert twice: two processes finishing the same
run (one of them with a stale lease, refused anyway), a crash between the finish and the insert
(impossible: one transaction), or an older run retried and finishing again all leave one chain. A
run whose body's sha256 differs from the previous completed run's is written to the `url_changes`
table in the same transaction, and reported to the store's `url_changed` hook.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from jobqueue.models import Page, Schedule, Task, TaskIds
from jobqueue.store.schedule_grid import next_due
from jobqueue.store.sqlite.schema import JOB_COLUMNS, decode_cursor, encode_cursor, task_from_row
from jobqueue.store.sqlite.thread import T
from jobqueue.store.transitions import INHERITED

V5_SCHEDULES = """
ALTER TABLE jobs ADD COLUMN schedule_id TEXT;
ALTER TABLE jobs ADD COLUMN every REAL;
ALTER TABLE jobs ADD COLUMN due_at REAL;
CREATE UNIQUE INDEX jobs_schedule_due ON jobs(schedule_id, due_at) WHERE schedule_id IS NOT NULL;

CREATE TABLE schedules (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    url TEXT NOT NULL,
    every REAL NOT NULL,
    created_at REAL NOT NULL,
    stopped_at REAL,
    runs INTEGER NOT NULL DEFAULT 0,
    last_task_id TEXT,
    last_sha256 TEXT,
    next_task_id TEXT,
    next_run_at REAL
);

-- url.changed, written with the run that changed: a relay (websocket, webhooks) reads it by seq.
CREATE TABLE url_changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id TEXT NOT NULL,
    previous_id TEXT NOT NULL,
    schedule_id TEXT NOT NULL,
    created_at REAL NOT NULL
);
"""
SCHEDULE_COLUMNS = "seq, id, url, every, created_at, stopped_at, runs, last_task_id, next_task_id, next_run_at"
_IDS = TaskIds()
# its parameters: the new run's id, created_at, updated_at, available_at, due_at, and the run before it
_NEXT_RUN = (f"INSERT OR IGNORE INTO jobs (id, status, attempts, created_at, updated_at, available_at, due_at,"
             f" {', '.join(INHERITED)}) SELECT ?, 'queued', 0, ?, ?, ?, ?, {', '.join(INHERITED)}"
             " FROM jobs WHERE id = ?")


def schedule_from_row(row: sqlite3.Row) -> Schedule:
    """Turn a schedules row into a Schedule."""
    return Schedule(id=row["id"], url=row["url"], every=row["every"], created_at=row["created_at"],
                    stopped_at=row["stopped_at"], runs=row["runs"], last_task_id=row["last_task_id"],
                    next_task_id=row["next_task_id"], next_run_at=row["next_run_at"])


def start_schedules(conn: sqlite3.Connection, created: list[Task], now: float) -> list[Task]:
    """Record the schedules of new recurring jobs (a job created completed, reusing a result, is a finished run)."""
    follow: list[Task] = []
    for task in created:
        if task.every is None:
            continue
        conn.execute("INSERT INTO schedules (id, url, every, created_at, next_task_id, next_run_at)"
                     " VALUES (?, ?, ?, ?, ?, ?)", (task.id, task.url, task.every, now, task.id, task.available_at))
        if task.status == "completed":
            follow += finish_run(conn, task, None, now)[0]
    return follow


def finish_run(conn: sqlite3.Connection, task: Task, sha256: str | None, now: float
               ) -> tuple[list[Task], str | None]:
    """After a run of a schedule finished: queue the next one and compare its body with the last run's.

    Returns the new run (if any) and the id of the previous run when the body changed.
    """
    schedule = conn.execute("SELECT every, stopped_at, last_task_id, last_sha256, next_task_id FROM schedules"
                            " WHERE id = ?", (task.schedule_id,)).fetchone()
    if schedule is None:
        return [], None
    changed_from = None
    if task.status == "completed":
        if sha256 is not None and schedule["last_sha256"] is not None and sha256 != schedule["last_sha256"]:
            changed_from = schedule["last_task_id"]
            conn.execute("INSERT INTO url_changes (task_id, previous_id, schedule_id, created_at) VALUES (?, ?, ?, ?)",
                         (task.id, changed_from, task.schedule_id, now))
        conn.execute("UPDATE schedules SET runs = runs + 1, last_task_id = ?, last_sha256 = COALESCE(?, last_sha256)"
                     " WHERE id = ?", (task.id, sha256, task.schedule_id))
    else:
        conn.execute("UPDATE schedules SET runs = runs + 1 WHERE id = ?", (task.schedule_id,))
    if schedule["stopped_at"] is not None or schedule["next_task_id"] != task.id:
        return [], changed_from  # stopped, or an older run retried: the schedule's next run is queued already
    due = conn.execute("SELECT due_at FROM jobs WHERE id = ?", (task.id,)).fetchone()[0]
    due_next = next_due(due, schedule["every"], now)
    new_id = _IDS.new(now)
    if conn.execute(_NEXT_RUN, (new_id, now, now, due_next, due_next, task.id)).rowcount == 0:
        return [], changed_from  # this due time has its run already
    conn.execute("UPDATE counts SET n = n + 1 WHERE status = 'queued'")
    conn.execute("UPDATE schedules SET next_task_id = ?, next_run_at = ? WHERE id = ?",
                 (new_id, due_next, task.schedule_id))
    row = conn.execute(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?", (new_id,)).fetchone()
    return [task_from_row(row)], changed_from


class SQLiteScheduleOps:
    """list_schedules, get_schedule, count_active_schedules and url_changes_since of SQLiteStore (stop_schedule is
    in sqlite_cancel.py)."""

    clock: Callable[[], float]
    outbox: Any

    if TYPE_CHECKING:  # provided by SQLiteStore
        async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T: ...
        async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T: ...

    async def list_schedules(self, limit: int, cursor: str | None) -> Page:
        """Schedules, newest first."""
        before = decode_cursor(cursor)

        def read(conn: sqlite3.Connection) -> list[sqlite3.Row]:
            return conn.execute(f"SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE seq < ? ORDER BY seq DESC LIMIT ?",
                                (before if before is not None else 1 << 62, limit + 1)).fetchall()

        rows = await self._read(read)
        more = len(rows) > limit
        rows = rows[:limit]
        return Page([schedule_from_row(r) for r in rows], encode_cursor(rows[-1]["seq"]) if more else None)

    async def get_schedule(self, schedule_id: str) -> Schedule | None:
        """One schedule, or None."""
        row = await self._read(lambda conn: conn.execute(
            f"SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE id = ?", (schedule_id,)).fetchone())
        return schedule_from_row(row) if row else None

    async def count_active_schedules(self, limit: int) -> int:
        """How many schedules are not stopped, up to `limit`."""
        row = await self._read(lambda conn: conn.execute(
            "SELECT COUNT(*) FROM (SELECT 1 FROM schedules WHERE stopped_at IS NULL LIMIT ?)", (limit,)).fetchone())
        return int(row[0])

    async def url_changes_since(self, seq: int, limit: int) -> list[tuple[int, str, str]]:
        """url.changed records after `seq`, oldest first: (seq, task id, previous run's id), for a relay."""
        rows = await self._read(lambda conn: conn.execute(
            "SELECT seq, task_id, previous_id FROM url_changes WHERE seq > ? ORDER BY seq LIMIT ?",
            (seq, limit)).fetchall())
        return [(r[0], r[1], r[2]) for r in rows]
