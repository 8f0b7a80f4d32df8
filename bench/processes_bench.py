"""End to end with `--processes=N`: one server, N fetching processes on one SQLite file and one socket.

`python bench/processes_bench.py [--jobs 20000] [--processes 1,2,4] [--runs 3]` prints one row per run and
the JSON; `measure_processes` is what bench/run.py calls. Like run.py's end-to-end figure: a fresh database,
jobs submitted in 1,000-URL POSTs, timed until all are completed, 20 stored bodies compared with the pages.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.extract_service import settle  # noqa: E402
from bench.harness import API, Client, Server, machine_busy_seconds, peak_rss_mb, thread_cpu_seconds  # noqa: E402
from bench.target import BenchTarget, start_target  # noqa: E402
from jobqueue.store.sqlite.thread import NATIVE_NAME  # noqa: E402


def rss_mb(pids: list[int]) -> float:
    """Resident memory of these processes together (shared pages counted in each)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as handle:
                total += next(int(line.split()[1]) for line in handle if line.startswith("VmRSS:"))
        except (OSError, StopIteration):
            continue
    return total / 1024


async def measure_processes(target: BenchTarget, n: int, processes: int, with_indexing: bool = True) -> dict[str, Any]:
    """One server with `--processes processes` on a fresh database: n jobs submitted, time until all completed."""
    from bench.run import submit_all, wait_completed  # here: bench/run.py imports this module

    with tempfile.TemporaryDirectory() as tmp:
        server = Server(os.path.join(tmp, "bench.db"), "--processes", str(processes)).start()
        client = Client(server.base)
        try:
            # the whole tree each time, so extraction workers started later (and those reaped) count
            cpu_before = server.cpu_seconds()[0]
            writer_before = thread_cpu_seconds(server.pids(), NATIVE_NAME)
            machine_before = machine_busy_seconds()
            started = time.perf_counter()
            ids = await submit_all(client, target, n)
            await wait_completed(client, n)
            elapsed = time.perf_counter() - started
            cpu = server.cpu_seconds()[0] - cpu_before
            pids = server.pids()
            writer = thread_cpu_seconds(pids, NATIVE_NAME) - writer_before
            busy, whole = (after - before for after, before in zip(machine_busy_seconds(), machine_before, strict=True))
            peak = peak_rss_mb(pids)
            if with_indexing:  # the search indexer runs behind the completions: its work is the jobs' too
                await settle(server, quiet=0.02 * processes)  # each idle process keeps a few timers
            settled = server.cpu_seconds()[0] - cpu_before
            for i in random.sample(range(n), min(20, n)):
                stored = await client.raw(f"{API}/results/{ids[i]}/body")
                if stored != target.page_bytes(i):
                    raise RuntimeError(f"stored body of job {i} differs from the page")
            rss = rss_mb(pids)
        finally:
            client.close()
            server.stop()
    return {"jobs": n, "processes": processes, "seconds": round(elapsed, 2), "jobs_per_s": round(n / elapsed),
            "server_cpu_ms_per_job": round(cpu * 1000 / n, 3),
            **({"server_cpu_ms_per_job_with_indexing": round(settled * 1000 / n, 3)} if with_indexing else {}),
            "writer_cpu_ms_per_job": round(writer * 1000 / n, 3),
            "rss_mb_all_processes": round(rss, 1), "peak_rss_mb_per_process": round(peak, 1),
            # the machine's cores used meanwhile by everything (service, target, bench client): 1.0 is all of them
            "machine_busy": round(busy / whole, 2) if whole else None}


async def main(argv: list[str]) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=20000)
    parser.add_argument("--processes", default="1,2,4", help="comma-separated process counts")
    parser.add_argument("--runs", type=int, default=1, help="runs of each count (interleaved)")
    args = parser.parse_args(argv)
    counts = [int(part) for part in args.processes.split(",")]
    target = start_target()
    rows = []
    try:
        for run in range(args.runs):
            for count in counts:
                row = await measure_processes(target, args.jobs, count)
                row["run"] = run + 1
                print(f"run {run + 1}: {count} processes: {row['jobs_per_s']} jobs/s, "
                      f"{row['server_cpu_ms_per_job']} ms CPU/job", file=sys.stderr, flush=True)
                rows.append(row)
    finally:
        target.stop()
    return rows


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1:])), indent=2))
