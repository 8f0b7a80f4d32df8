"""Is the SQLite database still usable: the same file, writable in time, and errors named for users."""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import threading

from jobqueue.store.base import StoreError
from jobqueue.store.sqlite_thread import WriterThread, is_busy

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
    """Proves the writer can still take the write lock and commit, within a short timeout.

    The probe is an empty write queued like any other, so it goes through BEGIN IMMEDIATE, the
    file check and COMMIT. At most one is in flight: while the writer waits for a lock, health
    checks wait on the same probe instead of queueing more.
    """

    def __init__(self, writer: WriterThread, path: str, timeout: float, busy_timeout: float) -> None:
        self._writer = writer
        self._path = path
        self._timeout = timeout
        self._busy_timeout = busy_timeout
        self._pending: asyncio.Future[None] | None = None

    async def run(self) -> None:
        """Raise StoreError when the last writes failed, or a write does not commit within the timeout."""
        failure = self._writer.recent_failure(RECENT_FAILURE_WINDOW)
        if failure is not None:
            raise StoreError(f"writing to the database {self._path!r} failed: {failure}; "
                             "check the free disk space and the file's permissions")
        pending = self._pending
        if pending is None or pending.done() or pending.get_loop() is not asyncio.get_running_loop():
            pending = self._pending = self._writer.submit(_nothing)
            pending.add_done_callback(_consume)
        try:
            async with asyncio.timeout(self._timeout):  # not wait_for: on 3.11 it can swallow a cancellation
                await asyncio.shield(pending)
        except TimeoutError:
            raise StoreError(
                f"the database {self._path!r} did not take a write within {self._timeout:g} s: another process "
                "may hold a lock on it, or the disk is stalled", retry_after=LOCKED_RETRY_AFTER,
            ) from None
        except sqlite3.Error as exc:
            raise store_error(exc, "write", self._path, self._busy_timeout) from exc


def _nothing(_conn: sqlite3.Connection) -> None:
    return None


def _consume(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()  # a probe nobody awaits any more must not log "exception never retrieved"
