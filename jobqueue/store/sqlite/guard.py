"""Is the SQLite database still usable: the same file, writable in time, and errors named for users."""

from __future__ import annotations

import asyncio
import logging
import os
import pathlib
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from jobqueue.store.base import StoreError
from jobqueue.store.sqlite.thread import WriterThread, is_busy

log = logging.getLogger("jobqueue.store")

LOCKED_RETRY_AFTER = 1.0
RECENT_FAILURE_WINDOW = 10.0


def store_error(exc: sqlite3.Error, action: str, path: str, busy_timeout: float) -> StoreError:
    """The StoreError a user sees for a failed SQLite call; a held lock says to retry soon."""
    if is_busy(exc):
        return StoreError(
            f"the database {path!r} is locked by another process (waited {busy_timeout:g} s); try again shortly",
            retry_after=LOCKED_RETRY_AFTER,
        )
    return StoreError(f"database {action} failed: {exc}; try again shortly (the server log says more if it lasts)")


class FileGuard:
    """Notices that the path no longer names the file the connections opened (deleted or replaced).

    SQLite keeps reading and writing a deleted file through its open descriptors, so without this
    every write after `rm jobqueue.db` would be acknowledged and then be gone at the next start.
    Once noticed, the store stays refused: only a restart opens the file the path names now.
    """

    def __init__(self, path: str) -> None:
        self.path = path = os.path.abspath(path)  # the check must not depend on the working directory
        self._expected = {name: found for name in (path, f"{path}-wal") if (found := _identity(name)) is not None}
        self._broken: str | None = None
        self._lock = threading.Lock()

    @property
    def broken(self) -> StoreError | None:
        """The error every operation gets once the file was found gone, else None."""
        # a fresh exception each time: re-raising one instance would grow its traceback forever
        return StoreError(self._broken) if self._broken is not None else None

    def check(self) -> None:
        """Raise StoreError when the file is gone or another one took its name; cheap: one stat per file."""
        for name, expected in self._expected.items():
            if self._broken is not None:
                break
            try:
                found = _identity(name)
            except OSError as exc:
                raise StoreError(f"cannot check the database file {name!r}: {exc}") from exc
            if found != expected:
                self._break(name, "deleted" if found is None else "replaced by another file")
        if self._broken is not None:
            raise StoreError(self._broken)

    def _break(self, name: str, what: str) -> None:
        with self._lock:
            if self._broken is None:
                self._broken = (
                    f"the database file {name!r} was {what} while the server was running, so nothing written "
                    f"now would survive: restart the server (it then opens {self.path!r} afresh)"
                )
                log.error("%s", self._broken)


def _identity(name: str) -> tuple[int, int] | None:
    try:
        st = os.stat(name)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


class WriteProbe:
    """Judges from the writer thread's state, without writing, whether writes work: /healthz must stay cheap
    while the writer is busy (a probe write queued behind a bulk delete took 682 ms).

    Writes fail when a recent one hit a storage error (disk full, I/O), or when the writer has waited for
    another process's lock for longer than the timeout. A write under way for longer than that is only
    slow, and said so.
    """

    def __init__(self, writer: WriterThread, path: str, timeout: float, busy_timeout: float) -> None:
        self._writer = writer
        self._path = path
        self._timeout = timeout
        self._busy_timeout = busy_timeout

    async def run(self) -> str | None:
        """Raise StoreError when writes fail or stay locked; a sentence when they are slow; None when fine.
        Waits at most the timeout, only while a write waits for a lock."""
        writer = self._writer
        failure = writer.recent_failure(RECENT_FAILURE_WINDOW)
        if failure is not None:
            raise StoreError(f"writing to the database {self._path!r} failed: {failure}; "
                             "check the free disk space and the file's permissions")
        deadline = time.monotonic() + self._timeout
        while (since := writer.lock_wait_started) is not None:
            now = time.monotonic()
            if now - since >= self._timeout:
                raise StoreError(
                    f"the database {self._path!r} is locked by another process: a write has waited "
                    f"{now - since:.1f} s for it (writes give up after {self._busy_timeout:g} s); try again shortly",
                    retry_after=LOCKED_RETRY_AFTER,
                )
            if now >= deadline:
                return f"writes wait for a lock another process holds on the database ({now - since:.1f} s so far)"
            await asyncio.sleep(min(deadline - now, since + self._timeout - now, 0.05))
        started = writer.batch_started
        running = time.monotonic() - started if started is not None else 0.0
        if running >= self._timeout:
            return f"writes are slow: the one under way has taken {running:.1f} s so far"
        return None


class ReadProbe:
    """Proves the file still answers a read, within a timeout, on a read-only connection of its own: a read
    queued behind the API's long listings would say nothing about the database, only about those."""

    def __init__(self, path: str, guard: FileGuard, timeout: float, busy_timeout: float) -> None:
        self._path = path
        self._guard = guard
        self._timeout = timeout
        self._busy_timeout = busy_timeout
        self._conn: sqlite3.Connection | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="jobqueue-sqlite-health")
        self._pending: asyncio.Future[None] | None = None

    async def run(self) -> None:
        """Raise StoreError when the file is gone, cannot be read, or does not answer within the timeout."""
        pending = self._pending
        if pending is None or pending.done() or pending.get_loop() is not asyncio.get_running_loop():
            # at most one read in flight: while the disk hangs, checks wait on it rather than pile up threads' work
            pending = self._pending = asyncio.wrap_future(self._executor.submit(self._read))
            pending.add_done_callback(_consume)
        try:
            async with asyncio.timeout(self._timeout):
                await asyncio.shield(pending)
        except TimeoutError:
            raise StoreError(f"the database {self._path!r} did not answer a read within {self._timeout:g} s: the "
                             "disk may be stalled", retry_after=LOCKED_RETRY_AFTER) from None
        except sqlite3.Error as exc:
            raise store_error(exc, "read", self._path, self._busy_timeout) from exc

    def close(self) -> None:
        """Wait for a read under way, then close the connection."""
        self._executor.shutdown(wait=True)
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _read(self) -> None:
        self._guard.check()  # a stat per file, here: on a stalled disk even a stat blocks
        if self._conn is None:
            uri = pathlib.Path(os.path.abspath(self._path)).as_uri() + "?mode=ro"
            self._conn = sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=self._busy_timeout)
        self._conn.execute("PRAGMA schema_version").fetchone()  # reads the file's first page


def _consume(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()  # a probe nobody awaits any more must not log "exception never retrieved"
