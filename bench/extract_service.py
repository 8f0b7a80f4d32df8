"""The readable-content benchmark through a real server: what `formats: ["markdown"]` costs a job.

One server (server.py in a child process, one process, a fresh SQLite file) and one target (a Tornado process
serving the committed corpus, tests/fixtures/readable/, each URL's body made distinct by a comment so every job is
a new body to extract). Two phases in the same run: N jobs without `formats`, then N with `formats: ["markdown"]`.
Each phase reports jobs/s to completion, the CPU of the server and its extraction processes per job (counted until
the full-text indexer, which extracts HTML pages' main text too, has gone quiet) and the IOLoop's lag as the server
measures it (`jobqueue_event_loop_lag_seconds`: the bucket bounding the longest stall during the phase, and the
share of its 10 ms ticks that came more than 5 ms late). A warm-up of 30 jobs with formats, not counted, starts
the extraction process first; the stall of that start is printed apart.
"""

from __future__ import annotations

import asyncio
import glob
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from typing import Any

from bench.harness import API, Client, Server
from bench.target import free_port

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "tests", "fixtures", "readable")

TARGET = """
import glob, os, sys, tornado.web, tornado.ioloop
pages = {os.path.basename(p)[:-5]: open(p, "rb").read() for p in sorted(glob.glob(sys.argv[1] + "/*.html"))}
class Page(tornado.web.RequestHandler):
    def get(self, name, n):
        body = pages[name]
        at = body.lower().find(b"<body")
        self.set_header("Content-Type", "text/html" + ("; charset=iso-8859-1" if b"iso-8859-1" in body[:400]
                                                         else "; charset=utf-8"))
        self.write(body[:at] + f"<!-- copy {n} -->".encode() + body[at:])
tornado.web.Application([(r"/(\\w+)/(\\d+)", Page)]).listen(int(sys.argv[2]), "127.0.0.1")
print("ready", flush=True)
tornado.ioloop.IOLoop.current().start()
"""


def corpus_names() -> list[str]:
    """The corpus pages' names."""
    return [os.path.basename(p)[:-5] for p in sorted(glob.glob(os.path.join(CORPUS, "*.html")))]


def extraction_rate(rounds: int = 20) -> tuple[float, float]:
    """Pages per second of jobqueue.extract on one core over the corpus, and the mean milliseconds per page."""
    from jobqueue.extract import extract

    bodies = []
    for name in corpus_names():
        with open(os.path.join(CORPUS, name + ".html"), "rb") as handle:
            bodies.append(handle.read())
    for body in bodies:  # warm: lxml and trafilatura's first call loads their tables
        extract(body, "text/html", None, "https://example.org/")
    started, cpu = time.perf_counter(), time.process_time()
    for _ in range(rounds):
        for body in bodies:
            extract(body, "text/html", None, "https://example.org/")
    used = time.process_time() - cpu
    pages = rounds * len(bodies)
    return pages / used, (time.perf_counter() - started) / pages * 1000


def cpu_split(server: Server) -> tuple[float, float, float]:
    """CPU seconds so far: the server with every process it started, the server process alone, its IOLoop thread."""
    assert server.proc is not None
    pid, tick = server.proc.pid, os.sysconf("SC_CLK_TCK")

    def used(path: str) -> float:
        with open(path) as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / tick

    return server.cpu_seconds()[0], used(f"/proc/{pid}/stat"), used(f"/proc/{pid}/task/{pid}/stat")


def metric(text: str, name: str) -> float:
    """One sample's value from the Prometheus text (0 when absent)."""
    match = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


BUCKETS = ("0.001", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1.0", "5.0", "+Inf")


async def lag_figures(client: Client) -> tuple[float, list[float]]:
    """The lag gauge (seconds, the longest stall of the last minute or two) and the histogram's cumulative counts."""
    text = (await client.raw("/metrics")).decode()
    return (metric(text, "jobqueue_event_loop_lag_max_seconds"),
            [metric(text, f'jobqueue_event_loop_lag_seconds_bucket{{le="{le}"}}') for le in BUCKETS])


def longest_between(before: list[float], after: list[float]) -> str:
    """The bound on the longest stall between two histogram readings: the smallest bucket holding every tick."""
    for le, low, high in zip(BUCKETS, before, after, strict=True):
        if high - low >= after[-1] - before[-1]:
            return f"<= {float(le) * 1000:g} ms" if le != "+Inf" else "> 5 s"
    return "?"


async def extractions(client: Client) -> float:
    """Extractions the server has run, whatever their outcome (`jobqueue_extractions_total`)."""
    text = (await client.raw("/metrics")).decode()
    return sum(float(value) for value in re.findall(r"^jobqueue_extractions_total\{[^}]*\} ([0-9.e+-]+)$", text, re.M))


async def settle(server: Server, client: Client | None = None, extracted: float = 0.0, quiet: float = 0.02,
                 step: float = 0.5, limit: float = 120) -> None:
    """Wait until `extracted` extractions have run, when a client is given (the indexer reached the phase's
    last page: going quiet alone can come before its first round), and the server and its extraction
    processes use under `quiet` of a core."""
    deadline = time.monotonic() + limit
    while client is not None and await extractions(client) < extracted:
        if time.monotonic() > deadline:
            raise RuntimeError(f"fewer than {extracted:.0f} extractions after {limit:g} s")
        await asyncio.sleep(step)  # each /metrics read costs the server about 4 ms of CPU
    before = server.cpu_seconds()[0]
    while time.monotonic() < deadline:
        await asyncio.sleep(step)
        now = server.cpu_seconds()[0]
        if now - before < quiet * step:
            return
        before = now


async def phase(server: Server, client: Client, port: int, names: list[str], first: int, n: int,
                formats: list[str] | None) -> dict[str, Any]:
    """Complete n jobs (numbered from `first`, so every body is new) and measure them."""
    jobs = [{"url": f"http://127.0.0.1:{port}/{names[i % len(names)]}/{i}"} for i in range(first, first + n)]
    payload: dict[str, Any] = {"jobs": jobs, **({"formats": formats} if formats else {})}
    lag_before = await lag_figures(client)
    extracted = await extractions(client) + n  # every body is new: one extraction each, with formats or not
    window_start = time.time()
    started, cpu_before = time.perf_counter(), cpu_split(server)
    code, body = await client.call("POST", f"{API}/queue_tasks", payload)
    if code != 201:
        raise RuntimeError(f"the submission was refused: {code} {body}")
    ids = [t["id"] for t in body["tasks"]]
    done = 0
    while done < n:
        await asyncio.sleep(0.1)
        _, listed = await client.call("GET", f"{API}/queue_tasks?limit=1")
        counts = listed["counts"]
        if counts["failed"]:
            raise RuntimeError(f"{counts['failed']} jobs failed")
        done = counts["completed"] - first
    elapsed = time.perf_counter() - started
    lag_after = await lag_figures(client)
    await settle(server, client, extracted)
    cpu_after = cpu_split(server)
    per_job = [round((a - b) / n * 1000, 2) for a, b in zip(cpu_after, cpu_before, strict=True)]
    (_, low), (_, high) = lag_before, lag_after
    window = (window_start, time.time())  # submission to the indexer's last page: IOLoop callbacks timed in it
    checked = await client.raw(f"{API}/results/{ids[-1]}/markdown") if formats else b""
    return {"window": window, "jobs": n, "seconds": round(elapsed, 2), "jobs_per_s": round(n / elapsed, 1),
            "cpu_ms_per_job": per_job[0], "server_process": per_job[1], "ioloop_thread": per_job[2],
            "extraction_processes": round(per_job[0] - per_job[1], 2),
            "longest_stall": longest_between(low, high),
            "ticks_over_5ms": f"{(high[-1] - low[-1]) - (high[1] - low[1]):.0f}/{high[-1] - low[-1]:.0f}",
            "markdown_bytes": len(checked)}


def callbacks_in(path: str, start: float, end: float) -> dict[str, Any]:
    """With BENCH_CALLBACKS set (bench/callback_timer.py): in a phase, the IOLoop callbacks over 5 ms of the loop
    thread's CPU besides the garbage collections that ran in them, those collections over 5 ms (a collection
    runs in whichever callback crosses its threshold), the callbacks over 5 ms of wall time only (the thread
    waited for the GIL or a core), and the slowest callbacks by their own CPU."""
    if not path or not os.path.exists(path):
        return {}
    with open(path) as handle:
        slow = [(round(cpu - collected, 2), wall, collected, name)
                for at, cpu, wall, collected, _generation, name in json.load(handle)["slow"] if start <= at <= end]
    slow.sort(reverse=True)
    return {"callbacks_over_5ms_cpu": sum(1 for own, _, _, _ in slow if own > 5),
            "collections_over_5ms": sum(1 for _, _, collected, _ in slow if collected > 5),
            "over_5ms_wall_only": sum(1 for own, wall, collected, _ in slow if wall - collected > 5 >= own),
            "slowest_own_cpu_ms": "; ".join(f"{own} {name}" for own, _, _, name in slow[:3])}


async def measure(n: int, port: int) -> dict[str, Any]:
    """Both phases through one server and the target on `port`."""
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(os.path.join(tmp, "bench.db")).start()
        client = Client(server.base)
        try:
            names = corpus_names()
            # warm-up, not counted: the extraction process starts (its start is timed apart, below)
            gauge_before = (await lag_figures(client))[0]
            warm = await phase(server, client, port, names, 0, 30, ["markdown"])
            gauge_after = (await lag_figures(client))[0]
            first = 30
            plain = await phase(server, client, port, names, first, n, None)
            with_formats = await phase(server, client, port, names, first + n, n, ["markdown"])
        finally:
            client.close()
            server.stop()
        for figures in (plain, with_formats):
            figures.update(callbacks_in(server.callbacks_file, *figures.pop("window")))
    warm_up = {"longest_stall": warm["longest_stall"], "lag_gauge_ms": f"{gauge_before * 1000:.1f} -> "
               f"{gauge_after * 1000:.1f}"}
    return {"warm_up (pool start)": warm_up, "without_formats": plain, "formats_markdown": with_formats}


def run_service(n: int) -> None:
    """Print the service figures."""
    rate, ms = extraction_rate()
    load = os.getloadavg()
    print(f"## Readable content through the service (load average {load[0]:.2f} {load[1]:.2f}, "
          f"{os.cpu_count()} cores)")
    print(f"extraction on one core: {rate:.0f} pages/s of CPU ({ms:.2f} ms per corpus page, wall)")
    port = free_port()
    target = subprocess.Popen([sys.executable, "-c", TARGET, CORPUS, str(port)], stdout=subprocess.PIPE, cwd=ROOT)
    try:
        assert target.stdout is not None
        target.stdout.readline()
        report = asyncio.run(measure(n, port))
    finally:
        target.terminate()
        target.wait(10)
    print("CPU in ms per job: all (server + extraction processes), server process, its IOLoop thread, extraction")
    for name, figures in report.items():
        print(f"{name:<20} " + "  ".join(f"{k} {v}" for k, v in figures.items()))
    plain, formats = report["without_formats"], report["formats_markdown"]
    print(f"formats markdown: {formats['jobs_per_s'] / plain['jobs_per_s'] * 100 - 100:+.0f} % jobs/s, "
          f"{formats['cpu_ms_per_job'] / plain['cpu_ms_per_job'] * 100 - 100:+.0f} % CPU per job "
          f"(load average after: {os.getloadavg()[0]:.2f})")


if __name__ == "__main__":
    sys.path.insert(0, ROOT)
    run_service(int(sys.argv[1]) if len(sys.argv) > 1 else 600)

