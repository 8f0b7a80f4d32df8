"""History, storage figures and retention on SQLite: a URL's results, the running totals, deletion in steps.

Retention deletes finished jobs a small batch per transaction (never a long write): their results go
with them, and a body only with its last result (sqlite_bodies' triggers), and a sealed batch finished
before the cutoff with its last job. Once every expired job is gone, so are webhook deliveries delivered
or failed for good and url.changed records made before the cutoff, again a small batch per
transaction, walked in the order they were made (pending deliveries stay whatever their age). The space is given back to
the file system by `PRAGMA incremental_vacuum` steps: new databases are made with
`auto_vacuum=INCREMENTAL`; an older file up to VACUUM_AT_OPEN_PAGES is converted (VACUUM) when opened,
a bigger one keeps its size until the documented offline VACUUM (docs/API.md, "Retention") converts it.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from functools import partial
from itertools import takewhile
from typing import TYPE_CHECKING

from jobqueue.history.timeline import HistoryEntry, mark_changes
from jobqueue.models import Page
from jobqueue.store.sqlite.batches import drop_emptied_batches
from jobqueue.store.sqlite.bodies import storage_totals
from jobqueue.store.sqlite.schema import RESULT_COLUMNS, decode_cursor, drop_result, encode_cursor, result_from_row
from jobqueue.store.sqlite.thread import T, is_busy
from jobqueue.webhooks.delivery import DELIVERED
from jobqueue.webhooks.delivery import FAILED as DELIVERY_FAILED

log = logging.getLogger("jobqueue.store")
# What retention deletes beside jobs, once they are older than its cutoff: each table and which of its rows may go
# (pending deliveries stay whatever their age; every url.changed record was relayed when it was written, as its
# deliveries are written in the same transaction)
_RECORDS = (("webhook_deliveries", f"status IN ('{DELIVERED}', '{DELIVERY_FAILED}')"), ("url_changes", "1"))
INCREMENTAL = 2  # PRAGMA auto_vacuum's value for INCREMENTAL
VACUUM_AT_OPEN_PAGES = 2560  # 10 MB of 4 KiB pages: converting a file this small at start takes no time
_RESULTS = ", ".join(f"results.{c.strip()}" for c in RESULT_COLUMNS.split(","))


def use_incremental_vacuum(conn: sqlite3.Connection) -> bool:
    """Make a small file give back freed pages in steps (auto_vacuum=INCREMENTAL); True when it does."""
    if conn.execute("PRAGMA auto_vacuum").fetchone()[0] == INCREMENTAL:
        return True
    if conn.execute("PRAGMA page_count").fetchone()[0] > VACUUM_AT_OPEN_PAGES:
        log.info("this database file frees no space on its own: see Retention in docs/API.md for the one-off VACUUM")
        return False
    try:
        conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
        conn.execute("VACUUM")
    except sqlite3.OperationalError as exc:
        if not is_busy(exc):
            raise
        return False  # another process holds the file: the next start converts it
    return True


class SQLiteHistoryOps:
    """storage_stats, history, purge_finished and vacuum_step of SQLiteStore."""

    if TYPE_CHECKING:  # provided by SQLiteStore
        async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T: ...
        async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T: ...

    async def storage_stats(self) -> dict[str, int]:
        """Results, distinct bodies, their raw bytes and the bytes stored for them (running totals, one row)."""
        return await self._read(storage_totals)

    async def history(self, url: str, limit: int, cursor: str | None) -> Page:
        """The results fetched for a URL, newest first, without bodies, each marked changed or not."""
        before = decode_cursor(cursor)

        def read(conn: sqlite3.Connection) -> list[sqlite3.Row]:
            return conn.execute(
                f"SELECT results.seq AS seq, {_RESULTS}, bodies.sha256 AS body_key FROM results"
                " LEFT JOIN bodies ON bodies.id = results.body_id"
                " WHERE results.url = ? AND results.seq < ? ORDER BY results.seq DESC LIMIT ?",
                (url, before if before is not None else 1 << 62, limit + 1)).fetchall()

        rows = await self._read(read)
        entries: list[HistoryEntry] = mark_changes(
            [(result_from_row(r, False), r["body_key"] or r["sha256"]) for r in rows], limit)
        more = len(rows) > limit
        return Page(entries, encode_cursor(rows[limit - 1]["seq"]) if more else None)

    async def purge_finished(self, finished_before: float, keep_per_url: int, limit: int,
                             resume: tuple[float, int] | None = None) -> tuple[list[str], tuple[float, int] | None]:
        """Delete up to `limit` jobs finished before a time (with their results and unshared bodies), sparing
        the newest `keep_per_url` results of each URL; returns the ids deleted and where to go on (None: done)."""
        after = resume or (float("-inf"), 0)

        def purge(conn: sqlite3.Connection) -> tuple[list[str], tuple[float, int] | None]:
            rows = conn.execute(
                "SELECT jobs.seq AS seq, jobs.id AS id, jobs.finished_at AS finished_at, jobs.batch_id AS batch_id,"
                " results.seq AS result_seq, results.url AS url"
                " FROM jobs INDEXED BY jobs_finished LEFT JOIN results ON results.job_id = jobs.id"
                " WHERE jobs.finished_at < ? AND (jobs.finished_at, jobs.seq) > (?, ?)"
                " AND jobs.status IN ('completed', 'failed', 'cancelled')"
                " ORDER BY jobs.finished_at, jobs.seq LIMIT ?", (finished_before, *after, limit)).fetchall()
            doomed = [r for r in rows if not (keep_per_url and r["result_seq"] is not None and _among_newest(
                conn, r["url"], r["result_seq"], keep_per_url))]
            for row in doomed:
                drop_result(conn, row["id"])
            if doomed:
                conn.execute(f"DELETE FROM jobs WHERE seq IN ({','.join('?' * len(doomed))})",
                             [r["seq"] for r in doomed])
                drop_emptied_batches(conn, {r["batch_id"] for r in doomed if r["batch_id"]}, finished_before)
            more = (rows[-1]["finished_at"], rows[-1]["seq"]) if len(rows) == limit else None
            return [r["id"] for r in doomed], more

        deleted, more = await self._write(purge)
        if more is None:
            await self._purge_records(finished_before, limit)
        return deleted, more

    async def _purge_records(self, before: float, limit: int) -> int:
        """Delete finished webhook deliveries and url.changed records created before `before`, looking at `limit`
        rows per write; the number deleted."""
        purged = 0
        for table, doomed in _RECORDS:
            after: int | None = 0
            while after is not None:
                gone, after = await self._write(
                    partial(_purge_step, table=table, doomed=doomed, before=before, after=after, limit=limit))
                purged += gone
        return purged

    async def vacuum_step(self, pages: int) -> int:
        """Give up to `pages` free pages back to the file system (incremental vacuum); the number still free."""
        def step(conn: sqlite3.Connection) -> int:
            if conn.execute("PRAGMA auto_vacuum").fetchone()[0] != INCREMENTAL:
                return 0
            free = int(conn.execute("PRAGMA freelist_count").fetchone()[0])
            # Python's sqlite3 steps a statement without result columns once, and each step of
            # incremental_vacuum frees one page: so one statement per page
            for _ in range(min(free, pages)):
                conn.execute("PRAGMA incremental_vacuum(1)")
            return int(conn.execute("PRAGMA freelist_count").fetchone()[0])

        return await self._write(step)


def _purge_step(conn: sqlite3.Connection, table: str, doomed: str, before: float, after: int,
                limit: int) -> tuple[int, int | None]:
    """Among the `limit` rows of `table` after seq `after` (seq is the order they were made in), delete those made
    before `before` that `doomed` (SQL) lets go; how many went, and the seq to go on from (None at the first row
    made since, or at the end)."""
    rows = conn.execute(f"SELECT seq, created_at < ? AS old, {doomed} AS doomed FROM {table} WHERE seq > ?"
                        " ORDER BY seq LIMIT ?", (before, after, limit)).fetchall()
    old = list(takewhile(lambda row: row["old"], rows))
    seqs = [row["seq"] for row in old if row["doomed"]]
    if seqs:
        conn.execute(f"DELETE FROM {table} WHERE seq IN ({','.join('?' * len(seqs))})", seqs)
    return len(seqs), old[-1]["seq"] if old and len(old) == limit else None


def _among_newest(conn: sqlite3.Connection, url: str, result_seq: int, keep: int) -> bool:
    """Whether a result is one of the `keep` newest of its URL (results_by_url reads at most `keep` rows)."""
    newer = conn.execute("SELECT COUNT(*) FROM (SELECT 1 FROM results WHERE url = ? AND seq > ? LIMIT ?)",
                         (url, result_seq, keep)).fetchone()[0]
    return newer < keep
