"""The Firecrawl layer's cost: synchronous scrapes through the firecrawl-py SDK against the same jobs submitted
natively, on one fresh server in the same run.

    python3 dev.py bench firecrawl [--jobs 200] [--concurrency 8]

A local site (crawl_bench's generated pages, about 2 KB of HTML each, in a child process on 127.0.0.1) serves a
distinct URL to every job, so no answer is reused (the SDK sends maxAge). On one server (server.py, one process,
SQLite), three runs of `--jobs` jobs each:
- plain: the URLs submitted as one batch, no formats (the service's end-to-end job throughput);
- same work: one batch with the formats a Firecrawl scrape computes (markdown and metadata);
- firecrawl: `Firecrawl.scrape(url)` from `--concurrency` threads, each answered when its job is done.
Printed: jobs/s of each and the server's CPU seconds per job (its processes, extraction workers included), and
the Firecrawl layer's cost as its CPU per job over the same work's (goal: under 1.10). Wall rates move with what
else runs on the machine; CPU per job much less.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.harness import API, Client, Server  # noqa: E402

SAME_WORK = ["markdown", "metadata"]  # what jobqueue/firecrawl/scrape_options.py asks for a default scrape


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="dev.py bench firecrawl", description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=200, help="jobs in each of the three runs")
    parser.add_argument("--concurrency", type=int, default=8, help="SDK threads scraping at once")
    return parser.parse_args(argv)


async def _completed(client: Client) -> int:
    code, body = await client.call("GET", f"{API}/queue_tasks?limit=1")
    assert code == 200, body
    return int(body["counts"]["completed"]) + int(body["counts"]["failed"])


async def batch_run(server: Server, client: Client, urls: list[str], formats: list[str] | None) -> dict[str, Any]:
    """Submit `urls` as one batch and wait until each is done: jobs/s and server CPU per job."""
    before = await _completed(client)
    cpu0, started = server.cpu_seconds()[0], time.perf_counter()
    payload: dict[str, Any] = {"urls": urls, **({"formats": formats} if formats else {})}
    code, body = await client.call("POST", f"{API}/queue_tasks", payload)
    assert code == 201, body
    while True:  # the bench's own polling, 50 times a second: its cost is the same for both batch runs
        if await _completed(client) >= before + len(urls):
            break
        await asyncio.sleep(0.02)
    seconds = time.perf_counter() - started
    return _figures(len(urls), seconds, server.cpu_seconds()[0] - cpu0)


def firecrawl_run(server: Server, urls: list[str], concurrency: int) -> dict[str, Any]:
    """Scrape `urls` through the SDK from `concurrency` threads, each call answered when its job is done."""
    from firecrawl import Firecrawl

    clients = [Firecrawl(api_key="bench", api_url=server.base) for _ in range(concurrency)]

    def scrape(i: int) -> int:
        doc = clients[i % concurrency].scrape(urls[i], formats=["markdown"])
        return doc.metadata.status_code if doc.metadata else 0

    cpu0, started = server.cpu_seconds()[0], time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        statuses = list(pool.map(scrape, range(len(urls))))
    seconds = time.perf_counter() - started
    assert statuses == [200] * len(urls), sorted(set(statuses))
    return _figures(len(urls), seconds, server.cpu_seconds()[0] - cpu0)


def _figures(jobs: int, seconds: float, cpu: float) -> dict[str, Any]:
    return {"jobs": jobs, "seconds": round(seconds, 3), "jobs_per_s": round(jobs / seconds, 1),
            "server_cpu_ms_per_job": round(1000 * cpu / jobs, 3)}


async def main(args: argparse.Namespace, base: str) -> dict[str, Any]:
    n = args.jobs
    urls = [f"{base}/g/{i}" for i in range(3 * n)]
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(os.path.join(tmp, "firecrawl.db")).start()
        client = Client(server.base)
        try:
            await batch_run(server, client, [f"{base}/g/{3 * n + i}" for i in range(20)], SAME_WORK)  # warm up
            report: dict[str, Any] = {"plain": await batch_run(server, client, urls[:n], None),
                                      "same_work": await batch_run(server, client, urls[n:2 * n], SAME_WORK)}
            report["firecrawl"] = await asyncio.to_thread(firecrawl_run, server, urls[2 * n:], args.concurrency)
        finally:
            client.close()
            server.stop()
    fc, same, plain = report["firecrawl"], report["same_work"], report["plain"]
    report["firecrawl_cpu_over_same_work"] = round(fc["server_cpu_ms_per_job"] / same["server_cpu_ms_per_job"], 3)
    report["firecrawl_cpu_over_plain"] = round(fc["server_cpu_ms_per_job"] / plain["server_cpu_ms_per_job"], 3)
    report["firecrawl_rate_over_same_work"] = round(fc["jobs_per_s"] / same["jobs_per_s"], 3)
    report["goal"] = "firecrawl_cpu_over_same_work < 1.10"
    return report


def run(argv: list[str]) -> None:
    """Start the local site in a child process, run the three measurements, print the report as JSON."""
    args = parse(argv)
    pages = 3 * args.jobs + 20
    site = subprocess.Popen([sys.executable, os.path.join(ROOT, "bench", "crawl_bench.py"), "--serve-site",
                             str(pages), "8"], cwd=ROOT, stdout=subprocess.PIPE)
    try:
        assert site.stdout is not None
        base = f"http://127.0.0.1:{int(site.stdout.readline())}"
        print(json.dumps(asyncio.run(main(args, base)), indent=2))
    finally:
        site.terminate()
        site.wait(10)


if __name__ == "__main__":
    run(sys.argv[1:])
