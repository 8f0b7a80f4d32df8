"""jobqueue's benchmark: the raw fetch ceiling, the service end to end, submission, latency, scale.

Run it with `python3 dev.py bench` (add `--quick` for a short run). Everything runs on this machine
against a local target; nothing leaves 127.0.0.1. Results print as a table and as JSON.

Rendering in Chromium is measured only when asked, as its own run (a few minutes, and it needs a Chromium):
`python3 dev.py bench render` (`python3 dev.py bench render --help` for its options). Crawls likewise:
`python3 dev.py bench crawl` (a generated site crawled, and the same URLs as batches; `--help`). What one
job makes SQLite execute, statement by statement and trigger by trigger: `python3 dev.py bench statements`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import re
import shutil
import sqlite3
import sys
import tempfile
import time
from typing import Any

from tornado.websocket import websocket_connect

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.claims_bench import measure_claims  # noqa: E402
from bench.dashboard_bench import measure_dashboard  # noqa: E402
from bench.export_bench import measure as measure_export  # noqa: E402
from bench.extract_service import settle  # noqa: E402
from bench.fetch_bench import measure_bare_loop, measure_ceiling  # noqa: E402
from bench.harness import (  # noqa: E402
    API,
    WORKERS,
    Client,
    Server,
    one_process_option,
    pct,
    peak_rss_mb,
    thread_cpu_seconds,
)
from bench.processes_bench import measure_processes  # noqa: E402
from bench.search_bench import measure_search  # noqa: E402
from bench.storage_bench import measure as measure_storage  # noqa: E402
from bench.target import BenchTarget, start_target  # noqa: E402
from bench.webhook_bench import measure_webhooks  # noqa: E402
from jobqueue.models import TaskIds  # noqa: E402
from jobqueue.store.sqlite.migrations import migrate  # noqa: E402
from jobqueue.store.sqlite.thread import NATIVE_NAME  # noqa: E402


async def wait_completed(client: Client, n: int, timeout: float = 600) -> None:
    deadline = time.perf_counter() + timeout
    while True:
        _, body = await client.call("GET", f"{API}/queue_tasks?limit=1")
        counts = body["counts"]
        if counts["completed"] + counts["failed"] >= n:
            if counts["failed"]:
                raise RuntimeError(f"{counts['failed']} jobs failed during the benchmark")
            return
        if time.perf_counter() > deadline:
            raise RuntimeError(f"only {counts['completed']} of {n} completed in {timeout}s")
        await asyncio.sleep(0.02)


async def submit_all(client: Client, target: BenchTarget, n: int, options: bool = False) -> list[str]:
    """Submit n jobs in 1,000-URL POSTs; with `options`, every job carries headers and its own priority."""
    ids: list[str] = []
    for start in range(0, n, 1000):
        indices = range(start, min(n, start + 1000))
        payload: dict[str, Any] = {"urls": [target.url(i) for i in indices]}
        if options:
            payload = {"jobs": [{"url": target.url(i), "priority": i % 11 - 5} for i in indices],
                       "fetch": {"headers": {"Accept-Language": "en", "X-Bench": "options"}}, "tags": ["bench"]}
        code, body = await client.call("POST", f"{API}/queue_tasks", payload)
        assert code == 201, body
        ids += [t["id"] for t in body["tasks"]]
    return ids


async def measure_end_to_end(target: BenchTarget, n: int, websockets: int = 0, processes: int = 1,
                             options: bool = False, with_indexing: bool = False) -> dict[str, Any]:
    """Fresh server(s) on one database; batch-submit n jobs; time until all are completed; check bodies."""
    with tempfile.TemporaryDirectory() as tmp:
        # separate servers on one file, each a single process, whatever server.py's default process count;
        # --per-host holds for all of them together (the store counts it), so it is raised to their workers
        single = [*one_process_option(), "--per-host", str(WORKERS * processes)]
        others = [Server(os.path.join(tmp, "bench.db"), *single).start() for _ in range(processes - 1)]
        server = Server(os.path.join(tmp, "bench.db"), *single).start()
        client = Client(server.base)
        streams = []
        try:
            readers = []
            for _ in range(websockets):
                # connected the way the dashboard connects: batched frames, and a view of its first page
                stream = await websocket_connect(f"ws://127.0.0.1:{server.port}{API}/events?batch=1")
                await stream.write_message(json.dumps({"type": "view", "task_ids": [], "newest": 50,
                                                       "after_id": "", "status": None}))
                streams.append(stream)
                readers.append(asyncio.ensure_future(_drain(stream)))
            started, cpu_before = time.perf_counter(), server.cpu_seconds()
            writer_before = thread_cpu_seconds(server.pids(), NATIVE_NAME)
            ids = await submit_all(client, target, n, options)
            await wait_completed(client, n)
            elapsed, cpu_after = time.perf_counter() - started, server.cpu_seconds()
            writer = thread_cpu_seconds(server.pids(), NATIVE_NAME) - writer_before
            peak = peak_rss_mb(server.pids())
            if with_indexing:  # the search indexer runs behind the completions: its work is the jobs' too
                await settle(server)
            settled = server.cpu_seconds()[0] - cpu_before[0]
            for i in random.sample(range(n), min(20, n)):
                stored = await client.raw(f"{API}/results/{ids[i]}/body")
                if stored != target.page_bytes(i):
                    raise RuntimeError(f"stored body of job {i} differs from the page")
            rss = server.rss_mb()
        finally:
            for stream in streams:
                stream.close()
            client.close()
            server.stop()
            for other in others:
                other.stop()
    return {"jobs": n, "seconds": round(elapsed, 2), "jobs_per_s": round(n / elapsed), "websockets": websockets,
            "processes": processes, "options": options, "rss_mb": round(rss, 1), "bodies_checked": min(20, n),
            # CPU of the first server only: the IOLoop thread is what saturates first
            "cpu_ms_per_job": round((cpu_after[0] - cpu_before[0]) / n * 1000, 3),
            "ioloop_cpu_ms_per_job": round((cpu_after[1] - cpu_before[1]) / n * 1000, 3),
            "writer_cpu_ms_per_job": round(writer / n * 1000, 3), "peak_rss_mb": round(peak, 1),
            **({"cpu_ms_per_job_with_indexing": round(settled / n * 1000, 3)} if with_indexing else {})}


async def measure_big_batch(target: BenchTarget, lines: int) -> dict[str, Any]:
    """POST one text/plain batch of `lines` URLs: time to 201, and the longest IOLoop stall the server saw."""
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(os.path.join(tmp, "bench.db"), "--max-queued", str(lines * 2)).start()
        client = Client(server.base)
        try:
            text = "\n".join(target.url(i % 1000) + f"?line={i}" for i in range(lines))
            started = time.perf_counter()
            code, body = await client.post_text(f"{API}/batches", text)
            elapsed = time.perf_counter() - started
            if code != 201:
                raise RuntimeError(f"the batch was refused: {code} {body}")
            metrics = (await client.raw("/metrics")).decode()
            stall = float(re.search(r"^jobqueue_event_loop_lag_max_seconds (\S+)$", metrics, re.M).group(1))
        finally:
            client.close()
            server.stop()
    return {"urls": lines, "bytes": len(text), "seconds_to_201": round(elapsed, 2),
            "longest_ioloop_stall_ms": round(stall * 1000, 1)}


async def _drain(stream: Any) -> None:
    while await stream.read_message() is not None:
        pass


async def measure_submission(target: BenchTarget, seconds: float) -> dict[str, Any]:
    """Single-URL POSTs over keep-alive connections (wrk when installed), then 1,000-URL batches."""
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(os.path.join(tmp, "submit.db")).start()
        client = Client(server.base, connections=8)
        try:
            single = await _single_posts(server, client, target, seconds)
            batches, per_batch = 20, 1000
            started = time.perf_counter()
            sem = asyncio.Semaphore(4)

            async def one(b: int) -> None:
                async with sem:
                    code, _ = await client.call("POST", f"{API}/queue_tasks", {
                        "urls": [target.url(b * per_batch + i) for i in range(per_batch)]})
                    assert code == 201

            await asyncio.gather(*(one(b) for b in range(batches)))
            batch_rate = batches * per_batch / (time.perf_counter() - started)
        finally:
            client.close()
            server.stop()
    return {**single, "batch_jobs_per_s": round(batch_rate)}


async def _single_posts(server: Server, client: Client, target: BenchTarget, seconds: float) -> dict[str, Any]:
    wrk = shutil.which("wrk")
    if wrk:
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
            script.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                         f'wrk.body = \'{{"url": "{target.url(1)}"}}\'\n')
        proc = await asyncio.create_subprocess_exec(
            wrk, "-t2", "-c8", f"-d{int(seconds)}s", "-s", script.name, f"{server.base}{API}/queue_tasks",
            stdout=asyncio.subprocess.PIPE)
        out = (await proc.communicate())[0].decode()
        os.unlink(script.name)
        rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
        bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        return {"single_posts_per_s": round(rate), "single_post_errors": int(bad.group(1)) if bad else 0,
                "single_post_client": "wrk -t2 -c8"}
    done = 0
    deadline = time.perf_counter() + seconds

    async def loop() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            code, _ = await client.call("POST", f"{API}/queue_tasks", {"url": target.url(done)})
            assert code == 201
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(8)))
    return {"single_posts_per_s": round(done / (time.perf_counter() - started)), "single_post_errors": 0,
            "single_post_client": "python curl, 8 connections (install wrk for a client that is not the bottleneck)"}


async def measure_latency(target: BenchTarget, samples: int) -> dict[str, Any]:
    """Submit one job at a time and time POST -> its `completed` websocket event."""
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(os.path.join(tmp, "latency.db")).start()
        client = Client(server.base, connections=1)
        stream = await websocket_connect(f"ws://127.0.0.1:{server.port}{API}/events")
        await stream.read_message()
        times = []
        try:
            for i in range(samples):
                started = time.perf_counter()
                _, body = await client.call("POST", f"{API}/queue_tasks", {"url": target.url(i)})
                task_id = body["task"]["id"]
                while True:
                    event = json.loads(await stream.read_message())
                    if event.get("type") == "task" and event["task"]["id"] == task_id \
                            and event["task"]["status"] == "completed":
                        break
                times.append((time.perf_counter() - started) * 1000)
        finally:
            stream.close()
            client.close()
            server.stop()
    return {"samples": samples, "p50_ms": round(pct(times, 50), 2), "p99_ms": round(pct(times, 99), 2)}


def fill_queue(db: str, size: int, target: BenchTarget) -> float:
    """Write `size` queued jobs straight into a fresh database file."""
    started = time.perf_counter()
    conn = sqlite3.connect(db, isolation_level=None)
    migrate(conn)
    ids = TaskIds()
    now = time.time()
    # far in the future: the jobs stay queued while the server is measured
    later = now + 86400
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO jobs (id, url, host, status, attempts, created_at, updated_at, available_at)"
        " VALUES (?, ?, '127.0.0.1', 'queued', 0, ?, ?, ?)",
        ((ids.new(now), target.url(i), now, now, later) for i in range(size)))
    conn.execute("UPDATE counts SET n = n + ? WHERE status = 'queued'", (size,))  # as the store's add() does
    conn.execute("COMMIT")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.close()
    return time.perf_counter() - started


async def measure_big_queue(target: BenchTarget, size: int, requests: int) -> dict[str, Any]:
    """RSS, listing and counting latency, and start-up time with `size` jobs queued."""
    with tempfile.TemporaryDirectory() as tmp:
        db = os.path.join(tmp, "big.db")
        fill_s = fill_queue(db, size, target)
        server = Server(db).start()
        client = Client(server.base, connections=1)
        try:
            results: dict[str, list[float]] = {"list": [], "list_queued": [], "list_page_2": []}
            _, first = await client.call("GET", f"{API}/queue_tasks?limit=50")
            assert first["counts"]["queued"] == size, first["counts"]
            for _ in range(requests):
                for key, path in (("list", "?limit=50"), ("list_queued", "?status=queued&limit=50"),
                                  ("list_page_2", f"?limit=50&cursor={first['next']}")):
                    started = time.perf_counter()
                    code, _ = await client.call("GET", f"{API}/queue_tasks{path}")
                    assert code == 200
                    results[key].append((time.perf_counter() - started) * 1000)
            rss = server.rss_mb()
        finally:
            client.close()
            server.stop()
    out: dict[str, Any] = {"queued": size, "fill_s": round(fill_s, 1), "startup_s": round(server.startup_s, 3),
                           "rss_mb": round(rss, 1)}
    for key, values in results.items():
        out[f"{key}_p50_ms"] = round(pct(values, 50), 2)
        out[f"{key}_p99_ms"] = round(pct(values, 99), 2)
    return out


def machine() -> dict[str, Any]:
    """Where the figures come from."""
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version, "os": platform.platform()}


def table(report: dict[str, Any]) -> str:
    """A plain-text table of every figure."""
    lines = []
    for section, values in report.items():
        if isinstance(values, dict):
            lines.append(f"\n{section}")
            for key, value in values.items():
                lines.append(f"  {key:<28} {value}")
        else:
            lines.append(f"{section:<30} {values}")
    return "\n".join(lines)


SECTIONS = ("end_to_end_with_options", "big_batch", "end_to_end_100_websockets", "end_to_end_slow_webhooks",
            "end_to_end_2_processes", "storage", "end_to_end_processes", "submission", "latency", "export",
            "dashboard_frames", "search_and_bulk", "big_queue", "claims")


async def main(argv: list[str]) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="dev.py bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run (~30 s)")
    parser.add_argument("--jobs", type=int, default=None, help="jobs for the end-to-end runs (default 20000)")
    parser.add_argument("--queued", type=int, default=None, help="jobs in the big-queue run (default 1000000)")
    parser.add_argument("--json", default=None, help="also write the JSON report to this file")
    parser.add_argument("--submit-seconds", type=float, default=None, help="length of the single-POST run")
    parser.add_argument("--sections", default=None, help="comma-separated sections to run after the ceiling and "
                        f"the plain end-to-end run, which always run (default: all of {', '.join(SECTIONS)})")
    args = parser.parse_args(argv)
    chosen = set(args.sections.split(",")) if args.sections else set(SECTIONS)
    if chosen - set(SECTIONS):
        parser.error(f"--sections: unknown {', '.join(sorted(chosen - set(SECTIONS)))}")

    def wanted(section: str) -> bool:
        return section in chosen

    n = args.jobs or (2000 if args.quick else 20000)
    queued = args.queued or (100_000 if args.quick else 1_000_000)
    batch_lines = 10_000 if args.quick else 100_000
    target = start_target()
    report: dict[str, Any] = {"machine": machine(), "target": {"kind": target.kind, "page_bytes": 20480}}
    try:
        print(f"target: {target.kind}; ceiling with {n} pages...", file=sys.stderr, flush=True)
        report["ceiling"] = await measure_ceiling(target, n)
        # Tornado's stock CurlAsyncHTTPClient with its defaults: the "bare AsyncHTTPClient loop"; the
        # ceiling above (the service's own Fetcher and curl driver, nothing else) is the tighter of the two
        report["ceiling_stock_tornado"] = await measure_bare_loop(target, n)
        print("service end to end...", file=sys.stderr, flush=True)
        report["end_to_end"] = await measure_end_to_end(target, n, with_indexing=True)
        report["end_to_end"]["ratio_to_ceiling"] = round(
            report["end_to_end"]["jobs_per_s"] / report["ceiling"]["pages_per_s"], 2)
        report["end_to_end"]["ratio_to_stock_tornado"] = round(
            report["end_to_end"]["jobs_per_s"] / report["ceiling_stock_tornado"]["pages_per_s"], 2)
        if wanted("end_to_end_with_options"):
            print("every job with headers and a priority...", file=sys.stderr, flush=True)
            report["end_to_end_with_options"] = await measure_end_to_end(target, n, options=True)
            report["end_to_end_with_options"]["cost_vs_plain"] = round(
                1 - report["end_to_end_with_options"]["jobs_per_s"] / report["end_to_end"]["jobs_per_s"], 3)
        if wanted("big_batch"):
            print(f"a {batch_lines}-line text/plain batch...", file=sys.stderr, flush=True)
            report["big_batch"] = await measure_big_batch(target, batch_lines)
        if wanted("end_to_end_100_websockets"):
            print("with 100 dashboard websockets...", file=sys.stderr, flush=True)
            report["end_to_end_100_websockets"] = await measure_end_to_end(target, n, websockets=100)
            report["end_to_end_100_websockets"]["cost_vs_none"] = round(
                1 - report["end_to_end_100_websockets"]["jobs_per_s"] / report["end_to_end"]["jobs_per_s"], 3)
        if wanted("end_to_end_slow_webhooks"):
            print("every job notifying a webhook receiver that takes 1 s...", file=sys.stderr, flush=True)
            hooked = min(n, 4000)  # the same number of jobs without webhooks is the baseline
            baseline = await measure_end_to_end(target, hooked)
            report["end_to_end_slow_webhooks"] = await measure_webhooks(submit_all, wait_completed, target, hooked)
            report["end_to_end_slow_webhooks"]["baseline_jobs_per_s"] = baseline["jobs_per_s"]
            report["end_to_end_slow_webhooks"]["cost_vs_none"] = round(
                1 - report["end_to_end_slow_webhooks"]["jobs_per_s"] / baseline["jobs_per_s"], 3)
        if wanted("end_to_end_2_processes"):
            print("two processes on one database file...", file=sys.stderr, flush=True)
            report["end_to_end_2_processes"] = await measure_end_to_end(target, n, processes=2)
        if wanted("storage"):
            print("storage: bodies stored once and compressed, against the release that stored them raw...",
                  file=sys.stderr, flush=True)
            report["storage"] = await measure_storage(jobs=n, pages=max(10, min(1000, n // 20)))
        if wanted("end_to_end_processes"):
            print("one server with --processes 1, 2 and 4...", file=sys.stderr, flush=True)
            report["end_to_end_processes"] = [await measure_processes(target, n, count, with_indexing=not args.quick)
                                              for count in (1, 2, 4)]
        if wanted("submission"):
            print("submission...", file=sys.stderr, flush=True)
            report["submission"] = await measure_submission(target, args.submit_seconds or (3 if args.quick else 5))
        if wanted("latency"):
            print("submit -> completed latency...", file=sys.stderr, flush=True)
            report["latency"] = await measure_latency(target, 50 if args.quick else 300)
        if wanted("export"):
            exported = min(queued, 10_000 if args.quick else 100_000)
            print(f"export of {exported} jobs as JSON Lines and WARC...", file=sys.stderr, flush=True)
            report["export"] = {row["format"]: row for row in await measure_export(exported, 20480)}
        if wanted("dashboard_frames"):
            print("the dashboard in chromium while events stream in...", file=sys.stderr, flush=True)
            report["dashboard_frames"] = await measure_dashboard(submit_all, target, min(queued, 100_000),
                                                                 min(n, 2000 if args.quick else 10_000))
        if wanted("search_and_bulk"):
            print(f"host and full-text queries, and a bulk retry, among {queued} jobs...", file=sys.stderr,
                  flush=True)
            report["search_and_bulk"] = await measure_search(queued, 50 if args.quick else 300)
        if wanted("big_queue"):
            print(f"{queued} queued jobs...", file=sys.stderr, flush=True)
            report["big_queue"] = await measure_big_queue(target, queued, 50 if args.quick else 300)
        if wanted("claims"):
            print(f"claims under per-host pacing: {queued} queued over 10,000 hosts, and one paced host's "
                  "backlog...", file=sys.stderr, flush=True)
            report["claims"] = measure_claims(queued, 1000 if args.quick else 10_000,
                                              20_000 if args.quick else 100_000, 100 if args.quick else 300)
    finally:
        target.stop()
    return report


def run(argv: list[str]) -> None:
    """Run every measurement, then print the table and the JSON (and write it where asked); `render` first
    runs the rendering bench instead, which the default run leaves out for its length and its Chromium."""
    if argv[:1] == ["render"]:
        from bench.render_bench import run as run_render

        run_render(argv[1:])
        return
    if argv[:1] == ["crawl"]:
        from bench.crawl_bench import run as run_crawl

        run_crawl(argv[1:])
        return
    if argv[:1] == ["firecrawl"]:
        from bench.firecrawl_bench import run as run_firecrawl

        run_firecrawl(argv[1:])
        return
    if argv[:1] == ["statements"]:
        from bench.statements import run as run_statements

        run_statements(argv[1:])
        return
    json_path = None
    if "--json" in argv:
        json_path = argv[argv.index("--json") + 1]
    report = asyncio.run(main(argv))
    print(table(report))
    print(json.dumps(report, indent=2))
    if json_path:
        with open(json_path, "w") as handle:
            json.dump(report, handle, indent=2)


if __name__ == "__main__":
    run(sys.argv[1:])
