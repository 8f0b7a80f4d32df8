"""The embedded default backend: a durable SQLite file in WAL mode, no server needed."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import sqlite3
import time
from collections import Counter
from collections.abc import Callable
from urllib.parse import unquote, urlsplit

from jobqueue.history.codec import digest
from jobqueue.idempotency import IdempotentAdd
from jobqueue.models import CANCELLED, COMPLETED, FAILED, STATUSES, Page, Result, Task, TaskError
from jobqueue.store.base import ALL_TASKS, Capabilities, Conflict, Lease, NewTask, NotFound, StoreError, TaskFilter
from jobqueue.store.sqlite_batches import SQLiteBatchOps, keep_answer
from jobqueue.store.sqlite_bodies import BODY_COLUMNS, WITH_BODY, insert_result
from jobqueue.store.sqlite_bulk import SQLiteBulkOps
from jobqueue.store.sqlite_filters import RESULTS, list_rows
from jobqueue.store.sqlite_guard import FileGuard, WriteProbe, store_error
from jobqueue.store.sqlite_history import SQLiteHistoryOps, use_incremental_vacuum
from jobqueue.store.sqlite_migrations import migrate
from jobqueue.store.sqlite_schedules import SQLiteScheduleOps, finish_run, start_schedules
from jobqueue.store.sqlite_schema import (
    CLAIMABLE,
    INSERT_JOB,
    JOB_COLUMNS,
    LOG_ATTEMPT,
    RESULT_COLUMNS,
    decode_cursor,
    drop_result,
    encode_cursor,
    new_task,
    new_task_row,
    result_from_row,
    task_from_row,
)
from jobqueue.store.sqlite_text import SQLiteTextOps, list_by_words
from jobqueue.store.sqlite_thread import ReaderThread, WriterThread, connect
from jobqueue.store.sqlite_webhooks import SQLiteWebhookOps, write_outbox

_JOB_COLUMNS_JOINED = ", ".join(f"jobs.{c.strip()}" for c in JOB_COLUMNS.split(","))
_RESULT_COLUMNS_JOINED = ", ".join(f"results.{c.strip()}" for c in RESULT_COLUMNS.split(","))
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


class SQLiteStore(SQLiteBatchOps, SQLiteWebhookOps, SQLiteBulkOps, SQLiteTextOps, SQLiteHistoryOps, SQLiteScheduleOps):
    """Jobs and results in one SQLite file; writes funnel through one thread with grouped commits."""

    name = "sqlite"
    capabilities = Capabilities(change_stream=False, list_filters=(
        "status", "batch", "tag", "host", "http_status", "error", "url", "q", "since", "until"))

    def __init__(self, path: str, synchronous: str = "FULL", clock: Callable[[], float] = time.time,
                 busy_timeout: float = 5.0, probe_timeout: float = 1.0) -> None:
        if synchronous.upper() not in SYNCHRONOUS_MODES:
            raise ValueError(f"synchronous must be one of {', '.join(SYNCHRONOUS_MODES)}")
        self.path = path
        self.synchronous = synchronous.upper()
        self.clock = clock
        self.busy_timeout = busy_timeout  # how long a write waits for a lock another process holds
        self.probe_timeout = probe_timeout  # how long ping waits for its write to commit
        self._writer: WriterThread | None = None
        self._reader: ReaderThread | None = None
        self._guard: FileGuard | None = None
        self._probe: WriteProbe | None = None
        self.url_changed: Callable[[Task, str], None] | None = None  # (the run, the previous run's id)

    @classmethod
    def from_url(cls, url: str, **kwargs: object) -> SQLiteStore:
        """Build a store from a `sqlite:///...` URL."""
        return cls(sqlite_path_from_url(url), **kwargs)  # type: ignore[arg-type]

    async def open(self) -> None:
        """Create the file and schema if needed and start the I/O threads."""
        writer_conn, reader_conn = await asyncio.to_thread(self._connect)
        self._guard = guard = FileGuard(self.path)
        self._writer = WriterThread(writer_conn, before_commit=guard.check)
        self._reader = ReaderThread(reader_conn)
        self._probe = WriteProbe(self._writer, self.path, self.probe_timeout, self.busy_timeout)

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
        self._probe = None

    def _refuse_if_unusable(self) -> None:
        broken = self._guard.broken if self._guard is not None else None
        if broken is not None:
            raise broken

    async def _write(self, fn: Callable[[sqlite3.Connection], object]) -> object:
        if self._writer is None:
            raise StoreError(CLOSED)
        self._refuse_if_unusable()
        try:
            return await self._writer.submit(fn)
        except sqlite3.Error as exc:
            raise store_error(exc, "write", self.path, self.busy_timeout) from exc

    async def _read(self, fn: Callable[[sqlite3.Connection], object]) -> object:
        if self._reader is None:
            raise StoreError(CLOSED)
        self._refuse_if_unusable()
        try:
            return await self._reader.run(fn)
        except sqlite3.Error as exc:
            raise store_error(exc, "read", self.path, self.busy_timeout) from exc

    async def ping(self) -> None:
        """Prove the path still names the file opened at start, it answers a read, and takes a write in time."""
        guard = self._guard

        def read(conn: sqlite3.Connection) -> None:
            if guard is not None:
                guard.check()
            conn.execute("SELECT 1").fetchone()

        await self._read(read)
        if self._probe is None:
            raise StoreError(CLOSED)
        await self._probe.run()

    async def add(self, tasks: list[NewTask], idempotent: IdempotentAdd | None = None) -> list[Task]:
        """Insert tasks in one transaction (reusing fresh results where asked); returns after the commit."""
        now = self.clock()

        def insert(conn: sqlite3.Connection) -> list[Task]:
            if not any(t.spec.max_age is not None for t in tasks):
                conn.executemany(INSERT_JOB, [new_task_row(t, now) for t in tasks])
                created = [new_task(t, now) for t in tasks]
            else:
                created = [self._insert_one(conn, t, now) for t in tasks]
                write_outbox(conn, self.outbox, [t for t in created if t.reused_from is not None], now)
            _count_inserted(conn, created)
            start_schedules(conn, created, now)
            if idempotent is not None:
                keep_answer(conn, idempotent.key, idempotent.render(created), now)
            return created

        return await self._write(insert)  # type: ignore[return-value]

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
                f"INSERT INTO results ({RESULT_COLUMNS}, body_id, raw_headers) SELECT ?, url, final_url, http_status,"
                " headers, content_type, encoding, encoding_source, size, truncated, elapsed_ms, fetched_at, sha256,"
                " redirects, timings, body_id, raw_headers FROM results WHERE job_id = ?",
                (new.id, reused.id))
        return new_task(new, now, reused)

    async def get(self, task_id: str) -> Task | None:
        """Read one task by id."""
        row = await self._read(
            lambda conn: conn.execute(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?", (task_id,)).fetchone()
        )
        return task_from_row(row) if row else None  # type: ignore[arg-type]

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

    async def counts(self) -> dict[str, int]:
        """Read the per-status counters the triggers maintain."""
        rows = await self._read(lambda conn: conn.execute("SELECT status, n FROM counts").fetchall())
        found = {r["status"]: r["n"] for r in rows}  # type: ignore[union-attr]
        return {s: int(found.get(s, 0)) for s in STATUSES}

    async def claim(self, limit: int, lease_seconds: float, exclude_hosts: list[str]) -> list[Task]:
        """One UPDATE ... RETURNING takes due tasks (higher priority, then older due time, first), including
        tasks whose lease ran out."""
        if limit <= 0:
            return []
        now = self.clock()
        token = secrets.token_hex(8)
        exclude = ""
        if exclude_hosts:
            exclude = f" AND host NOT IN ({','.join('?' * len(exclude_hosts))})"
        sql = (
            "UPDATE jobs SET status = 'running', lease_token = ?, available_at = ?, attempts = attempts + 1,"
            " started_at = ?, updated_at = ?"
            " WHERE seq IN (SELECT seq FROM jobs INDEXED BY jobs_due"
            f" WHERE {CLAIMABLE}{exclude} ORDER BY priority DESC, available_at LIMIT ?)"
            f" RETURNING seq, {JOB_COLUMNS}"
        )
        args = (token, now + lease_seconds, now, now, now, *exclude_hosts, limit)
        rows = await self._write(lambda conn: conn.execute(sql, args).fetchall())
        rows = sorted(rows, key=lambda r: (-r["priority"], r["seq"]))  # type: ignore[arg-type]
        return [task_from_row(r) for r in rows]

    async def extend(self, leases: list[Lease], lease_seconds: float) -> list[str]:
        """Renew leases still held; report the ones another claim or a cancel took away."""
        if not leases:
            return []
        now = self.clock()

        def renew(conn: sqlite3.Connection) -> list[str]:
            lost = []
            for lease in leases:
                cur = conn.execute(
                    "UPDATE jobs SET available_at = ? WHERE id = ? AND lease_token = ? AND status = 'running'",
                    (now + lease_seconds, lease.task_id, lease.token),
                )
                if cur.rowcount == 0:
                    lost.append(lease.task_id)
            return lost

        return await self._write(renew)  # type: ignore[return-value]

    async def release(self, leases: list[Lease]) -> list[Task]:
        """Hand tasks back as queued, due now, without counting the interrupted attempt."""
        if not leases:
            return []
        now = self.clock()

        def give_back(conn: sqlite3.Connection) -> list[Task]:
            out = []
            for lease in leases:
                row = conn.execute(
                    "UPDATE jobs SET status = 'queued', lease_token = NULL, available_at = ?, updated_at = ?,"
                    " attempts = MAX(attempts - 1, 0) WHERE id = ? AND lease_token = ? AND status = 'running'"
                    f" RETURNING {JOB_COLUMNS}",
                    (now, now, lease.task_id, lease.token),
                ).fetchone()
                if row:
                    out.append(task_from_row(row))
            return out

        return await self._write(give_back)  # type: ignore[return-value]

    async def complete(self, lease: Lease, result: Result) -> Task | None:
        """Mark completed and store the result (its body once per sha256) in one transaction, only under a
        live lease; a recurring job's next run is queued in the same transaction."""
        now = self.clock()
        done = await self._write(lambda conn: self._complete_one(conn, lease, result, now))
        return self._completed(done)  # type: ignore[arg-type]

    async def complete_many(self, completions: list[tuple[Lease, Result]], digests_checked: bool = False
                            ) -> list[Task | Exception | None]:
        """Several completions as one write (one savepoint and one answer from the writer thread instead of one
        each), each exactly as `complete` writes it and answered only once committed. If any of them fails, the
        group is undone and each is written alone, so a bad result fails only itself; the answer for each is
        its task (None: the lease was lost) or its exception. With `digests_checked` the caller vouches that each
        result's sha256 is its body's digest (the workers take it once, from the response), so the writer thread,
        which every job waits for, does not hash the bodies again."""
        now = self.clock()

        def complete_all(conn: sqlite3.Connection) -> list[tuple[Task, str | None] | None]:
            return [self._complete_one(conn, lease, result, now, digests_checked) for lease, result in completions]

        try:
            group = await self._write(complete_all)
        except Exception:
            alone = await asyncio.gather(*(self.complete(lease, result) for lease, result in completions),
                                         return_exceptions=True)
            return [_as_outcome(outcome) for outcome in alone]
        return [self._completed(done) for done in group]  # type: ignore[union-attr]

    def _complete_one(self, conn: sqlite3.Connection, lease: Lease, result: Result, now: float,
                      digest_checked: bool = False) -> tuple[Task, str | None] | None:
        """In the writer thread: the lease-guarded update, the result and its body, the schedule's next run, the
        outbox; the body is keyed by its digest, taken here unless the caller vouches for result.sha256."""
        row = conn.execute(
            "UPDATE jobs SET status = 'completed', lease_token = NULL, finished_at = ?, updated_at = ?,"
            f" http_status = ?, error_code = NULL, error_message = NULL, {LOG_ATTEMPT}"
            f" WHERE id = ? AND lease_token = ? AND status = 'running' RETURNING {JOB_COLUMNS}",
            (now, now, result.http_status, now, "completed", result.http_status, None, None,
             lease.task_id, lease.token),
        ).fetchone()
        if row is None:
            return None
        if result.body is None:
            sha256 = None
        else:
            sha256 = result.sha256 if digest_checked else digest(result.body)
        insert_result(conn, RESULT_COLUMNS, lease.task_id, result, sha256)
        task = task_from_row(row)
        changed_from = None
        if task.schedule_id is not None:
            changed_from = finish_run(conn, task, sha256, now)[1]
        write_outbox(conn, self.outbox, (task,), now)
        return task, changed_from

    def _completed(self, done: tuple[Task, str | None] | None) -> Task | None:
        """After the commit: tell the url_changed hook about a recurring fetch whose body changed."""
        if done is None:
            return None
        task, changed_from = done
        if changed_from is not None and self.url_changed is not None:
            try:
                self.url_changed(task, changed_from)
            except Exception:  # committed already: a listener's bug must not report the completion as failed
                log.exception("the url.changed listener failed for task %s", task.id)
        return task

    async def reschedule(self, lease: Lease, at: float, error: TaskError, http_status: int | None) -> Task | None:
        """Queue again for `at`, keeping the last error visible; only under a live lease."""
        now = self.clock()
        return await self._finish_attempt(
            "status = 'queued', available_at = ?, updated_at = ?, http_status = ?, error_code = ?, error_message = ?,"
            f" {LOG_ATTEMPT}",
            (at, now, http_status, error.code, error.message, now, "retry", http_status, error.code, error.message),
            lease, now,
        )

    async def fail(self, lease: Lease, error: TaskError, http_status: int | None) -> Task | None:
        """Mark failed for good; only under a live lease."""
        now = self.clock()
        return await self._finish_attempt(
            "status = 'failed', finished_at = ?, updated_at = ?, http_status = ?, error_code = ?, error_message = ?,"
            f" {LOG_ATTEMPT}",
            (now, now, http_status, error.code, error.message, now, "failed", http_status, error.code, error.message),
            lease, now,
        )

    async def _finish_attempt(self, assignments: str, args: tuple[object, ...], lease: Lease, now: float
                              ) -> Task | None:
        sql = (
            f"UPDATE jobs SET lease_token = NULL, {assignments}"
            f" WHERE id = ? AND lease_token = ? AND status = 'running' RETURNING {JOB_COLUMNS}"
        )

        def update(conn: sqlite3.Connection) -> Task | None:
            row = conn.execute(sql, (*args, lease.task_id, lease.token)).fetchone()
            if row is None:
                return None
            task = task_from_row(row)
            if task.schedule_id is not None and task.status == FAILED:
                finish_run(conn, task, None, now)
            write_outbox(conn, self.outbox, (task,), now)
            return task

        return await self._write(update)  # type: ignore[return-value]

    async def cancel(self, task_id: str) -> Task:
        """Cancel a queued or running task; a running fetch's late completion is then refused."""
        now = self.clock()

        def update(conn: sqlite3.Connection) -> Task:
            row = conn.execute(
                "UPDATE jobs SET status = 'cancelled', lease_token = NULL, finished_at = ?, updated_at = ?,"
                " http_status = NULL, error_code = NULL, error_message = NULL"  # they told of the last attempt
                f" WHERE id = ? AND status IN ('queued', 'running') RETURNING {JOB_COLUMNS}",
                (now, now, task_id),
            ).fetchone()
            if row is not None:
                task = task_from_row(row)
                if task.schedule_id is not None:
                    finish_run(conn, task, None, now)  # a cancelled run skips its due time, the schedule goes on
                write_outbox(conn, self.outbox, (task,), now)
                return task
            current = conn.execute(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?", (task_id,)).fetchone()
            if current is None:
                raise NotFound(task_id)
            task = task_from_row(current)
            raise Conflict(
                task, f"task {task_id} is already {task.status}; only queued or running tasks can be cancelled"
            )

        return await self._write(update)  # type: ignore[return-value]

    async def retry(self, task_id: str) -> Task:
        """Queue a finished task again from scratch; its old result is dropped."""
        now = self.clock()

        def update(conn: sqlite3.Connection) -> Task:
            row = conn.execute(
                "UPDATE jobs SET status = 'queued', attempts = 0, available_at = ?, updated_at = ?,"
                " started_at = NULL, finished_at = NULL, http_status = NULL, error_code = NULL,"
                " error_message = NULL, lease_token = NULL, reused_from = NULL"
                f" WHERE id = ? AND status IN ('{COMPLETED}', '{FAILED}', '{CANCELLED}') RETURNING {JOB_COLUMNS}",
                (now, now, task_id),
            ).fetchone()
            if row is None:
                current = conn.execute(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?", (task_id,)).fetchone()
                if current is None:
                    raise NotFound(task_id)
                task = task_from_row(current)
                raise Conflict(task, f"task {task_id} is still {task.status}; only finished tasks can be retried")
            drop_result(conn, task_id)
            return task_from_row(row)

        return await self._write(update)  # type: ignore[return-value]

    async def get_result(self, task_id: str, with_body: bool) -> Result | None:
        """Read a result; the body (shared, compressed) is read only when asked for, by its primary key."""
        sql = (f"SELECT {_RESULT_COLUMNS_JOINED}, {BODY_COLUMNS} FROM {WITH_BODY} WHERE results.job_id = ?"
               if with_body else f"SELECT {RESULT_COLUMNS} FROM results WHERE job_id = ?")
        row = await self._read(lambda conn: conn.execute(sql, (task_id,)).fetchone())
        return result_from_row(row, with_body) if row else None  # type: ignore[arg-type]

    async def list_results(self, limit: int, cursor: str | None, where: TaskFilter = ALL_TASKS) -> Page:
        """Newest completion first, without bodies, narrowed by their jobs' fields."""
        before = decode_cursor(cursor)
        columns = _RESULT_COLUMNS_JOINED
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
        return [task_from_row(r) for r in rows]  # type: ignore[union-attr]


def _as_outcome(outcome: Task | BaseException | None) -> Task | Exception | None:
    """One answer of gather(return_exceptions=True), with a cancellation passed on rather than returned."""
    if isinstance(outcome, BaseException) and not isinstance(outcome, Exception):
        raise outcome
    return outcome


def _count_inserted(conn: sqlite3.Connection, created: list[Task]) -> None:
    """Move the counters by status (and each batch's) once per insert, not once per row."""
    by_status = Counter(t.status for t in created)
    for status, n in by_status.items():
        conn.execute("UPDATE counts SET n = n + ? WHERE status = ?", (n, status))
    by_batch = Counter((t.batch_id, t.status) for t in created if t.batch_id is not None)
    for (batch_id, status), n in by_batch.items():
        conn.execute(f"UPDATE batches SET {status} = {status} + ? WHERE id = ?", (n, batch_id))
