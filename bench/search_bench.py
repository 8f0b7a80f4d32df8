"""Finding and acting on many at scale: a host filter, a full-text query and a bulk retry among 1,000,000 jobs.

The database is written directly (as bench/run.py's big-queue measure does): 800,000 queued jobs over
100 hosts (not due, so nothing is fetched), 100,000 failed ones, and 100,000 completed ones whose
small pages are already in the full-text index. Then a server answers `?host=` and `?q=` listings,
and retries every failed job with one `POST /queue_tasks/bulk`, while /metrics reports the longest
IOLoop stall.
"""

from __future__ import annotations

import os
import re
import sqlite3
import tempfile
import time
from typing import Any

from bench.harness import API, Client, Server, pct
from jobqueue.models import TaskIds
from jobqueue.store.sqlite.migrations import migrate

HOSTS = 100


def fill(db: str, size: int) -> float:
    """size jobs: 80 % queued (not due), 10 % failed, 10 % completed with an indexed page."""
    started = time.perf_counter()
    conn = sqlite3.connect(db, isolation_level=None)
    migrate(conn)
    ids, now = TaskIds(), time.time()
    later = now + 86400
    tenth = size // 10
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO jobs (id, url, host, status, attempts, created_at, updated_at, available_at, error_code,"
        " error_message, finished_at) VALUES (?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?)",
        ((ids.new(now), f"http://127.0.0.1:9/{i}", f"h{i % HOSTS}.example",
          "failed" if i % 10 == 1 else "completed" if i % 10 == 2 else "queued", now, now, later,
          "timeout" if i % 10 == 1 else None, "slow" if i % 10 == 1 else None,
          now if i % 10 in (1, 2) else None) for i in range(size)))
    conn.execute("INSERT INTO results (job_id, url, final_url, http_status, headers, content_type, encoding,"
                 " size, truncated, elapsed_ms, fetched_at, sha256, redirects, timings, body)"
                 " SELECT id, url, url, 200, '{}', 'text/plain', 'utf-8', 20, 0, 1.0, finished_at, '', '[]', '{}',"
                 " 'page ' || seq FROM jobs WHERE status = 'completed'")
    conn.execute("INSERT INTO results_fts (rowid, text) SELECT seq, 'common word' || (seq % 1000) || ' page' "
                 "FROM results")
    conn.execute("UPDATE text_index_state SET indexed_seq = (SELECT MAX(seq) FROM results)")
    for status, n in (("queued", size - 2 * tenth), ("failed", tenth), ("completed", tenth)):
        conn.execute("UPDATE counts SET n = n + ? WHERE status = ?", (n, status))
    conn.execute("COMMIT")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.close()
    return time.perf_counter() - started


async def measure_search(size: int, requests: int) -> dict[str, Any]:
    """p50/p99 of host and q listings, then the time and longest IOLoop stall of a bulk retry of the failed."""
    with tempfile.TemporaryDirectory() as tmp:
        db = os.path.join(tmp, "search.db")
        fill_s = fill(db, size)
        # retried jobs go to a closed local port (host names are labels only): nothing leaves the machine
        server = Server(db, "--workers", "2", "--per-host", "1", "--fetch-timeout", "1").start()
        client = Client(server.base, connections=1)
        try:
            times: dict[str, list[float]] = {"host": [], "q": [], "q_rare_and_host": []}
            for i in range(requests):
                for key, query in (("host", f"host=h{i % HOSTS}.example&limit=50"),
                                   ("q", f"q=common%20word{i % 1000}&limit=50"),
                                   ("q_rare_and_host", f"q=word{i % 1000}&host=h{(i + 1) % HOSTS}.example")):
                    started = time.perf_counter()
                    code, body = await client.call("GET", f"{API}/queue_tasks?{query}")
                    assert code == 200, body
                    times[key].append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            code, body = await client.call("POST", f"{API}/queue_tasks/bulk",
                                           {"action": "retry", "filter": {"status": "failed"}})
            bulk_s = time.perf_counter() - started
            assert code == 200 and body["changed"] == size // 10, body
            metrics = (await client.http.fetch(server.base + "/metrics")).body.decode()
            stall = float(re.search(r"^jobqueue_event_loop_lag_max_seconds (\S+)$", metrics, re.M).group(1))
        finally:
            client.close()
            server.stop()
    out: dict[str, Any] = {"jobs": size, "fill_s": round(fill_s, 1), "bulk_retry_jobs": size // 10,
                           "bulk_retry_s": round(bulk_s, 2), "longest_ioloop_stall_ms": round(stall * 1000, 1)}
    for key, values in times.items():
        out[f"{key}_p50_ms"] = round(pct(values, 50), 2)
        out[f"{key}_p99_ms"] = round(pct(values, 99), 2)
    return out
