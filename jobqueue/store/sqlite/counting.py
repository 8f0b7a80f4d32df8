"""SQLite's count of the jobs a filter matches, by status, reading a bounded number of rows.

A filter one index serves (`status`, `batch`, `crawl`, `host`, `error`, an `http_status` code, with or without
`since`/`until`) counts its matches through that index, at most cap+1 of them. A filter that needs the bounded
walk (filters.py: `tag`, `url`, an `http_status` class, two indexed filters) reads the newest cap+1 rows of its
seq range and counts those that match: exact when that range holds at most `cap` rows. `q` counts the newest
cap+1 full-text hits, joined to their results and jobs as its listing joins them. Past `cap` the answer is None:
counting more would read more rows than a listing does.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING

from jobqueue.filters import seconds
from jobqueue.models import STATUSES
from jobqueue.store.base import TaskFilter
from jobqueue.store.sqlite.filters import clauses, needs_walk, seq_bounds
from jobqueue.store.sqlite.text import fts_query, matched
from jobqueue.store.sqlite.thread import T

_BY_STATUS = ", ".join(f"SUM(m AND status = '{s}')" for s in STATUSES)


def count_rows(conn: sqlite3.Connection, where: TaskFilter, cap: int) -> dict[str, int] | None:
    """The jobs matching `where` by status, or None when more than `cap` rows would have to be read."""
    if where.q is not None:
        return _count_words(conn, where, cap)
    match, args = clauses(where)
    ranged: list[str] = []
    low, high = seq_bounds(conn, where)
    if low is not None:
        ranged.append("jobs.seq >= ?")
        args.append(low)
    if high is not None:
        ranged.append("jobs.seq <= ?")
        args.append(high)
    if needs_walk(where):  # the newest cap+1 rows of the range, each told whether it matches
        inner = (f"SELECT jobs.status AS status, ({' AND '.join(match)}) AS m FROM jobs{_where(ranged)}"
                 " ORDER BY jobs.seq DESC LIMIT ?")
    else:  # at most cap+1 matches, found through the filter's index
        inner = f"SELECT jobs.status AS status, 1 AS m FROM jobs{_where(match + ranged)} LIMIT ?"
    return _tally(conn.execute(f"SELECT COUNT(*), {_BY_STATUS} FROM ({inner})", (*args, cap + 1)).fetchone(), cap)


def _where(terms: list[str]) -> str:
    return f" WHERE {' AND '.join(terms)}" if terms else ""


def _count_words(conn: sqlite3.Connection, where: TaskFilter, cap: int) -> dict[str, int] | None:
    """A `q` filter: the newest cap+1 full-text hits whose result is still stored and whose job matches the rest."""
    terms, args = clauses(where)
    for bound, op in ((where.since, ">="), (where.until, "<=")):
        if bound is not None:
            terms.append(f"jobs.created_at {op} ?")
            args.append(seconds(bound))
    match = " AND ".join(["jobs.id IS NOT NULL", *terms])
    rows = matched(
        conn, f"SELECT COUNT(*), {_BY_STATUS} FROM (SELECT jobs.status AS status, ({match}) AS m"
        " FROM (SELECT rowid FROM results_fts WHERE results_fts MATCH ? ORDER BY rowid DESC LIMIT ?) AS hits"
        " LEFT JOIN results ON results.seq = hits.rowid LEFT JOIN jobs ON jobs.id = results.job_id)",
        (*args, fts_query(where.q or ""), cap + 1))
    return _tally(rows[0] if rows else (0, *(0 for _ in STATUSES)), cap)


def _tally(row: sqlite3.Row | tuple[int, ...], cap: int) -> dict[str, int] | None:
    """Counts by status from (rows read, one sum per status); None when more than `cap` rows were read."""
    if row[0] > cap:
        return None
    return {status: int(n or 0) for status, n in zip(STATUSES, row[1:], strict=True)}


class SQLiteCountOps:
    """count_matching of SQLiteStore."""

    if TYPE_CHECKING:  # provided by SQLiteStore
        async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T: ...

    async def count_matching(self, where: TaskFilter, cap: int) -> dict[str, int] | None:
        """How many jobs a filter matches, by status, reading at most about `cap` rows (None past that)."""
        return await self._read(lambda conn: count_rows(conn, where, cap))
