"""SQLite's full-text index of page text (FTS5), and listings by `q` that walk it newest first.

The index is contentless (it keeps the words, not the text) and keyed by the result's seq, which is
never reused; an entry whose result was dropped (a retry, a delete) is skipped when listing, because
every match is joined back to its result. A `q` listing orders by result seq (newest completion
first) and looks at no more than SCAN_CAP matches per request, like the other bounded walks.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING

from jobqueue.filters import seconds, words
from jobqueue.models import Result
from jobqueue.store.base import TaskFilter
from jobqueue.store.sqlite.bodies import BODY_COLUMNS, WITH_BODY
from jobqueue.store.sqlite.filters import SCAN_CAP, clauses
from jobqueue.store.sqlite.schema import RESULT_COLUMNS_JOINED, result_from_row
from jobqueue.store.sqlite.thread import T

CHUNK = 500
INDEX_READ_BYTES = 16 * 1024 * 1024  # about the most of bodies one read for the indexer decompresses
# The index keeps which pages hold a word, not where in them (detail=none): a `q` search asks for every word
# anywhere in the page, never a phrase, and an index without positions costs the writer half the CPU per page
# (0.07 against 0.15 ms for a 20 KB page; 0.8 against 1.3 ms for one of 3,000 varied words). Its pages are
# indexed again after the upgrade, as the background loop indexes any page it has not reached.
V18_WORDS_WITHOUT_POSITIONS = """
DROP TABLE results_fts;
CREATE VIRTUAL TABLE results_fts USING fts5(text, content='', detail=none, tokenize='unicode61 remove_diacritics 2');
UPDATE text_index_state SET indexed_seq = 0;
"""
# CROSS JOIN keeps this order: the matched results by seq first, then their jobs by id. Left to
# itself, the planner may start from a filter's index (every job of a host) and go 100 times slower.
_MATCHED = "results CROSS JOIN jobs ON jobs.id = results.job_id"


def fts_query(text: str) -> str:
    """An FTS5 query that needs every word (quoted, so no word is read as an operator)."""
    return " AND ".join(f'"{w}"' for w in words(text))


def matched(conn: sqlite3.Connection, sql: str, args: tuple[object, ...]) -> list[sqlite3.Row]:
    """The rows of a query that MATCHes the index; none when FTS5 refuses its words: a word Python reads as one
    but the tokenizer splits (a rare Unicode letter) is a phrase, which an index without positions cannot match."""
    try:
        return conn.execute(sql, args).fetchall()
    except sqlite3.OperationalError as exc:
        if str(exc).startswith("fts5:"):
            return []
        raise


def list_by_words(conn: sqlite3.Connection, where: TaskFilter, columns: str, before: int | None, limit: int
                  ) -> tuple[list[sqlite3.Row], int | None]:
    """Rows (`seq` is the result's) of jobs whose page has every word and that match the other filters."""
    terms, args = clauses(where)
    for bound, op in ((where.since, ">="), (where.until, "<=")):
        if bound is not None:
            terms.append(f"jobs.created_at {op} ?")
            args.append(seconds(bound))
    extra = f" AND {' AND '.join(terms)}" if terms else ""
    match = fts_query(where.q or "")
    rows: list[sqlite3.Row] = []
    top = before if before is not None else 1 << 62
    looked = 0
    while len(rows) <= limit:
        hits = [r[0] for r in matched(
            conn, "SELECT rowid FROM results_fts WHERE results_fts MATCH ? AND rowid < ? ORDER BY rowid DESC LIMIT ?",
            (match, top, CHUNK))]
        if not hits:
            return rows, None
        marks = ",".join("?" * len(hits))
        rows += conn.execute(
            f"SELECT results.seq AS seq, {columns} FROM {_MATCHED}"
            f" WHERE results.seq IN ({marks}){extra}"
            " ORDER BY results.seq DESC LIMIT ?", (*hits, *args, limit + 1 - len(rows))).fetchall()
        looked += len(hits)
        top = hits[-1]
        if len(hits) < CHUNK:
            return rows, None
        if looked >= SCAN_CAP and len(rows) <= limit:
            return rows, top
    return rows, None


class SQLiteTextOps:
    """results_to_index and index_texts of SQLiteStore."""

    if TYPE_CHECKING:  # provided by SQLiteStore
        async def _write(self, fn: Callable[[sqlite3.Connection], T], durable: bool = True) -> T: ...
        async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T: ...

    async def results_to_index(self, limit: int) -> list[tuple[int, Result]]:
        """Results stored since the last indexed one, oldest first, with their bodies, in one read of at most
        `limit` results and about INDEX_READ_BYTES of bodies (a read per result cost the IOLoop two thread hand-offs
        and each row's JSON; the bound keeps other reads from waiting long behind it)."""
        def read(conn: sqlite3.Connection) -> list[tuple[int, Result]]:
            done = conn.execute("SELECT indexed_seq FROM text_index_state").fetchone()
            out: list[tuple[int, Result]] = []
            size = 0
            for row in conn.execute(f"SELECT results.seq AS seq, {RESULT_COLUMNS_JOINED}, {BODY_COLUMNS}"
                                    f" FROM {WITH_BODY} WHERE results.seq > ? ORDER BY results.seq LIMIT ?",
                                    (done[0] if done else 0, limit)):
                out.append((row["seq"], result_from_row(row, True)))
                size += row["body_size"] or 0
                if size >= INDEX_READ_BYTES:
                    break
            return out

        return await self._read(read)

    async def index_texts(self, texts: list[tuple[int, str]], through: int) -> None:
        """Add pages' text to the index and remember that every result up to `through` was looked at."""
        def write(conn: sqlite3.Connection) -> None:
            conn.executemany("INSERT INTO results_fts (rowid, text) VALUES (?, ?)", texts)
            conn.execute("UPDATE text_index_state SET indexed_seq = MAX(indexed_seq, ?)", (through,))

        await self._write(write, durable=False)
