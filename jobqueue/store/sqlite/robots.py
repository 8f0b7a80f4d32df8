"""SQLite's side of robots.txt (jobqueue/robots.py): the `robots` table, one row per origin, and a job's `robots`
column (obey | ignore | NULL for the server's --robots).

Every process on the file reads the one row of an origin, so robots.txt is fetched once per origin per period.
Two processes fetching it at once both write: the newer fetch wins, and either is a true answer.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING

from jobqueue.store.records import RobotsEntry
from jobqueue.store.sqlite.thread import T

# Migration 15. Never edited once released.
V15_ROBOTS = """
CREATE TABLE robots (
    origin TEXT PRIMARY KEY,
    status INTEGER,
    body TEXT NOT NULL,
    fetched_at REAL NOT NULL,
    expires_at REAL NOT NULL
);
ALTER TABLE jobs ADD COLUMN robots TEXT;
"""

_PUT = ("INSERT INTO robots (origin, status, body, fetched_at, expires_at) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT (origin) DO UPDATE SET status = excluded.status, body = excluded.body,"
        " fetched_at = excluded.fetched_at, expires_at = excluded.expires_at"
        " WHERE excluded.fetched_at >= robots.fetched_at")


def _get(conn: sqlite3.Connection, origin: str) -> RobotsEntry | None:
    row = conn.execute("SELECT status, body, fetched_at, expires_at FROM robots WHERE origin = ?",
                       (origin,)).fetchone()
    return None if row is None else RobotsEntry(origin, row[0], row[1], row[2], row[3])


class SQLiteRobotsOps:
    """get_robots and put_robots of SQLiteStore."""

    if TYPE_CHECKING:  # provided by SQLiteStore
        async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T: ...
        async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T: ...

    async def get_robots(self, origin: str) -> RobotsEntry | None:
        """The row kept for an origin, expired or not; None when there is none."""
        return await self._read(lambda conn: _get(conn, origin))

    async def put_robots(self, origin: str, status: int | None, body: str, fetched_at: float,
                         expires_at: float) -> None:
        """Keep an origin's robots.txt unless a newer fetch of it is kept already."""
        def put(conn: sqlite3.Connection) -> None:
            conn.execute(_PUT, (origin, status, body, fetched_at, expires_at))

        await self._write(put)
