"""Run SQLite work off the IOLoop: one writer thread that groups commits, one reader thread."""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from jobqueue.backoff import delay as backoff_delay
from jobqueue.store.trip_time import CallTimer

T = TypeVar("T")
_STOP = object()
MAX_GROUP = 1000
NATIVE_NAME = b"jq-sqlite-write"  # the writer's name in /proc/PID/task/TID/comm (15 bytes at most), read by benches
_PR_SET_NAME = 15
BEGIN_RETRY_FIRST = 0.0002  # seconds between tries for the write lock, doubling up to BEGIN_RETRY_MAX
BEGIN_RETRY_MAX = 0.002
RELAXED_LEVEL = 1  # PRAGMA synchronous=NORMAL: in WAL mode, a commit is not synced; checkpoints still are
SYNC_WITHIN = 1.0  # seconds a commit made at RELAXED_LEVEL stays unsynced at most (about: the writer may be busy)
log = logging.getLogger("jobqueue.store")


def connect(path: str, synchronous: str, busy_timeout: float = 5.0) -> sqlite3.Connection:
    """Open a connection with the pragmas every jobqueue connection needs.

    `busy_timeout` bounds how long a statement waits for a lock another process holds.
    """
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=busy_timeout)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def is_busy(exc: BaseException) -> bool:
    """True for SQLITE_BUSY/SQLITE_LOCKED: another connection holds the lock, trying later can work."""
    return _primary_code(exc) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def is_storage_failure(exc: BaseException) -> bool:
    """True when the file itself refuses writes: disk full, I/O error, read-only, corrupt."""
    return _primary_code(exc) in (sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_READONLY,
                                  sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_NOTADB)


def _primary_code(exc: BaseException) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None) if isinstance(exc, sqlite3.Error) else None
    return code & 0xFF if code is not None else None


def _name_native_thread(name: bytes) -> None:
    """Give the calling thread `name` in the kernel, so per-thread CPU figures (/proc, top -H) can tell it apart."""
    try:
        ctypes.CDLL(None).prctl(_PR_SET_NAME, ctypes.c_char_p(name), 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the name is only for measurements
        pass


class WriterThread:
    """Executes write functions in order; every batch waiting at once shares one transaction.

    Each function runs inside its own SAVEPOINT, so one failing function is rolled back alone,
    and its future resolves only after the COMMIT that makes its work durable. `before_commit` can
    refuse that COMMIT by raising (the file is gone): the whole batch is then rolled back. When the
    lock cannot be had, the writes that queued meanwhile fail at once rather than each waiting again.

    A write submitted with `durable=False` (an attempt's outcome, a claim: work a power cut may undo, since the
    job is then fetched again) does not need its commit synced to the disk. A batch of only such writes
    commits with `synchronous=NORMAL` when the connection's own level is higher: the commit survives a crash of
    the process, not a power cut, and holds the write lock without waiting for an fsync. The next batch with a
    durable write syncs the log, with every earlier commit in it, so a power cut keeps a prefix of the commits
    that holds every durable one; and no commit stays unsynced much longer than `sync_within` seconds: the log is
    synced when the writer has been idle that long, and the first batch after that long commits synced.
    """

    def __init__(self, conn: sqlite3.Connection, name: str = "jobqueue-sqlite-writer",
                 before_commit: Callable[[], None] | None = None, timer: CallTimer | None = None,
                 sync_within: float = SYNC_WITHIN) -> None:
        self._conn = conn
        self._timer = timer
        # the lock is waited for in _begin; once held, nothing in a transaction waits for another process
        self._busy_timeout = conn.execute("PRAGMA busy_timeout").fetchone()[0] / 1000
        conn.execute("PRAGMA busy_timeout=0")
        self._before_commit = before_commit
        self._durable_level = self._level = int(conn.execute("PRAGMA synchronous").fetchone()[0])
        self._relaxed_level = min(self._durable_level, RELAXED_LEVEL)
        self._sync_within = sync_within
        self._unsynced_since: float | None = None  # the first commit made relaxed since the log was last synced
        main_file = conn.execute("PRAGMA database_list").fetchone()[2]
        self._log_path = f"{main_file}-wal" if main_file else None
        self._last_failure: tuple[float, BaseException] | None = None
        # what health checks read instead of writing (monotonic times; set and cleared by the writer thread)
        self.batch_started: float | None = None  # the batch under way began
        self.lock_wait_started: float | None = None  # it began waiting for another process's lock
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[[sqlite3.Connection], T], durable: bool = True) -> asyncio.Future[T]:
        """Queue a write (from the store's _write); the future resolves once it is committed (with `durable`,
        synced to the disk at the connection's level)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        timer = self._timer
        if timer is not None:  # from queued to committed, as the caller waits for it
            begun = timer.begin(2)
            future.add_done_callback(lambda _future: timer.end(begun))
        self._queue.put((fn, future, loop, durable))
        return future

    def stop(self) -> None:
        """Finish queued writes, then end the thread and close the connection."""
        self._queue.put(_STOP)
        self._thread.join()

    def recent_failure(self, within: float) -> BaseException | None:
        """The storage error (disk full, I/O) of a write under `within` s ago, unless a write succeeded since."""
        failure = self._last_failure
        if failure is None or time.monotonic() - failure[0] > within:
            return None
        return failure[1]

    def _run(self) -> None:
        _name_native_thread(NATIVE_NAME)
        stopping = False
        while not stopping:
            first = self._next()
            if first is None:
                self._sync_log()
                continue
            batch, stopping = self._take([first], MAX_GROUP)
            if not batch:
                continue
            failure = self._run_batch(batch)
            if failure is not None and is_busy(failure):
                waited, stop = self._take([], None)
                stopping = stopping or stop
                _deliver(waited, [(future, None, failure) for _fn, future, _loop, _durable in waited])
        self._conn.close()

    def _next(self) -> Any:
        """The next queued item; None once commits have waited `sync_within` for a sync and nothing came."""
        if self._unsynced_since is None:
            return self._queue.get()
        try:
            return self._queue.get(timeout=max(0.0, self._unsynced_since + self._sync_within - time.monotonic()))
        except queue.Empty:
            return None

    def _sync_log(self) -> None:
        """Sync the write-ahead log, and with it every commit made relaxed so far."""
        try:
            if self._log_path is not None:
                fd = os.open(self._log_path, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        except FileNotFoundError:
            pass  # no log: its commits are in the database file, which a checkpoint synced
        except OSError as exc:  # the next synced commit tries again, and reports a lasting fault
            log.warning("syncing the database's write-ahead log failed: %s", exc)
        self._unsynced_since = None

    def _take(self, items: list[Any], limit: int | None) -> tuple[list[Any], bool]:
        """Add what is queued (up to `limit` items); also say whether a stop request was among them."""
        while limit is None or len(items) < limit:
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return [item for item in items if item is not _STOP], any(item is _STOP for item in items)

    def _run_batch(self, batch: list[Any]) -> BaseException | None:
        outcomes: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
        conn = self._conn
        changes = conn.total_changes
        failure: BaseException | None = None
        storage_failure: BaseException | None = None
        self.batch_started = time.monotonic()
        try:
            overdue = self._unsynced_since is not None and time.monotonic() - self._unsynced_since >= self._sync_within
            self._sync_for(overdue or any(durable for _fn, _future, _loop, durable in batch))
            self._begin()
            for fn, future, _loop, _durable in batch:
                conn.execute("SAVEPOINT op")
                try:
                    value = fn(conn)
                except Exception as exc:
                    if not conn.in_transaction:
                        raise  # SQLite rolled the whole transaction back (disk full, I/O error)
                    if is_storage_failure(exc):
                        storage_failure = exc
                    conn.execute("ROLLBACK TO op")
                    conn.execute("RELEASE op")
                    outcomes.append((future, None, exc))
                else:
                    conn.execute("RELEASE op")
                    outcomes.append((future, value, None))
            if self._before_commit is not None:
                self._before_commit()
            conn.execute("COMMIT")
            if self._level == self._durable_level:
                self._unsynced_since = None
            elif self._unsynced_since is None and conn.total_changes != changes:
                self._unsynced_since = time.monotonic()
        except Exception as exc:
            failure = exc
            self._roll_back()
            outcomes = [(future, None, exc) for _fn, future, _loop, _durable in batch]
        if failure is not None and is_storage_failure(failure):
            storage_failure = failure
        if storage_failure is not None:
            self._last_failure = (time.monotonic(), storage_failure)
        elif failure is None and conn.total_changes != changes:
            self._last_failure = None
        self.batch_started = None
        _deliver(batch, outcomes)
        return failure

    def _sync_for(self, durable: bool) -> None:
        """Set the level the next commit syncs at (outside a transaction, where SQLite takes it)."""
        level = self._durable_level if durable else self._relaxed_level
        if level != self._level:
            self._conn.execute(f"PRAGMA synchronous={level}")
            self._level = level

    def _begin(self) -> None:
        """BEGIN IMMEDIATE, tried again every 0.2-2 ms while another process holds the write lock, up to the
        connection's busy timeout. SQLite's own busy handler sleeps 1, 2, 5 ... then 100 ms between tries, so
        with --processes a lock held for 2 ms could keep a waiting writer, and its POSTs, 100 ms and more."""
        conn = self._conn
        deadline = time.monotonic() + self._busy_timeout
        waits = 0
        try:
            while True:
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    return
                except sqlite3.OperationalError as exc:
                    left = deadline - time.monotonic()
                    if not is_busy(exc) or left <= 0:
                        raise
                if self.lock_wait_started is None:
                    self.lock_wait_started = time.monotonic()
                time.sleep(min(backoff_delay(waits, BEGIN_RETRY_FIRST, BEGIN_RETRY_MAX), left))
                waits += 1
        finally:
            self.lock_wait_started = None

    def _roll_back(self) -> None:
        try:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # SQLite already rolled back (it does on I/O errors); the thread must live on


def _deliver(batch: list[Any], outcomes: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    by_loop: dict[asyncio.AbstractEventLoop, list[Any]] = {}
    for (_fn, _future, loop, _durable), outcome in zip(batch, outcomes, strict=True):
        by_loop.setdefault(loop, []).append(outcome)
    for loop, items in by_loop.items():
        try:
            loop.call_soon_threadsafe(_resolve, items)
        except RuntimeError:
            pass  # the loop is closed: nobody is waiting any more


def _resolve(items: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for future, value, exc in items:
        if future.cancelled():
            continue
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(value)


class ReaderThread:
    """Runs read-only queries on a connection of its own (WAL lets it read beside the writer)."""

    def __init__(self, conn: sqlite3.Connection, timer: CallTimer | None = None) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self._conn = conn
        self._timer = timer
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="jobqueue-sqlite-reader")

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run one read function (from the store's _read) and return its value."""
        loop = asyncio.get_running_loop()
        if self._timer is None:
            return await loop.run_in_executor(self._executor, fn, self._conn)
        begun = self._timer.begin(2)
        try:
            return await loop.run_in_executor(self._executor, fn, self._conn)
        finally:
            self._timer.end(begun)

    def stop(self) -> None:
        """Wait for running reads, then close the connection."""
        self._executor.shutdown(wait=True)
        self._conn.close()
