"""SQLite listings by filter: the SQL of each filter, and a bounded walk for filters no index serves.

`status`, `batch`, `crawl`, `host`, `error` and an `http_status` code have an index ordered by `seq` (newest first);
`since`/`until` become a `seq` range through the `created_at` index. `tag`, `url` (substring), an
`http_status` class (`4xx`) and two
or more indexed filters at once may need to look at many rows per match, so those listings walk the
table newest first in windows of WINDOW rows and stop after SCAN_CAP rows: a page may then hold
fewer items than asked, with a `next` cursor that goes on from where the walk stopped. So no request
reads more than SCAN_CAP rows, however rare the match.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from jobqueue.filters import http_range, seconds, url_forms
from jobqueue.store.base import TaskFilter

WINDOW = 20_000
SCAN_CAP = 200_000
_INDEXED = ("status", "batch", "crawl", "host", "error", "http_status")
_COLUMN = {"status": "status", "batch": "batch_id", "crawl": "crawl_id", "host": "host", "error": "error_code"}


def clauses(where: TaskFilter, table: str = "jobs") -> tuple[list[str], list[Any]]:
    """The WHERE terms of a filter over a jobs table (named `table` in the query); `q` is not handled here."""
    out: list[str] = []
    args: list[Any] = []
    for name, column in _COLUMN.items():
        value = getattr(where, name)
        if value is not None:
            out.append(f"{table}.{column} = ?")
            args.append(value)
    if where.http_status is not None:
        low, high = http_range(where.http_status)
        out.append(f"{table}.http_status BETWEEN ? AND ?")
        args += [low, high]
    if where.tag is not None:
        out.append(f"{table}.tags LIKE ? ESCAPE '\\'")
        args.append(f'%"{_escape(where.tag)}"%')
    if where.url is not None:
        forms = url_forms(where.url)
        out.append("(" + " OR ".join([f"instr(lower({table}.url), ?) > 0"] * len(forms)) + ")")
        args += forms
    return out, args


def seq_bounds(conn: sqlite3.Connection, where: TaskFilter) -> tuple[int | None, int | None]:
    """`since`/`until` on created_at as a range of seq (jobs are numbered in the order they were created)."""
    low = high = None
    if where.since is not None:
        row = conn.execute("SELECT MIN(seq) FROM jobs WHERE created_at >= ?", (seconds(where.since),)).fetchone()
        low = row[0] if row[0] is not None else 1 << 62
    if where.until is not None:
        row = conn.execute("SELECT MAX(seq) FROM jobs WHERE created_at <= ?", (seconds(where.until),)).fetchone()
        high = row[0] if row[0] is not None else 0
    return low, high


def needs_walk(where: TaskFilter) -> bool:
    """Whether a filter could read many rows per match without the windowed walk."""
    indexed = sum(getattr(where, name) is not None for name in _INDEXED)
    a_class = where.http_status is not None and where.http_status.endswith("xx")  # a range: not in seq order
    return where.tag is not None or where.url is not None or where.q is not None or indexed > 1 or a_class


RESULTS = ("results JOIN jobs ON jobs.id = results.job_id", "results")


def list_rows(conn: sqlite3.Connection, where: TaskFilter, columns: str, before: int | None, limit: int,
              source: tuple[str, str] = ("jobs", "jobs")) -> tuple[list[sqlite3.Row], int | None]:
    """Up to limit+1 rows newest first, and the seq to resume from when a bounded walk stopped early.

    `source` is the FROM clause and the table whose seq orders the listing: jobs, or RESULTS (results
    newest first, filtered by their jobs' fields).
    """
    origin, table = source
    terms, args = clauses(where)
    low, high = seq_bounds(conn, where)
    on_jobs = table == "jobs"
    if high is not None:
        if on_jobs:
            before = min(before, high + 1) if before is not None else high + 1
        else:
            terms.append("jobs.seq <= ?")
            args.append(high)
    if low is not None:
        terms.append("jobs.seq >= ?")
        args.append(low)
    if not terms or (on_jobs and not needs_walk(where)):
        if before is not None:
            terms.append(f"{table}.seq < ?")
            args.append(before)
        sql = (f"SELECT {table}.seq, {columns} FROM {origin} {'WHERE ' + ' AND '.join(terms) if terms else ''}"
               f" ORDER BY {table}.seq DESC LIMIT ?")
        return conn.execute(sql, (*args, limit + 1)).fetchall(), None
    top = before if before is not None else (conn.execute(f"SELECT MAX(seq) FROM {table}").fetchone()[0] or 0) + 1
    floor = low if low is not None and on_jobs else 1
    rows: list[sqlite3.Row] = []
    scanned = 0
    sql = (f"SELECT {table}.seq, {columns} FROM {origin} WHERE {table}.seq < ? AND {table}.seq >= ? AND "
           f"{' AND '.join(terms)} ORDER BY {table}.seq DESC LIMIT ?")
    while top > floor and len(rows) <= limit:
        if scanned >= SCAN_CAP:
            return rows, top  # a short page: the cursor goes on from here
        bottom = max(floor, top - WINDOW)
        rows += conn.execute(sql, (top, bottom, *args, limit + 1 - len(rows))).fetchall()
        scanned += top - bottom
        top = bottom
    return rows, None


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
