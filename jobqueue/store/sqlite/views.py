"""SQLite's side of derived views (jobqueue/store/views.py): the `body_views` table, one row per (sha256, version).

A row is dropped by a trigger on `bodies` in the transaction that deletes its body (a retry, a bulk delete,
retention: whatever deleted the body's last result), so no view outlives its body. A put stores a row only
while a body of that sha256 is stored: the writer thread runs the check and the insert as one step.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING

from jobqueue.store.sqlite.thread import T
from jobqueue.store.views import pack_views, unpack_views

# Migration 13. Never edited once released.
V13_BODY_VIEWS = """
CREATE TABLE body_views (
    sha256 TEXT NOT NULL,
    version INTEGER NOT NULL,
    codec TEXT NOT NULL,
    size INTEGER NOT NULL,
    created_at REAL NOT NULL,
    document BLOB NOT NULL,
    PRIMARY KEY (sha256, version)
);
CREATE TRIGGER bodies_drop_views AFTER DELETE ON bodies BEGIN
    DELETE FROM body_views WHERE sha256 = OLD.sha256;
END;
"""

_PUT = ("INSERT INTO body_views (sha256, version, codec, size, created_at, document) SELECT ?, ?, ?, ?, ?, ?"
        " WHERE EXISTS (SELECT 1 FROM bodies WHERE sha256 = ?) ON CONFLICT (sha256, version) DO NOTHING")


def _get(conn: sqlite3.Connection, sha256: str, version: int) -> str | None:
    row = conn.execute("SELECT codec, document, size FROM body_views WHERE sha256 = ? AND version = ?",
                       (sha256, version)).fetchone()
    return None if row is None else unpack_views(row[0], row[1], row[2])


class SQLiteViewOps:
    """get_views and put_views of SQLiteStore."""

    clock: Callable[[], float]

    if TYPE_CHECKING:  # provided by SQLiteStore
        async def _write(self, fn: Callable[[sqlite3.Connection], T], durable: bool = True) -> T: ...
        async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T: ...

    async def get_views(self, sha256: str, version: int) -> str | None:
        """The views kept for a body by an extractor version (decompressed in the reader thread); None if none."""
        return await self._read(lambda conn: _get(conn, sha256, version))

    async def put_views(self, sha256: str, version: int, document: str) -> None:
        """Keep a body's views once (the first put of a key wins) while its body is stored; drop its older views."""
        packed = await pack_views(sha256, document)
        if packed is None:
            return
        now = self.clock()

        def put(conn: sqlite3.Connection) -> None:
            conn.execute(_PUT, (sha256, version, packed.codec, packed.size, now, packed.data, sha256))
            conn.execute("DELETE FROM body_views WHERE sha256 = ? AND version < ?", (sha256, version))

        await self._write(put, durable=False)
