"""The change log: every job state change in commit order, for processes that share the file to follow.

Triggers on `jobs` (migration 8) append one narrow row per change: the state's own fields (status,
attempts, times, outcome), the rest being read from the job when the change is; and one per deleted
job (status `deleted`, stamped when deleted), so every process can drop it from view. The log's `seq` is
the rowid: the writer holds the file's one write lock while it inserts, so numbers are handed out in
commit order and a reader that has seen `seq` N has seen every change up to N. Housekeeping prunes
the oldest run of rows older than a few minutes, always keeping the newest, so a number is never handed out twice.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from jobqueue.models import Task
from jobqueue.store.base import ChangePage
from jobqueue.store.sqlite.schema import JOB_COLUMNS, task_from_row
from jobqueue.store.sqlite.thread import T

_STATE = "status, attempts, at, started_at, finished_at, http_status, error_code, error_message"
_NEW_STATE = ("NEW.status, NEW.attempts, NEW.updated_at, NEW.started_at, NEW.finished_at, NEW.http_status,"
              " NEW.error_code, NEW.error_message")
DELETED = "deleted"  # the status of a deletion's row: no job has it
# a deletion is stamped with the time it is made (a job's own time may be weeks old, and pruning goes by `at`)
_NOW = "(julianday('now') - 2440587.5) * 86400.0"
V8_JOB_CHANGES = f"""
CREATE TABLE job_changes (
    seq INTEGER PRIMARY KEY,
    task_id TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    http_status INTEGER,
    error_code TEXT,
    error_message TEXT
);
CREATE TRIGGER job_changes_insert AFTER INSERT ON jobs BEGIN
    INSERT INTO job_changes (task_id, {_STATE}) VALUES (NEW.id, {_NEW_STATE});
END;
CREATE TRIGGER job_changes_update AFTER UPDATE OF status, attempts, updated_at ON jobs
WHEN NEW.status IS NOT OLD.status OR NEW.attempts IS NOT OLD.attempts OR NEW.updated_at IS NOT OLD.updated_at BEGIN
    INSERT INTO job_changes (task_id, {_STATE}) VALUES (NEW.id, {_NEW_STATE});
END;
CREATE TRIGGER job_changes_delete AFTER DELETE ON jobs BEGIN
    INSERT INTO job_changes (task_id, status, attempts, at) VALUES (OLD.id, '{DELETED}', OLD.attempts, {_NOW});
END;
"""
PRUNE_LIMIT = 5000  # rows looked at per prune call: a short hold of the write lock
# The job's columns, its state's taken from the change: each row reads as the job right after that change.
_AS_OF_CHANGE = {"status": "c.status", "attempts": "c.attempts", "updated_at": "c.at", "started_at": "c.started_at",
                 "finished_at": "c.finished_at", "http_status": "c.http_status", "error_code": "c.error_code",
                 "error_message": "c.error_message", "lease_token": "NULL"}
_COLUMNS = ", ".join(f"{_AS_OF_CHANGE.get(name, f'jobs.{name}')} AS {name}"
                     for name in (c.strip() for c in JOB_COLUMNS.split(",")))
_READ = (f"SELECT c.seq AS change_seq, c.task_id AS change_of, {_COLUMNS} FROM job_changes c"
         " LEFT JOIN jobs ON jobs.id = c.task_id"
         " WHERE c.seq > ? ORDER BY c.seq LIMIT ?")


def task_as_of_change(row: sqlite3.Row) -> Task:
    """The job as it was right after the change: its state from the log row, the rest from the job; attempts
    logged after the change are left out."""
    task = task_from_row(row)
    at = task.updated_at
    if task.attempt_log and task.attempt_log[-1].get("at", at) > at:
        task = dataclasses.replace(task, attempt_log=tuple(e for e in task.attempt_log if e.get("at", at) <= at))
    return task


def read_changes(conn: sqlite3.Connection, position: int | None, limit: int) -> ChangePage:
    """The changes after `position` (None: none, just the newest position), in commit order: each state, skipping
    jobs deleted since, and each deletion."""
    newest = conn.execute("SELECT MAX(seq) FROM job_changes").fetchone()[0] or 0
    if position is None or limit <= 0:
        return ChangePage([], newest if position is None else position)
    if newest < position:  # the log restarted (the file was replaced): what happened since is unknown
        return ChangePage([], newest, lost=True)
    rows = conn.execute(_READ, (position, limit)).fetchall()
    if not rows:
        return ChangePage([], position)
    tasks = [task_as_of_change(r) for r in rows if r["id"] is not None]
    deleted = [r["change_of"] for r in rows if r["status"] == DELETED]
    return ChangePage(tasks, rows[-1]["change_seq"], more=len(rows) == limit,
                      lost=rows[0]["change_seq"] > position + 1, deleted=deleted, commit_order=True)


def prune(conn: sqlite3.Connection, before: float, limit: int = PRUNE_LIMIT) -> int:
    """Delete the oldest run of rows recorded before `before`, looking at no more than `limit`; the newest stays.

    Only a run from the start of the log, by number: a row's `at` is taken before the write lock, so it does not
    always rise with `seq`, and a younger row ahead of an older one must not leave a hole in what a follower has
    not read yet (a follower notices pruning only where its next page starts)."""
    return conn.execute(
        "DELETE FROM job_changes WHERE seq < COALESCE((SELECT MIN(seq) FROM (SELECT seq, at FROM job_changes"
        " ORDER BY seq LIMIT ?) WHERE at >= ?), (SELECT MAX(seq) FROM (SELECT seq FROM job_changes ORDER BY seq"
        " LIMIT ?)) + 1) AND seq < (SELECT MAX(seq) FROM job_changes)", (limit, before, limit)).rowcount


class SQLiteChangeOps:
    """changes_after and prune_changes of SQLiteStore."""

    if TYPE_CHECKING:  # provided by SQLiteStore
        async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T: ...
        async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T: ...

    async def changes_after(self, position: Any, limit: int) -> ChangePage:
        """Changes after a log number, in commit order (exact paging: numbers, not times, so any number of
        changes made at the same instant page correctly)."""
        return await self._read(lambda conn: read_changes(conn, position, limit))

    async def prune_changes(self, before: float) -> int:
        """Forget the oldest changes made before `before`, at most PRUNE_LIMIT per call."""
        return await self._write(lambda conn: prune(conn, before))
