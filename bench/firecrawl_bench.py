"""The Firecrawl layer's cost: synchronous scrapes through the firecrawl-py SDK against the same jobs submitted
natively, on one fresh server in the same run.

    python3 dev.py bench firecrawl [--jobs 200] [--concurrency 8] [--rounds 1]

A local site (crawl_bench's generated pages, about 2 KB of HTML each, in a child process on 127.0.0.1) serves a
distinct URL to every job, so no answer is reused. On one server (server.py, one process, SQLite), each round
runs five sides of `--jobs` jobs each (the order rotates from round to round):
- plain: the URLs submitted as one batch, no formats (the service's end-to-end job throughput);
- same work: one batch of the very jobs a Firecrawl scrape makes (its job spec, read by the Firecrawl layer's own
  reader from the SDK's request: formats markdown and metadata, maxAge, the firecrawl tags);
- same work per request: those jobs, one `POST /queue_tasks` each from `--concurrency` threads, each request on a
  new connection as the SDK makes them (what one HTTP request and one store write per job cost natively);
- native sync: what a scrape does, through the native API and jobqueue's own Python client, from `--concurrency`
  threads: submit one job, wait for it (the client's wait), read its Markdown, then the next URL;
- firecrawl: `Firecrawl.scrape(url)` from `--concurrency` threads, each answered when its job is done.
Printed: jobs/s of each and the server's CPU ms per job (its processes, extraction workers included; the bench's
own polling for the end of a native side, measured on the idle server, taken out), and the Firecrawl layer's
cost as its CPU per job over the native synchronous scrape's (the same work in the same pattern without the layer:
goal under 1.10), over the same work per request (submitted only, never waited for or read back) and over the same
work in one batch (what the pattern of one synchronous request per job costs). With several rounds, the medians.
Wall rates move with what else runs on the machine; CPU per job much less.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.harness import API, Client, Server  # noqa: E402

SIDES = ("plain", "same_work", "same_work_per_request", "native_sync", "firecrawl")
POLL_S = 0.1
IDLE_POLLS = 30


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="dev.py bench firecrawl", description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=200, help="jobs in each side of a round")
    parser.add_argument("--concurrency", type=int, default=8, help="SDK (or per-request) threads at once")
    parser.add_argument("--rounds", type=int, default=1, help="rounds of the five sides on the same server")
    return parser.parse_args(argv)


def scrape_job_spec() -> dict[str, Any]:
    """The job spec a Firecrawl scrape of the bench makes, read by the layer itself from the SDK's request."""
    from firecrawl.v2.methods.scrape import _prepare_scrape_request  # what Firecrawl.scrape sends
    from firecrawl.v2.types import ScrapeOptions

    from jobqueue.firecrawl.scrape_options import read_scrape_options

    payload = _prepare_scrape_request("http://127.0.0.1/", ScrapeOptions(formats=["markdown"]))
    del payload["url"]
    return read_scrape_options(payload).spec


class Polls:
    """The bench's own polling for the end of a native side, and its server CPU per poll."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.cpu_per_poll = 0.0

    async def completed(self) -> int:
        code, body = await self.client.call("GET", f"{API}/queue_tasks?limit=1")
        assert code == 200, body
        return int(body["counts"]["completed"]) + int(body["counts"]["failed"])

    async def calibrate(self, server: Server) -> None:
        """Measure a poll's server CPU on the idle server, at the rate the sides poll, beyond what the idle
        server spends meanwhile without polls."""
        cpu0, started = server.cpu_seconds()[0], time.perf_counter()
        for _ in range(IDLE_POLLS):
            await self.completed()
            await asyncio.sleep(POLL_S)
        polled, seconds = server.cpu_seconds()[0] - cpu0, time.perf_counter() - started
        cpu0 = server.cpu_seconds()[0]
        await asyncio.sleep(seconds)
        self.cpu_per_poll = max(0.0, polled - (server.cpu_seconds()[0] - cpu0)) / IDLE_POLLS

    async def until(self, count: int) -> int:
        """Poll until `count` jobs are finished; how many polls it took."""
        polls = 0
        while True:
            polls += 1
            if await self.completed() >= count:
                return polls
            await asyncio.sleep(POLL_S)


async def batch_run(server: Server, client: Client, polls: Polls, urls: list[str],
                    spec: dict[str, Any]) -> dict[str, Any]:
    """Submit `urls` as one batch and wait until each is done: jobs/s and server CPU per job."""
    before = await polls.completed()
    cpu0, started = server.cpu_seconds()[0], time.perf_counter()
    code, body = await client.call("POST", f"{API}/queue_tasks", {"urls": urls, **spec})
    assert code == 201, body
    count = await polls.until(before + len(urls))
    seconds = time.perf_counter() - started
    return {**_figures(len(urls), seconds, server.cpu_seconds()[0] - cpu0 - count * polls.cpu_per_poll),
            "bench_polls": count}


async def per_request_run(server: Server, polls: Polls, urls: list[str], spec: dict[str, Any],
                          concurrency: int) -> dict[str, Any]:
    """Submit each of `urls` by its own POST on a new connection, from `concurrency` threads, then wait for all."""
    import requests

    def submit(url: str) -> int:
        return requests.post(f"{server.base}{API}/queue_tasks", json={"url": url, **spec}, timeout=60).status_code

    def submit_all() -> list[int]:
        with ThreadPoolExecutor(concurrency) as pool:
            return list(pool.map(submit, urls))

    before = await polls.completed()
    cpu0, started = server.cpu_seconds()[0], time.perf_counter()
    statuses = await asyncio.to_thread(submit_all)
    count = await polls.until(before + len(urls))
    seconds = time.perf_counter() - started
    assert statuses == [201] * len(urls), sorted(set(statuses))
    return {**_figures(len(urls), seconds, server.cpu_seconds()[0] - cpu0 - count * polls.cpu_per_poll),
            "bench_polls": count}


def native_sync_run(server: Server, urls: list[str], spec: dict[str, Any], concurrency: int) -> dict[str, Any]:
    """What a scrape does, through the native API and its own client from `concurrency` threads: each thread
    submits a job, waits for it (the client's wait) and reads its Markdown, then takes the next URL."""
    from jobqueue.client import Client as NativeClient

    clients = [NativeClient(server.base) for _ in range(concurrency)]

    def scrape(i: int) -> int:
        jq = clients[i % concurrency]
        task = jq.wait(jq.submit(urls[i], **spec).id, timeout=60)
        assert jq.markdown(task.id), urls[i]
        return task.http_status or 0

    try:
        cpu0, started = server.cpu_seconds()[0], time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            statuses = list(pool.map(scrape, range(len(urls))))
        seconds = time.perf_counter() - started
    finally:
        for jq in clients:
            jq.close()
    assert statuses == [200] * len(urls), sorted(set(statuses))
    return _figures(len(urls), seconds, server.cpu_seconds()[0] - cpu0)


def firecrawl_run(server: Server, urls: list[str], concurrency: int) -> dict[str, Any]:
    """Scrape `urls` through the SDK from `concurrency` threads, each call answered when its job is done."""
    from firecrawl import Firecrawl

    clients = [Firecrawl(api_key="bench", api_url=server.base) for _ in range(concurrency)]

    def scrape(i: int) -> int:
        doc = clients[i % concurrency].scrape(urls[i], formats=["markdown"])
        assert doc.markdown, urls[i]
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


async def side(name: str, server: Server, client: Client, polls: Polls, urls: list[str], spec: dict[str, Any],
               concurrency: int) -> dict[str, Any]:
    """One side of a round on fresh `urls`."""
    if name == "plain":
        return await batch_run(server, client, polls, urls, {})
    if name == "same_work":
        return await batch_run(server, client, polls, urls, spec)
    if name == "same_work_per_request":
        return await per_request_run(server, polls, urls, spec, concurrency)
    if name == "native_sync":
        return await asyncio.to_thread(native_sync_run, server, urls, spec, concurrency)
    return await asyncio.to_thread(firecrawl_run, server, urls, concurrency)


async def main(args: argparse.Namespace, base: str) -> dict[str, Any]:
    n, spec = args.jobs, scrape_job_spec()
    fresh = iter(f"{base}/g/{i}" for i in range(pages_needed(args)))
    rounds: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(os.path.join(tmp, "firecrawl.db")).start()
        client = Client(server.base)
        polls = Polls(client)
        try:
            await batch_run(server, client, polls, [next(fresh) for _ in range(20)], spec)  # warm up
            await asyncio.sleep(1)  # what the warm-up left (text indexing) is done
            await polls.calibrate(server)
            for r in range(args.rounds):
                order = SIDES[r % len(SIDES):] + SIDES[:r % len(SIDES)]
                found = {name: await side(name, server, client, polls, [next(fresh) for _ in range(n)], spec,
                                          args.concurrency) for name in order}
                rounds.append({name: found[name] for name in SIDES})
        finally:
            client.close()
            server.stop()
    cpu = {name: statistics.median(r[name]["server_cpu_ms_per_job"] for r in rounds) for name in SIDES}
    rate = {name: statistics.median(r[name]["jobs_per_s"] for r in rounds) for name in SIDES}
    report: dict[str, Any] = {"job_spec": spec, "poll_cpu_ms": round(1000 * polls.cpu_per_poll, 3)}
    report.update(rounds[0] if len(rounds) == 1 else {"rounds": rounds, "median_cpu_ms_per_job": cpu,
                                                      "median_jobs_per_s": rate})
    report["firecrawl_cpu_over_same_work"] = round(cpu["firecrawl"] / cpu["same_work"], 3)
    report["firecrawl_cpu_over_per_request"] = round(cpu["firecrawl"] / cpu["same_work_per_request"], 3)
    report["firecrawl_cpu_over_native_sync"] = round(cpu["firecrawl"] / cpu["native_sync"], 3)
    report["firecrawl_cpu_over_plain"] = round(cpu["firecrawl"] / cpu["plain"], 3)
    report["firecrawl_rate_over_same_work"] = round(rate["firecrawl"] / rate["same_work"], 3)
    report["goal"] = "firecrawl_cpu_over_native_sync < 1.10"
    return report


def pages_needed(args: argparse.Namespace) -> int:
    """Distinct pages the site must serve: every job of every side and round, and the warm-up."""
    return len(SIDES) * args.jobs * args.rounds + 20


def run(argv: list[str]) -> None:
    """Start the local site in a child process, run the rounds, print the report as JSON."""
    args = parse(argv)
    site = subprocess.Popen([sys.executable, os.path.join(ROOT, "bench", "crawl_bench.py"), "--serve-site",
                             str(pages_needed(args)), "8"], cwd=ROOT, stdout=subprocess.PIPE)
    try:
        assert site.stdout is not None
        base = f"http://127.0.0.1:{int(site.stdout.readline())}"
        print(json.dumps(asyncio.run(main(args, base)), indent=2))
    finally:
        site.terminate()
        site.wait(10)


if __name__ == "__main__":
    run(sys.argv[1:])
