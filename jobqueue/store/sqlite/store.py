"""The embedded default backend: a durable SQLite file in WAL mode, no server needed."""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import time
from collections import Counter
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlsplit

from jobqueue.idempotency import IdempotentAdd
from jobqueue.models import STATUSES, Page, Result, Task
from jobqueue.store.base import ALL_TASKS, Capabilities, NewTask, StoreError, TaskFilter
from jobqueue.store.sqlite.batches import SQLiteBatchOps, keep_answer
from jobqueue.store.sqlite.bodies import BODY_COLUMNS, WITH_BODY
from jobqueue.store.sqlite.bulk import SQLiteBulkOps
from jobqueue.store.sqlite.cancel import SQLiteCancelOps
from jobqueue.store.sqlite.changes import SQLiteChangeOps
from jobqueue.store.sqlite.counting import SQLiteCountOps
from jobqueue.store.sqlite.crawls import SQLiteCrawlOps
from jobqueue.store.sqlite.filters import RESULTS, list_rows
from jobqueue.store.sqlite.guard import FileGuard, ReadProbe, WriteProbe, store_error
from jobqueue.store.sqlite.history import SQLiteHistoryOps, use_incremental_vacuum
from jobqueue.store.sqlite.hosts import SQLiteHostOps
from jobqueue.store.sqlite.leases import SQLiteLeaseOps
from jobqueue.store.sqlite.migrations import migrate
from jobqueue.store.sqlite.rendered import read_artifact
from jobqueue.store.sqlite.robots import SQLiteRobotsOps
from jobqueue.store.sqlite.schedules import SQLiteScheduleOps, start_schedules
from jobqueue.store.sqlite.schema import (
    INSERT_JOB,
    JOB_COLUMNS,
    RESULT_COLUMNS,
    RESULT_COLUMNS_JOINED,
    decode_cursor,
    encode_cursor,
    new_task,
    new_task_row,
    result_from_row,
    task_from_row,
)
from jobqueue.store.sqlite.stats import SQLiteStatsOps
from jobqueue.store.sqlite.text import SQLiteTextOps, list_by_words
from jobqueue.store.sqlite.thread import ReaderThread, T, WriterThread, connect
from jobqueue.store.sqlite.transitions import move_jobs, refuse, status_in
from jobqueue.store.sqlite.views import SQLiteViewOps
from jobqueue.store.sqlite.webhooks import SQLiteWebhookOps, write_outbox
from jobqueue.store.transitions import RETRY, Given
from jobqueue.store.trip_time import CallTimer, Latency
from jobqueue.webhooks.outbox import Outbox

_JOB_COLUMNS_JOINED = ", ".join(f"jobs.{c.strip()}" for c in JOB_COLUMNS.split(","))
CLOSED = "the database connection is closed (the server is stopping); try again shortly"
WRITER_CACHE_KIB = 32 * 1024  # pages are allocated as they are used, so a small database stays small
SYNCHRONOUS_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")

log = logging.getLogger("jobqueue.store")


def sqlite_path_from_url(url: str) -> str:
    """Turn `sqlite:///relative.db` or `sqlite:////abs.db` into a file path (SQLAlchemy's rule)."""
    parts = urlsplit(url)
    if parts.scheme != "sqlite" or parts.netloc:
        raise ValueError(f"not a sqlite URL: {url!r} (use sqlite:///relative/path.db or sqlite:////absolute/path.db)")
    path = unquote(parts.path)
    if path.startswith("/"):
        path = path[1:]
    if not path:
        raise ValueError(f"the sqlite URL {url!r} names no file (use sqlite:///jobqueue.db)")
    return path


class SQLiteStore(SQLiteCancelOps, SQLiteLeaseOps, SQLiteBatchOps, SQLiteWebhookOps, SQLiteBulkOps, SQLiteTextOps,
                  SQLiteHistoryOps, SQLiteScheduleOps, SQLiteChangeOps, SQLiteStatsOps, SQLiteViewOps,
                  SQLiteCountOps, SQLiteRobotsOps, SQLiteCrawlOps, SQLiteHostOps):
    """Jobs and results in one SQLite file; writes funnel through one thread with grouped commits."""

    name = "sqlite"
    capabilities = Capabilities(change_stream=False, atomic_add=True, grouped_complete=True, list_filters=(
        "status", "batch", "crawl", "tag", "host", "http_status", "error", "url", "q", "since", "until"))

    def __init__(self, path: str, synchronous: str = "FULL", clock: Callable[[], float] = time.time,
                 busy_timeout: float = 5.0, probe_timeout: float = 1.0, *, outbox: Outbox | None = None,
                 url_changed: Callable[[Task, str], None] | None = None, latency: Latency | None = None) -> None:
        """`outbox` and `url_changed` are the hooks of the OutboxStore and HistoryStore roles (webhooks off: None);
        `latency` is told each read's and write's time (jobqueue/store/trip_time.py)."""
        if synchronous.upper() not in SYNCHRONOUS_MODES:
            raise ValueError(f"synchronous must be one of {', '.join(SYNCHRONOUS_MODES)}")
        self.path = path
        self.synchronous = synchronous.upper()
        self.clock = clock
        self.busy_timeout = busy_timeout  # how long a write waits for a lock another process holds
        self.probe_timeout = probe_timeout  # how long ping waits for its read, and for a write stuck on a lock
        self._writer: WriterThread | None = None
        self._reader: ReaderThread | None = None
        self._guard: FileGuard | None = None
        self._probe: WriteProbe | None = None
        self._read_probe: ReadProbe | None = None
        self.outbox = outbox
        self.url_changed = url_changed  # (the run, the previous run's id)
        self.latency = latency

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> SQLiteStore:
        """Build a store from a `sqlite:///...` URL."""
        return cls(sqlite_path_from_url(url), **kwargs)

    async def open(self) -> None:
        """Create the file and schema if needed and start the I/O threads."""
        writer_conn, reader_conn = await asyncio.to_thread(self._connect)
        self._guard = guard = FileGuard(self.path)
        timer = CallTimer(type(self), self.latency) if self.latency is not None else None
        self._writer = WriterThread(writer_conn, before_commit=guard.check, timer=timer)
        self._reader = ReaderThread(reader_conn, timer=timer)
        self._probe = WriteProbe(self._writer, self.path, self.probe_timeout, self.busy_timeout)
        self._read_probe = ReadProbe(self.path, guard, self.probe_timeout, self.busy_timeout)

    def _connect(self) -> tuple[sqlite3.Connection, sqlite3.Connection]:
        directory = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(directory):
            raise StoreError(f"cannot create the database {self.path!r}: the folder {directory!r} does not exist")
        try:
            writer_conn = connect(self.path, self.synchronous, self.busy_timeout)
            # The writer changes rows all over the indexes of a big table (a bulk retry, completions):
            # with SQLite's default 2 MB of cache it rereads pages from the OS at every statement.
            writer_conn.execute(f"PRAGMA cache_size=-{WRITER_CACHE_KIB}")
            migrate(writer_conn)
            use_incremental_vacuum(writer_conn)
            # Each page a write function first changes inside its SAVEPOINT is copied to a statement journal,
            # a temporary file past 64 KiB: kept in memory, that is a memcpy rather than a write() per page
            # (10-20 % of the writer's CPU per completion). Set after the migrations and the VACUUM, whose
            # sorts and copies may be big; only this connection's temporary files.
            writer_conn.execute("PRAGMA temp_store=MEMORY")
            return writer_conn, connect(self.path, self.synchronous, self.busy_timeout)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the database {self.path!r}: {exc}") from exc

    async def close(self) -> None:
        """Commit what is queued and close both connections."""
        if self._writer is not None:
            self._writer.stop()
            self._writer = None
        if self._reader is not None:
            self._reader.stop()
            self._reader = None
        if self._read_probe is not None:
            self._read_probe.close()
            self._read_probe = None
        self._probe = None

    def _refuse_if_unusable(self) -> None:
        broken = self._guard.broken if self._guard is not None else None
        if broken is not None:
            raise broken

    async def _write(self, fn: Callable[[sqlite3.Connection], T], durable: bool = True) -> T:
        if self._writer is None:
            raise StoreError(CLOSED)
        self._refuse_if_unusable()
        try:
            return await self._writer.submit(fn, durable)
        except sqlite3.Error as exc:
            raise store_error(exc, "write", self.path, self.busy_timeout) from exc

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._reader is None:
            raise StoreError(CLOSED)
        self._refuse_if_unusable()
        try:
            return await self._reader.run(fn)
        except sqlite3.Error as exc:
            raise store_error(exc, "read", self.path, self.busy_timeout) from exc

    async def ping(self) -> str | None:
        """Prove, without writing, that the path still names the file opened at start, it answers a read, and
        writes neither fail nor wait on another process's lock; each in probe_timeout. A sentence when slow."""
        if self._read_probe is None or self._probe is None:
            raise StoreError(CLOSED)
        await self._read_probe.run()
        return await self._probe.run()

    async def add(self, tasks: list[NewTask], idempotent: IdempotentAdd | None = None) -> list[Task]:
        """Insert tasks in one transaction (reusing fresh results where asked); returns after the commit."""
        now = self.clock()
        # rows and tasks of jobs that reuse no result are made here, not in the writer thread every job waits for
        plain = not any(t.spec.max_age is not None for t in tasks)
        rows = [new_task_row(t, now) for t in tasks] if plain else []
        made = [new_task(t, now) for t in tasks] if plain else []

        def insert(conn: sqlite3.Connection) -> list[Task]:
            if plain:
                conn.executemany(INSERT_JOB, rows)
                created = made
            else:
                created = [self._insert_one(conn, t, now) for t in tasks]
                write_outbox(conn, self.outbox, [t for t in created if t.reused_from is not None], now)
            _count_inserted(conn, created)
            start_schedules(conn, created, now)
            if idempotent is not None:
                keep_answer(conn, idempotent.key, idempotent.render(created), now)
            return created

        return await self._write(insert)

    @staticmethod
    def _insert_one(conn: sqlite3.Connection, new: NewTask, now: float) -> Task:
        """Insert one task; with max_age, as a completed copy of the newest fresh result of the same fetch."""
        reused = None
        if new.spec.max_age is not None:
            row = conn.execute(
                f"SELECT {JOB_COLUMNS} FROM jobs INDEXED BY jobs_fresh WHERE reuse_key = ? AND status = 'completed'"
                " AND reused_from IS NULL AND finished_at >= ? ORDER BY finished_at DESC LIMIT 1",
                (new.reuse_key, now - new.spec.max_age),
            ).fetchone()
            reused = task_from_row(row) if row else None
        conn.execute(INSERT_JOB, new_task_row(new, now, reused))
        if reused is not None:
            conn.execute(
                f"INSERT INTO results ({RESULT_COLUMNS}, body_id, raw_headers, screenshot_id, pdf_id) SELECT ?, url,"
                " final_url, http_status, headers, content_type, encoding, encoding_source, size, truncated,"
                " elapsed_ms, fetched_at, sha256, redirects, timings, render_facts, body_id, raw_headers,"
                " screenshot_id, pdf_id FROM results WHERE job_id = ?",
                (new.id, reused.id))
        return new_task(new, now, reused)

    async def get(self, task_id: str) -> Task | None:
        """Read one task by id."""
        row = await self._read(
            lambda conn: conn.execute(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?", (task_id,)).fetchone()
        )
        return task_from_row(row) if row else None

    async def counts(self) -> dict[str, int]:
        """Read the per-status counters the triggers maintain."""
        rows = await self._read(lambda conn: conn.execute("SELECT status, n FROM counts").fetchall())
        found = {r["status"]: r["n"] for r in rows}
        return {s: int(found.get(s, 0)) for s in STATUSES}

    async def retry(self, task_id: str) -> Task:
        """Queue a finished task again from scratch; its old result is dropped."""
        now = self.clock()

        def update(conn: sqlite3.Connection) -> Task:
            moved = move_jobs(conn, RETRY, f"id = ? AND {status_in(RETRY)}", (task_id,), Given(now), self.outbox)
            if not moved:
                raise refuse(conn, RETRY, task_id)
            return moved[0]

        return await self._write(update)

    async def get_artifact(self, task_id: str, kind: str) -> bytes | None:
        """A completed rendered job's screenshot or PDF (None when it has none)."""
        return await self._read(lambda conn: read_artifact(conn, task_id, kind))

    async def get_result(self, task_id: str, with_body: bool) -> Result | None:
        """Read a result; the body (shared, compressed) is read only when asked for, by its primary key."""
        sql = (f"SELECT {RESULT_COLUMNS_JOINED}, {BODY_COLUMNS} FROM {WITH_BODY} WHERE results.job_id = ?"
               if with_body else f"SELECT {RESULT_COLUMNS} FROM results WHERE job_id = ?")
        row = await self._read(lambda conn: conn.execute(sql, (task_id,)).fetchone())
        return result_from_row(row, with_body) if row else None

    async def list_results(self, limit: int, cursor: str | None, where: TaskFilter = ALL_TASKS) -> Page:
        """Newest completion first, without bodies, narrowed by their jobs' fields."""
        before = decode_cursor(cursor)
        columns = RESULT_COLUMNS_JOINED
        if where.q is not None:
            rows, resume = await self._read(lambda conn: list_by_words(conn, where, columns, before, limit))
        else:
            rows, resume = await self._read(lambda conn: list_rows(conn, where, columns, before, limit, RESULTS))
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1]["seq"]) if more and rows else None
        if resume is not None and not more:
            next_cursor = encode_cursor(resume)
        return Page([result_from_row(r, False) for r in rows], next_cursor)

    async def changed_since(self, since: float, limit: int) -> list[Task]:
        """Recently changed tasks, for processes that share this file to see each other's work."""
        rows = await self._read(
            lambda conn: conn.execute(
                f"SELECT {JOB_COLUMNS} FROM jobs WHERE updated_at >= ? ORDER BY updated_at LIMIT ?", (since, limit)
            ).fetchall()
        )
        return [task_from_row(r) for r in rows]


    # last: below it, `list` in this class's annotations names this method, not the builtin
    async def list(self, where: TaskFilter, limit: int, cursor: str | None) -> Page:
        """Newest first by insertion order; the cursor is the seq to continue below (sqlite_filters)."""
        before = decode_cursor(cursor)
        if where.q is not None:
            rows, resume = await self._read(
                lambda conn: list_by_words(conn, where, _JOB_COLUMNS_JOINED, before, limit))
        else:
            rows, resume = await self._read(lambda conn: list_rows(conn, where, JOB_COLUMNS, before, limit))
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1]["seq"]) if more and rows else None
        if resume is not None and not more:
            next_cursor = encode_cursor(resume)
        return Page([task_from_row(r) for r in rows], next_cursor)

def _count_inserted(conn: sqlite3.Connection, created: list[Task]) -> None:
    """Move the counters by status (and each batch's) once per insert, not once per row."""
    by_status = Counter(t.status for t in created)
    for status, n in by_status.items():
        conn.execute("UPDATE counts SET n = n + ? WHERE status = ?", (n, status))
    by_batch = Counter((t.batch_id, t.status) for t in created if t.batch_id is not None)
    for (batch_id, status), n in by_batch.items():
        conn.execute(f"UPDATE batches SET {status} = {status} + ? WHERE id = ?", (n, batch_id))
