"""Claim latency under per-host pacing (SQLite): the time a claim holds the write lock (its statements, between
BEGIN IMMEDIATE and COMMIT; the COMMIT's own time, a disk flush, is given apart) on a file filled straight with
queued jobs, each claim freeing the host slots of the one before (as the workers' next claim frees those of the
fetches that ended).

- `many_hosts`: `queued` jobs over `hosts` hosts, every host paced by `--host-delay` (each start blocks its host
  for a second), claims of 32 with `--per-host 4`.
- `one_paced_host`: `backlog` jobs of one host with `min_delay_ms` 1000, older than every other job (first in the
  claim order), and `others` jobs over 1,000 other hosts that must flow past it.

Run alone: `python3 -m bench.claims_bench [--queued N] [--hosts N] [--backlog N] [--claims N]`.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sqlite3
import sys
import tempfile
import time
from typing import Any

from jobqueue.models import TaskIds
from jobqueue.store.base import Lease
from jobqueue.store.sqlite import host_scan, slots
from jobqueue.store.sqlite.claims import Claim
from jobqueue.store.sqlite.migrations import migrate

LIMIT = 32
PER_HOST = 4


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def fill(path: str, jobs: list[str], now: float) -> float:
    """Write one queued job per host name given, due now, oldest first in the order given."""
    started = time.perf_counter()
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn)
    conn.execute("PRAGMA journal_mode=WAL")
    ids = TaskIds()
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO jobs (id, url, host, status, attempts, created_at, updated_at, available_at)"
        " VALUES (?, ?, ?, 'queued', 0, ?, ?, ?)",
        ((ids.new(now), f"https://{host}/{i}", host, now, now, now - 86400 + i * 1e-3) for i, host in
         enumerate(jobs)))
    conn.execute("UPDATE counts SET n = n + ? WHERE status = 'queued'", (len(jobs),))
    conn.execute("COMMIT")
    conn.close()
    return time.perf_counter() - started


def claims(path: str, count: int, host_delay: float) -> dict[str, Any]:
    """Time `count` claims in a row on the file; what they took and how many jobs of each kind."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.row_factory = sqlite3.Row
    cursor = host_scan.Cursor()
    times: list[float] = []
    commits: list[float] = []
    taken: dict[str, int] = {}
    ended: list[Lease] = []
    for _ in range(count):
        now = time.time()
        token = secrets.token_hex(8)
        conn.execute("BEGIN IMMEDIATE")
        started = time.perf_counter()
        slots.free(conn, slots.HOST, ended)
        rows = Claim(token, now, now + 600, cursor).take(conn, LIMIT, [], PER_HOST, host_delay)
        done = time.perf_counter()
        conn.execute("COMMIT")
        times.append((done - started) * 1000)
        commits.append((time.perf_counter() - done) * 1000)
        ended = [Lease(row["id"], token) for row in rows]
        for row in rows:
            kind = "paced" if row["host"] == "paced.example" else "other"
            taken[kind] = taken.get(kind, 0) + 1
    conn.close()
    return {"claims": count, "claim_p50_ms": round(_pct(times, 50), 3), "claim_p99_ms": round(_pct(times, 99), 3),
            "claim_max_ms": round(max(times), 3), "commit_p50_ms": round(_pct(commits, 50), 3),
            "jobs_taken": taken}


def measure_claims(queued: int, hosts: int, backlog: int, count: int) -> dict[str, Any]:
    """Both cases, each on a fresh file."""
    report: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        now = time.time()
        path = os.path.join(tmp, "many.db")
        names = [f"h{n:05d}.example" for n in range(hosts)]
        fill_s = fill(path, [names[i % hosts] for i in range(queued)], now)
        report["many_hosts"] = {"queued": queued, "hosts": hosts, "host_delay_s": 1.0, "fill_s": round(fill_s, 1),
                                **claims(path, count, 1.0)}
        os.remove(path)
        path = os.path.join(tmp, "paced.db")
        others = [f"o{n:04d}.example" for n in range(1000)]
        fill_s = fill(path, ["paced.example"] * backlog + [others[i % 1000] for i in range(10 * 1000)], now)
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("INSERT INTO hosts (host, min_delay_ms) VALUES ('paced.example', 1000)")
        conn.close()
        report["one_paced_host"] = {"queued": backlog + 10_000, "paced_backlog": backlog, "other_hosts": 1000,
                                    "fill_s": round(fill_s, 1), **claims(path, count, 0.0)}
    return report


def main(argv: list[str]) -> None:
    """Run both cases and print the figures as JSON."""
    parser = argparse.ArgumentParser(prog="bench.claims_bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queued", type=int, default=1_000_000)
    parser.add_argument("--hosts", type=int, default=10_000)
    parser.add_argument("--backlog", type=int, default=100_000)
    parser.add_argument("--claims", type=int, default=300)
    args = parser.parse_args(argv)
    print(json.dumps(measure_claims(args.queued, args.hosts, args.backlog, args.claims), indent=2))


if __name__ == "__main__":
    main(sys.argv[1:])
