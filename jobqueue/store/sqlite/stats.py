"""Live statistics shared by every process on SQLite: one row per slot, to which each process adds its counts.

A row is a slot of `width` seconds from `start`, for the whole service (host '') or one host: its
finished jobs, failures, HTTP errors, the slowest fetch and one column per fetch-time bucket
(`le5` holds fetches of at most 5 ms, ..., `more` those slower than the last bound). Processes add
to a row with an upsert, so the rows hold the service's totals. Every read is of a few rows: at
most a day of minutes for the service, an hour of minutes per host.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from jobqueue.live_stats import BOUNDS_MS, BUCKETS, MINUTE, SERVICE, StatsSlot
from jobqueue.store.sqlite.thread import T

BUCKET_COLUMNS = (*(f"le{bound}" for bound in BOUNDS_MS), "more")
_COUNTS = ("finished", "failed", "http_errors", *BUCKET_COLUMNS)
_SUMS = ", ".join(f"SUM({c})" for c in _COUNTS)
_ADD = (
    f"INSERT INTO stats_slots (width, host, start, max_ms, {', '.join(_COUNTS)})"
    f" VALUES ({', '.join('?' * (4 + len(_COUNTS)))})"
    " ON CONFLICT (width, host, start) DO UPDATE SET max_ms = MAX(max_ms, excluded.max_ms), "
    + ", ".join(f"{c} = {c} + excluded.{c}" for c in _COUNTS)
)
_HOSTS = (
    "WITH top AS (SELECT host, SUM(finished) AS f, COUNT(*) OVER () AS seen FROM stats_slots"
    " WHERE width = ? AND host > ? AND start >= ? GROUP BY host HAVING f > 0 ORDER BY f DESC, host LIMIT ?)"
    f" SELECT top.host, MAX(s.max_ms), {', '.join(f'SUM(s.{c})' for c in _COUNTS)}, top.seen FROM top"
    " JOIN stats_slots s ON s.width = ? AND s.host = top.host AND s.start >= ? GROUP BY top.host"
    " ORDER BY top.f DESC, top.host"
)

# Migration 10. Never edited once released: other bucket bounds would be another migration's columns.
V10_STATS = """
CREATE TABLE stats_slots (
    width INTEGER NOT NULL,
    host TEXT NOT NULL,
    start INTEGER NOT NULL,
    max_ms REAL NOT NULL DEFAULT 0,
    finished INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    http_errors INTEGER NOT NULL DEFAULT 0,
    le5 INTEGER NOT NULL DEFAULT 0, le10 INTEGER NOT NULL DEFAULT 0, le20 INTEGER NOT NULL DEFAULT 0,
    le50 INTEGER NOT NULL DEFAULT 0, le100 INTEGER NOT NULL DEFAULT 0, le200 INTEGER NOT NULL DEFAULT 0,
    le300 INTEGER NOT NULL DEFAULT 0, le500 INTEGER NOT NULL DEFAULT 0, le750 INTEGER NOT NULL DEFAULT 0,
    le1000 INTEGER NOT NULL DEFAULT 0, le1500 INTEGER NOT NULL DEFAULT 0, le2000 INTEGER NOT NULL DEFAULT 0,
    le3000 INTEGER NOT NULL DEFAULT 0, le5000 INTEGER NOT NULL DEFAULT 0, le10000 INTEGER NOT NULL DEFAULT 0,
    le30000 INTEGER NOT NULL DEFAULT 0, le60000 INTEGER NOT NULL DEFAULT 0, le300000 INTEGER NOT NULL DEFAULT 0,
    more INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (width, host, start)
) WITHOUT ROWID;
"""


def _row(slot: StatsSlot) -> tuple[Any, ...]:
    return (slot.width, slot.host, slot.start, slot.max_ms, slot.finished, slot.failed, slot.http_errors,
            *slot.buckets)


def _slot(width: int, host: str, start: int, row: sqlite3.Row | tuple[Any, ...]) -> StatsSlot:
    """A slot from a row of (max_ms, the sums of _COUNTS)."""
    counts = [int(n or 0) for n in row[1:]]
    return StatsSlot(width, start, host, counts[0], counts[1], counts[2], float(row[0] or 0.0), counts[3:3 + BUCKETS])


class SQLiteStatsOps:
    """add_stats, stats_series, stats_hosts and purge_stats of SQLiteStore."""

    if TYPE_CHECKING:  # provided by SQLiteStore
        async def _write(self, fn: Callable[[sqlite3.Connection], T], durable: bool = True) -> T: ...
        async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T: ...

    async def add_stats(self, slots: list[StatsSlot]) -> None:
        """Add each slot's counts to the shared row of its (width, host, start), made on first use."""
        if slots:
            rows = [_row(slot) for slot in slots]
            await self._write(lambda conn: conn.executemany(_ADD, rows) and None, durable=False)

    async def stats_series(self, width: int, since: int, per: int) -> list[StatsSlot]:
        """The whole service's slots of `width` from `since` on, summed into slots of `per` seconds, oldest first."""
        sql = (f"SELECT start - start % ? AS t, MAX(max_ms), {_SUMS} FROM stats_slots"
               " WHERE width = ? AND host = ? AND start >= ? GROUP BY t ORDER BY t")
        rows = await self._read(lambda conn: conn.execute(sql, (per, width, SERVICE, since)).fetchall())
        return [_slot(per, SERVICE, int(r[0]), tuple(r)[1:]) for r in rows]

    async def stats_hosts(self, since: int, limit: int) -> tuple[list[StatsSlot], int]:
        """The `limit` hosts that finished the most jobs from `since` on (minute slots), with their totals, and
        how many hosts finished any. The busiest are found by one column first: summing every column of every
        host took twice as long (60,000 host minutes: 35 ms instead of 72)."""
        rows = await self._read(lambda conn: conn.execute(_HOSTS, (MINUTE, SERVICE, since, limit, MINUTE, since))
                                .fetchall())
        hosts = [_slot(MINUTE, r[0], since, tuple(r)[1:-1]) for r in rows]
        return hosts, int(rows[0][-1]) if rows else 0

    async def purge_stats(self, width: int, hosts: bool, before: int) -> int:
        """Delete the slots of `width` (the hosts' or the service's) that start before `before`; how many went."""
        sql = f"DELETE FROM stats_slots WHERE width = ? AND host {'>' if hosts else '='} ? AND start < ?"
        return await self._write(lambda conn: conn.execute(sql, (width, SERVICE, before)).rowcount)
