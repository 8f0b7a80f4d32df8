"""Storage: 20,000 fetches of 1,000 distinct 20 KB HTML pages, stored bytes against raw bytes, and the
end-to-end throughput against the release that stored every body raw.

    .venv/bin/python -m bench.storage_bench [--jobs 20000] [--pages 1000] [--json out.json]

The pages are text of a realistic vocabulary (not one repeated phrase, which would flatter zstd). The
same workload runs on today's code and on RAW_BASE (the last commit before content-addressed bodies,
unpacked with `git archive`), each server in its own process on a fresh SQLite file, one batch of
`jobs` URLs (page n % pages, made distinct by ?n=). Throughput is jobs / seconds from the POST until
the last completion.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.harness import API, WORKERS, Client  # noqa: E402

RAW_BASE = "11e0129"  # the last commit that stored each body raw in its results row
PAGE_BYTES = 20 * 1024
TARGET = """
import random, sys, tornado.web, tornado.ioloop
words = sys.argv[3].split()
def page(i):
    rnd = random.Random(i)
    out = [f"<!doctype html><meta charset=utf-8><title>page {i}</title><article>"]
    size = len(out[0])
    while size < PAGE_BYTES - 20:
        p = "<p>" + " ".join(rnd.choice(words) for _ in range(rnd.randint(8, 40))) + "</p>\\n"
        out.append(p)
        size += len(p)
    return ("".join(out)[: PAGE_BYTES - 11] + "</article>\\n").encode()
pages = [page(i) for i in range(int(sys.argv[2]))]
class Page(tornado.web.RequestHandler):
    def get(self, i):
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.write(pages[int(i) % len(pages)])
tornado.web.Application([(r"/p(\\d+)\\.html", Page)]).listen(int(sys.argv[1]), "127.0.0.1")
print("ready", flush=True)
tornado.ioloop.IOLoop.current().start()
""".replace("PAGE_BYTES", str(PAGE_BYTES))


def vocabulary() -> str:
    """A few thousand plausible words (stable across runs)."""
    rnd = random.Random(7)
    letters = "etaoinshrdlucmfwypvbgkjqxz"
    weights = [12, 9, 8, 7, 7, 6, 6, 6, 6, 4, 4, 3, 3, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1]
    return " ".join("".join(rnd.choices(letters, weights, k=rnd.randint(2, 10))) for _ in range(3000))


def start_process(argv: list[str], cwd: str, ready: str) -> tuple[subprocess.Popen[bytes], str]:
    """A child process and the first line it prints that matches `ready`."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=cwd)
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    if not re.search(ready, line):
        proc.kill()
        raise RuntimeError(f"{argv[1]} did not start: {line!r}")
    return proc, line


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def raw_tree(tmp: str) -> str | None:
    """RAW_BASE unpacked into tmp (None when this is not a git checkout)."""
    tree = os.path.join(tmp, "raw-release")
    os.makedirs(tree)
    archive = subprocess.run(["git", "-C", ROOT, "archive", RAW_BASE], capture_output=True)
    if archive.returncode != 0:
        return None
    subprocess.run(["tar", "-x", "-C", tree], input=archive.stdout, check=True)
    return tree


async def run_once(tree: str, db: str, target_port: int, jobs: int, pages: int) -> dict[str, Any]:
    """One server from `tree` fetches `jobs` URLs; throughput and what it stored."""
    server, line = start_process(
        [sys.executable, os.path.join(tree, "server.py"), "--port", "0", "--database", f"sqlite:///{db}",
         "--allow-private-addresses", "--rate-limit", "0", "--per-host", str(WORKERS), "--workers", str(WORKERS),
         "--log-level", "warning", "--max-queued", str(jobs * 2),
         *(["--processes", "1"] if tree == ROOT else [])], tree, r"http://127\.0\.0\.1:\d+/")
    port = int(re.search(r"http://127\.0\.0\.1:(\d+)/", line).group(1))  # type: ignore[union-attr]
    client = Client(f"http://127.0.0.1:{port}")
    try:
        urls = "\n".join(f"http://127.0.0.1:{target_port}/p{n % pages}.html?n={n}" for n in range(jobs))
        started = time.perf_counter()
        code, answer = await client.post_text(f"{API}/batches", urls)
        assert code == 201, answer
        while True:
            _code, listing = await client.call("GET", f"{API}/queue_tasks?limit=1")
            counts = listing["counts"]
            if counts["completed"] + counts["failed"] >= jobs:
                break
            await asyncio.sleep(0.05)
        elapsed = time.perf_counter() - started
    finally:
        client.close()
        stop(server)
    return {"jobs": jobs, "failed": counts["failed"], "seconds": round(elapsed, 2),
            "jobs_per_s": round(jobs / elapsed, 1), "file_bytes": file_bytes(db), **stored(db)}


def stored(db: str) -> dict[str, Any]:
    """The storage figures, read from the file (the totals GET /stats/storage serves, or the raw bodies)."""
    conn = sqlite3.connect(db)
    try:
        row = conn.execute("SELECT results, distinct_bodies, body_bytes, stored_bytes FROM storage_totals").fetchone()
        return dict(zip(("results", "distinct_bodies", "body_bytes", "stored_bytes"), row, strict=True))
    except sqlite3.OperationalError:  # the raw release: every body in its results row
        count, raw = conn.execute("SELECT COUNT(*), COALESCE(SUM(LENGTH(body)), 0) FROM results").fetchone()
        return {"results": count, "distinct_bodies": None, "body_bytes": raw, "stored_bytes": raw}
    finally:
        conn.close()


def file_bytes(db: str) -> int:
    """The database file and its WAL, as the disk holds them."""
    return sum(os.path.getsize(p) for p in (db, db + "-wal") if os.path.exists(p))


async def measure(jobs: int = 20_000, pages: int = 1000) -> dict[str, Any]:
    """Both runs and the figures the issue asks for."""
    with tempfile.TemporaryDirectory(prefix="jobqueue-storage-") as tmp:
        target_port = _free_port()
        target, _ = start_process([sys.executable, "-c", TARGET, str(target_port), str(pages), vocabulary()],
                                  tmp, "ready")
        try:
            today = await run_once(ROOT, os.path.join(tmp, "today.db"), target_port, jobs, pages)
            tree = raw_tree(tmp)
            before = await run_once(tree, os.path.join(tmp, "raw.db"), target_port, jobs, pages) if tree else None
        finally:
            stop(target)
    report: dict[str, Any] = {"content_addressed": today, "raw_release": before,
                              "stored_vs_raw": round(today["stored_bytes"] / today["body_bytes"], 4)}
    if before:
        report["throughput_vs_raw"] = round(today["jobs_per_s"] / before["jobs_per_s"], 3)
        report["file_vs_raw_file"] = round(today["file_bytes"] / before["file_bytes"], 4)
    return report


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    """Print the storage figures (and write them as JSON when asked)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--pages", type=int, default=1000)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    report = asyncio.run(measure(args.jobs, args.pages))
    today, before = report["content_addressed"], report["raw_release"]
    print(f"storage: {today['jobs']} fetches of {args.pages} distinct {PAGE_BYTES // 1024} KB pages")
    print(f"  bodies: {today['body_bytes']:,} raw bytes stored as {today['stored_bytes']:,} "
          f"({100 * report['stored_vs_raw']:.1f} %), {today['distinct_bodies']} distinct")
    print(f"  throughput: {today['jobs_per_s']} jobs/s", end="")
    if before:
        print(f" against {before['jobs_per_s']} jobs/s storing raw ({100 * report['throughput_vs_raw']:.0f} %);"
              f" database file {today['file_bytes']:,} against {before['file_bytes']:,} bytes")
    else:
        print(" (no git checkout: the raw release was not measured)")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(report, handle, indent=2)


if __name__ == "__main__":
    main()
