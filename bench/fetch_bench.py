"""The fetch path alone, repeated: the bare Tornado curl loop, the service's Fetcher loop, and the service
end to end, each run `--runs` times in turn against one target, with the spread of every figure.

`python3 bench/fetch_bench.py --jobs 10000 --runs 3` is the quick way to measure a change to the fetch
path or the per-job bookkeeping without the whole benchmark (bench/run.py) around it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tornado.curl_httpclient import CurlAsyncHTTPClient  # noqa: E402

from bench.harness import WORKERS  # noqa: E402
from bench.target import BenchTarget, start_target  # noqa: E402
from jobqueue.addresses import AddressPolicy  # noqa: E402
from jobqueue.fetcher import Fetcher, FetchSettings  # noqa: E402


async def measure_bare_loop(target: BenchTarget, n: int) -> dict[str, Any]:
    """Tornado's own CurlAsyncHTTPClient, `fetch(url)` with its defaults: the ceiling the issue names."""
    client = CurlAsyncHTTPClient(force_instance=True, max_clients=WORKERS)
    try:
        return await fetch_loop(client.fetch, target, n)
    finally:
        client.close()


async def measure_ceiling(target: BenchTarget, n: int) -> dict[str, Any]:
    """A bare loop over the service's own Fetcher (same curl settings), no queue, no storage."""
    fetcher = Fetcher(FetchSettings(max_clients=WORKERS), AddressPolicy.build(True))
    try:
        return await fetch_loop(fetcher.fetch, target, n)
    finally:
        fetcher.close()


async def fetch_loop(fetch: Callable[[str], Awaitable[Any]], target: BenchTarget, n: int) -> dict[str, Any]:
    """Fetch n pages with WORKERS at once through `fetch`: pages a second and CPU a page."""
    queue = list(range(n))
    sizes = 0

    async def worker() -> None:
        nonlocal sizes
        while queue:
            response = await fetch(target.url(queue.pop()))
            sizes += len(response.body)

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(WORKERS)))
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {"pages": n, "seconds": round(elapsed, 2), "pages_per_s": round(n / elapsed), "bytes": sizes,
            "cpu_ms_per_page": round(cpu / n * 1000, 3)}


def spread(values: list[float]) -> dict[str, float]:
    """Median, lowest and highest of repeated runs."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


async def main(argv: list[str]) -> dict[str, Any]:
    from bench.run import measure_end_to_end

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=10000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--skip-service", action="store_true", help="only the two fetch loops")
    args = parser.parse_args(argv)
    target = start_target()
    runs: list[dict[str, Any]] = []
    try:
        for _ in range(args.runs):
            bare = await measure_bare_loop(target, args.jobs)
            fetcher = await measure_ceiling(target, args.jobs)
            row: dict[str, Any] = {"bare_loop": bare["pages_per_s"], "bare_loop_cpu_ms": bare["cpu_ms_per_page"],
                                   "fetcher_loop": fetcher["pages_per_s"],
                                   "fetcher_loop_cpu_ms": fetcher["cpu_ms_per_page"]}
            if not args.skip_service:
                service = await measure_end_to_end(target, args.jobs)
                row["end_to_end"] = service["jobs_per_s"]
                row["end_to_end_cpu_ms"] = service["cpu_ms_per_job"]
                row["end_to_end_ioloop_cpu_ms"] = service["ioloop_cpu_ms_per_job"]
                row["ratio_to_bare_loop"] = round(row["end_to_end"] / row["bare_loop"], 3)
            print(json.dumps(row), file=sys.stderr, flush=True)
            runs.append(row)
    finally:
        target.stop()
    summary = {key: spread([r[key] for r in runs]) for key in runs[0]}
    return {"target": target.kind, "jobs": args.jobs, "runs": runs, "summary": summary}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1:])), indent=2))
