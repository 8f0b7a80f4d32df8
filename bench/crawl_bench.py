"""Crawl throughput and memory: a crawl of a generated local site against the same URLs submitted as a batch.

    python3 dev.py bench crawl [--pages 20000] [--fanout 8]

A generated site (in a child process, on 127.0.0.1) has pages /g/0 .. /g/N-1, each about 2 KB of HTML linking
to its `fanout` children and to /g/0. The crawl starts at /g/0 with max_pages N and a depth that reaches every
page, on a fresh server (server.py in a child process, one process, SQLite); the batch run submits the same N
URLs to another fresh server. Printed: pages/s of each, the crawl's rate as a share of the batch's, and the
crawl server's RSS at its start, its peak and its end (sampled twice a second), so a crawl that grows the
server's memory with its size shows.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.harness import API, Client, Server  # noqa: E402


def serve_site(pages: int, fanout: int) -> None:
    """The generated site, run as `crawl_bench.py --serve-site`: prints its port, serves until killed."""
    import tornado.web
    from tornado.httpserver import HTTPServer
    from tornado.ioloop import IOLoop
    from tornado.netutil import bind_sockets

    filler = "<p>" + "lorem ipsum dolor sit amet " * 60 + "</p>"

    class Page(tornado.web.RequestHandler):
        def get(self, number: str) -> None:
            n = int(number)
            children = range(n * fanout + 1, min(n * fanout + fanout, pages - 1) + 1)
            links = "".join(f'<a href="/g/{c}">page {c}</a> ' for c in children)
            self.set_header("Content-Type", "text/html; charset=utf-8")
            self.finish(f'<html><head><title>{n}</title></head><body><a href="/g/0">home</a>{filler}{links}'
                        "</body></html>")

    sockets = bind_sockets(0, "127.0.0.1", family=socket.AF_INET)
    print(sockets[0].getsockname()[1], flush=True)
    server = HTTPServer(tornado.web.Application([(r"/g/(\d+)", Page)]))
    server.add_sockets(sockets)
    IOLoop.current().start()


async def _wait(check: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = await check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise RuntimeError("timed out")
        await asyncio.sleep(0.05)


async def measure_crawl(base: str, pages: int, fanout: int, tmp: str) -> dict[str, Any]:
    """A crawl of the whole site on a fresh server: pages/s and the server's RSS over the run."""
    server = Server(os.path.join(tmp, "crawl.db")).start()
    client = Client(server.base)
    rss: list[float] = [server.rss_mb()]
    try:
        depth = math.ceil(math.log(max(pages, 2), fanout)) + 2
        started = time.perf_counter()
        code, body = await client.call("POST", f"{API}/crawls", {"url": f"{base}/g/0", "max_pages": pages,
                                                                 "max_depth": min(depth, 100), "sitemap": "skip"})
        assert code == 201, body
        crawl_id = body["crawl"]["id"]

        by_tenth: dict[int, float] = {}

        async def finished() -> dict[str, Any] | None:
            # the queue's counts, as the batch run polls them: the crawl's own counts cost a count of its pages
            rss.append(server.rss_mb())
            _, got = await client.call("GET", f"{API}/queue_tasks?limit=1")
            done = got["counts"]["completed"] + got["counts"]["failed"]
            by_tenth.setdefault(10 * done // pages, rss[-1])
            if got["counts"]["queued"] + got["counts"]["running"]:
                return None
            _, got = await client.call("GET", f"{API}/crawls/{crawl_id}")
            return got["crawl"] if got["crawl"]["status"] != "running" else None

        crawl = await _wait(finished, 3600)
        seconds = time.perf_counter() - started
        cpu, main = server.cpu_seconds()
    finally:
        client.close()
        server.stop()
    return {"pages": crawl["counts"]["completed"], "failed": crawl["counts"]["failed"], "seconds": round(seconds, 1),
            "pages_per_s": round(crawl["counts"]["completed"] / seconds, 1),
            "cpu_ms_per_page": round(1000 * cpu / max(1, crawl["counts"]["completed"]), 2),
            "ioloop_cpu_ms_per_page": round(1000 * main / max(1, crawl["counts"]["completed"]), 2),
            "rss_mb": {"start": round(rss[0], 1), "peak": round(max(rss), 1), "end": round(rss[-1], 1),
                       "by_tenth_done": [round(by_tenth[k], 1) for k in sorted(by_tenth)]},
            "skipped": crawl["skipped"]}


async def measure_batch(base: str, pages: int, tmp: str) -> dict[str, Any]:
    """The same URLs as batches of 1,000 on a fresh server: pages/s until all are completed."""
    server = Server(os.path.join(tmp, "batch.db")).start()
    client = Client(server.base)
    try:
        started = time.perf_counter()
        for start in range(0, pages, 1000):
            urls = [f"{base}/g/{n}" for n in range(start, min(pages, start + 1000))]
            code, body = await client.call("POST", f"{API}/batches", {"urls": urls})
            assert code == 201, body

        async def done() -> bool:
            _, got = await client.call("GET", f"{API}/queue_tasks?limit=1")
            return got["counts"]["completed"] + got["counts"]["failed"] >= pages

        await _wait(done, 3600)
        seconds = time.perf_counter() - started
        cpu, main = server.cpu_seconds()
    finally:
        client.close()
        server.stop()
    return {"pages": pages, "seconds": round(seconds, 1), "pages_per_s": round(pages / seconds, 1),
            "cpu_ms_per_page": round(1000 * cpu / pages, 2), "ioloop_cpu_ms_per_page": round(1000 * main / pages, 2)}


def parse(argv: list[str]) -> argparse.Namespace:
    """The bench's options."""
    parser = argparse.ArgumentParser(prog="dev.py bench crawl", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=20_000, help="pages of the generated site (default 20000)")
    parser.add_argument("--fanout", type=int, default=8, help="links to children on each page (default 8)")
    parser.add_argument("--no-batch", action="store_true", help="only the crawl (for a memory run of a big site)")
    return parser.parse_args(argv)


async def main(args: argparse.Namespace, base: str) -> dict[str, Any]:
    """The crawl, then the batch, against the site at `base`."""
    with tempfile.TemporaryDirectory() as tmp:
        report: dict[str, Any] = {"pages": args.pages, "fanout": args.fanout}
        print(f"crawl of {args.pages} generated pages...", file=sys.stderr, flush=True)
        report["crawl"] = await measure_crawl(base, args.pages, args.fanout, tmp)
        if not args.no_batch:
            print("the same URLs as batches...", file=sys.stderr, flush=True)
            report["batch"] = await measure_batch(base, args.pages, tmp)
            report["crawl_share_of_batch_rate"] = round(
                report["crawl"]["pages_per_s"] / report["batch"]["pages_per_s"], 3)
    return report


def run(argv: list[str]) -> None:
    """Start the generated site in a child process, run the measurements, print the report as JSON."""
    args = parse(argv)
    site = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--serve-site", str(args.pages),
                             str(args.fanout)], cwd=ROOT, stdout=subprocess.PIPE)
    try:
        assert site.stdout is not None
        base = f"http://127.0.0.1:{int(site.stdout.readline())}"
        print(json.dumps(asyncio.run(main(args, base)), indent=2))
    finally:
        site.terminate()
        site.wait(10)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve-site"]:
        serve_site(int(sys.argv[2]), int(sys.argv[3]))
    else:
        run(sys.argv[1:])
