"""What one job makes SQLite execute: every statement, trigger program and trigger statement the writer
connection runs per submission, claim, completion and text indexing, counted on a real SQLiteStore.

`python3 dev.py bench statements [--jobs N] [--group G] [--verbose]` submits N jobs in POSTs of 1,000
(as the bench does), claims them G at a time with the host slots of the previous round freed in the same
claim (as the worker pool does), completes each claim as one `complete_many` group with real 20 KB HTML
results (a hundred distinct bodies, as the bench's pages), and indexes their text as the background
indexer does. The writer connection is traced with SQLite's own `sqlite3_trace_v2`, which names each
trigger program it enters ("-- TRIGGER name") and each trigger statement it runs; where that hook cannot
be reached (another CPython layout), Python's `set_trace_callback` counts the top-level statements only.
Then each statement text is EXPLAINed to name the tables and indexes it (or a trigger it fires) writes.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import ctypes.util
import hashlib
import os
import re
import sqlite3
import sys
import tempfile
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from jobqueue.models import Result, TaskIds  # noqa: E402
from jobqueue.store.base import Lease, NewTask  # noqa: E402
from jobqueue.store.sqlite.store import SQLiteStore  # noqa: E402
from jobqueue.text_index import index_round  # noqa: E402
from jobqueue.webhooks.outbox import Outbox  # noqa: E402

HOST = "127.0.0.1"
PAGES = 100
KINDS = ("submit", "claim", "complete", "index text")
_TRACE_STMT = 1  # SQLITE_TRACE_STMT
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)


class Tracer:
    """Counts what the writer connection executes, by kind of work, by statement text."""

    def __init__(self) -> None:
        self.kind = "open"
        self.seen: dict[str, Counter[str]] = defaultdict(Counter)
        self.native = False
        self._keep: Any = None  # the C callback must outlive the connection's use of it

    def record(self, text: str) -> None:
        """One trace event: a statement, a trigger program ("-- TRIGGER x") or a trigger statement ("-- ...")."""
        self.seen[self.kind][" ".join(text.split())] += 1

    def attach(self, conn: sqlite3.Connection, path: str) -> None:
        """Trace `conn` natively when its sqlite3* handle can be found and proven (its file is `path`)."""
        try:
            lib = ctypes.CDLL(ctypes.util.find_library("sqlite3") or "libsqlite3.so.0")
            lib.sqlite3_db_filename.restype = ctypes.c_char_p
            lib.sqlite3_db_filename.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
            # CPython's pysqlite_Connection starts with PyObject_HEAD, then the sqlite3* handle
            handle = ctypes.c_void_p.from_address(id(conn) + object.__basicsize__).value
            named = lib.sqlite3_db_filename(handle, b"main") if handle else None
            if named is None or os.path.realpath(named.decode()) != os.path.realpath(path):
                raise OSError("the connection's handle is not where it was expected")
        except OSError:
            conn.set_trace_callback(self.record)
            return

        def on_statement(_mask: int, _context: Any, _statement: Any, text: Any) -> int:
            self.record(ctypes.c_char_p(text).value.decode(errors="replace"))
            return 0

        self._keep = _CALLBACK(on_statement)
        lib.sqlite3_trace_v2.argtypes = [ctypes.c_void_p, ctypes.c_uint, _CALLBACK, ctypes.c_void_p]
        lib.sqlite3_trace_v2(handle, _TRACE_STMT, self._keep, None)
        self.native = True


def page(i: int) -> bytes:
    """The bench target's page i (20 KB of HTML; a hundred distinct ones)."""
    head = f"<!doctype html><meta charset=utf-8><title>page {i % PAGES}</title><p>"
    filler = f"lorem ipsum dolor sit amet {i % PAGES} " * 1024
    return ((head + filler)[: 20 * 1024 - 5] + "</p>\n").encode()


def result_for(task_id: str, url: str, i: int) -> Result:
    """A result as a worker makes it from a 200 response of the bench's target."""
    body = page(i)
    return Result(id=task_id, url=url, final_url=url, http_status=200,
                  headers={"content-type": "text/html", "content-length": str(len(body)), "server": "nginx"},
                  content_type="text/html", encoding="utf-8", encoding_source="meta", size=len(body),
                  truncated=False, elapsed_ms=1.0, fetched_at=1.0, sha256=hashlib.sha256(body).hexdigest(),
                  body=body)


async def run_jobs(store: SQLiteStore, tracer: Tracer, jobs: int, group: int) -> None:
    """Submit, claim, complete and index `jobs` jobs, each kind of work traced under its own name."""
    ids = TaskIds()
    tracer.kind = "submit"
    for start in range(0, jobs, 1000):
        await store.add([NewTask(ids.new(), f"http://{HOST}/p{i % PAGES}.html?n={i}", HOST)
                         for i in range(start, min(jobs, start + 1000))])
    ended: list[Lease] = []
    done = 0
    while done < jobs:
        tracer.kind = "claim"
        claimed = await store.claim(group, 30.0, [], group, ended)
        if not claimed:
            raise RuntimeError(f"nothing to claim after {done} of {jobs} jobs")
        tracer.kind = "complete"
        leases = [Lease(task.id, task.lease_token or "") for task in claimed]
        numbers = [int(task.url.rsplit("=", 1)[1]) for task in claimed]
        pairs = zip(leases, claimed, numbers, strict=True)
        outcomes = await store.complete_many([(lease, result_for(task.id, task.url, n)) for lease, task, n in pairs],
                                             digests_checked=True)
        if any(not hasattr(outcome, "status") for outcome in outcomes):
            raise RuntimeError(f"a completion was refused: {outcomes}")
        ended, done = leases, done + len(claimed)
    tracer.kind = "claim"  # the last round's slots, freed by the next claim
    await store.claim(0, 30.0, [], group, ended)
    tracer.kind = "index text"
    while await index_round(store):
        pass
    tracer.kind = "done"


def writes_of(conn: sqlite3.Connection, sql: str) -> set[str]:
    """The tables and indexes a statement (with the triggers it may fire) opens for writing, from its bytecode."""
    names = {root: name for name, root in conn.execute("SELECT name, rootpage FROM sqlite_master WHERE rootpage > 0")}
    try:
        program = conn.execute(f"EXPLAIN {sql}", [None] * sql.count("?")).fetchall()
    except sqlite3.Error:
        return set()
    return {names.get(row[3], f"page {row[3]}") for row in program if row[1] == "OpenWrite"}


def report(tracer: Tracer, path: str, jobs: int, group: int, verbose: bool) -> str:
    """The per-job table, the triggers and indexes behind it, and (verbose) every statement text."""
    how = "sqlite3_trace_v2, trigger programs named" if tracer.native else "set_trace_callback, top level only"
    lines = [f"{jobs} jobs, completions and claims in groups of {group}; per job (trace: {how})", "",
             "| kind | statements | of them transaction control | trigger programs entered "
             "| nested statements (triggers, FTS5) |", "|---|---:|---:|---:|---:|"]
    control = re.compile(r"^(BEGIN|COMMIT|ROLLBACK|SAVEPOINT|RELEASE)\b", re.I)
    for kind in KINDS:
        seen = tracer.seen.get(kind, Counter())
        top = sum(n for text, n in seen.items() if not text.startswith("--"))
        tx = sum(n for text, n in seen.items() if control.match(text))
        programs = sum(n for text, n in seen.items() if text.startswith("-- TRIGGER "))
        inner = sum(n for text, n in seen.items() if text.startswith("--") and not text.startswith("-- TRIGGER "))
        lines.append(f"| {kind} | {top / jobs:.2f} | {tx / jobs:.2f} | {programs / jobs:.2f} | {inner / jobs:.2f} |")
    conn = sqlite3.connect(path)
    try:
        lines += ["", "Triggers entered, per job (a trigger whose WHEN is false is entered and does nothing):"]
        for kind in KINDS:
            fired = sorted(((n, text[11:]) for text, n in tracer.seen.get(kind, Counter()).items()
                            if text.startswith("-- TRIGGER ")), reverse=True)
            lines.append(f"- {kind}: " + (", ".join(f"{name} {n / jobs:.2f}" for n, name in fired) or "none"))
        lines += ["", "Tables and indexes written, per kind (from each statement's bytecode, its triggers included):"]
        for kind in KINDS:
            written: set[str] = set()
            for text in tracer.seen.get(kind, Counter()):
                if not text.startswith("--") and not re.match(r"^(SELECT|BEGIN|COMMIT|SAVEPOINT|RELEASE)", text, re.I):
                    written |= writes_of(conn, text)
            lines.append(f"- {kind} ({len(written)}): {', '.join(sorted(written))}")
        lines += ["", "Indexes and triggers of those tables (every INSERT or DELETE writes each index; an UPDATE "
                  "writes those on the columns it changes):"]
        for table in ("jobs", "results", "bodies", "body_refs", "counts", "job_changes", "slots", "storage_totals"):
            found = conn.execute("SELECT type, name FROM sqlite_master WHERE tbl_name = ?"
                                 " AND type IN ('index', 'trigger') ORDER BY type, name", (table,)).fetchall()
            indexes = [name for kind, name in found if kind == "index"]
            triggers = [name for kind, name in found if kind == "trigger"]
            lines.append(f"- {table}: {len(indexes)} indexes ({', '.join(indexes) or '-'}); "
                         f"triggers {', '.join(triggers) or '-'}")
        if verbose:
            for kind in KINDS:
                lines += ["", f"{kind}: every text executed, times per job"]
                for text, n in tracer.seen.get(kind, Counter()).most_common():
                    lines.append(f"  {n / jobs:7.3f}  {text[:150]}")
    finally:
        conn.close()
    return "\n".join(lines)


async def measure(jobs: int, group: int, verbose: bool, printer: Callable[[str], None] = print) -> None:
    """Run the jobs on a fresh file with the server's settings (synchronous=FULL, an outbox), print the counts."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "statements.db")
        store = SQLiteStore(path, outbox=Outbox(), url_changed=lambda _task, _previous: None)
        await store.open()
        tracer = Tracer()
        assert store._writer is not None
        tracer.attach(store._writer._conn, path)
        try:
            await run_jobs(store, tracer, jobs, group)
        finally:
            await store.close()
        printer(report(tracer, path, jobs, group, verbose))


def run(argv: list[str]) -> None:
    """`python3 dev.py bench statements`: parse the options and print the table."""
    parser = argparse.ArgumentParser(prog="dev.py bench statements", description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--group", type=int, default=32, help="jobs per claim and per completion group")
    parser.add_argument("--verbose", action="store_true", help="also list every statement text")
    args = parser.parse_args(argv)
    asyncio.run(measure(args.jobs, args.group, args.verbose))


if __name__ == "__main__":
    run(sys.argv[1:])
