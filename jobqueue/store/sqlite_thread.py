"""Run SQLite work off the IOLoop: one writer thread that groups commits, one reader thread."""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
_STOP = object()
MAX_GROUP = 1000


def connect(path: str, synchronous: str) -> sqlite3.Connection:
    """Open a connection with the pragmas every jobqueue connection needs."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA busy_timeout=30000")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


class WriterThread:
    """Executes write functions in order; every batch waiting at once shares one transaction.

    Each function runs inside its own SAVEPOINT, so one failing function is rolled back alone,
    and its future resolves only after the COMMIT that makes its work durable.
    """

    def __init__(self, conn: sqlite3.Connection, name: str = "jobqueue-sqlite-writer") -> None:
        self._conn = conn
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        """Queue a write; the future resolves once it is committed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put((fn, future, loop))
        return future

    def stop(self) -> None:
        """Finish queued writes, then end the thread and close the connection."""
        self._queue.put(_STOP)
        self._thread.join()

    def _run(self) -> None:
        stopping = False
        while not stopping:
            batch = [self._queue.get()]
            while len(batch) < MAX_GROUP:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if any(item is _STOP for item in batch):
                stopping = True
                batch = [item for item in batch if item is not _STOP]
            if batch:
                self._run_batch(batch)
        self._conn.close()

    def _run_batch(self, batch: list[Any]) -> None:
        outcomes: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            for fn, future, _loop in batch:
                conn.execute("SAVEPOINT op")
                try:
                    value = fn(conn)
                except Exception as exc:
                    conn.execute("ROLLBACK TO op")
                    conn.execute("RELEASE op")
                    outcomes.append((future, None, exc))
                else:
                    conn.execute("RELEASE op")
                    outcomes.append((future, value, None))
            conn.execute("COMMIT")
        except Exception as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            outcomes = [(future, None, exc) for _fn, future, _loop in batch]
        by_loop: dict[asyncio.AbstractEventLoop, list[Any]] = {}
        for (_fn, _future, loop), outcome in zip(batch, outcomes, strict=True):
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

    def __init__(self, conn: sqlite3.Connection) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self._conn = conn
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="jobqueue-sqlite-reader")

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run one read function and return its value."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, self._conn)

    def stop(self) -> None:
        """Wait for running reads, then close the connection."""
        self._executor.shutdown(wait=True)
        self._conn.close()
