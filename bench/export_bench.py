"""The export measure: jobs stored straight into a database, then exported as JSONL and WARC over HTTP.

`python3 bench/export_bench.py [--jobs 100000] [--body-bytes 20480]` prints, per format, the rate (jobs
and MB per second) and the server's resident memory before and at its peak during the export (goal:
it grows by less than 50 MB, whatever the export's size). The jobs are written through the store's
own interface (add, claim, complete) rather than fetched, so the run measures the export alone.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tornado.httpclient import AsyncHTTPClient, HTTPRequest  # noqa: E402

from bench.harness import API, Server  # noqa: E402
from jobqueue.models import Result, TaskIds  # noqa: E402
from jobqueue.store.base import Lease, NewTask, Store  # noqa: E402

CHUNK = 2000  # jobs per add/claim round while filling


def page(i: int, size: int) -> bytes:
    """A distinct HTML page of about `size` bytes for job i."""
    head = f"<!doctype html><title>page {i}</title><p>".encode()
    filler = (f"row {i} " * (size // 6 + 1)).encode()
    return (head + filler)[:max(size, len(head))]


async def fill(store: Store, n: int, body_bytes: int, host: str = "127.0.0.1:9") -> None:
    """Store n completed jobs with distinct bodies, chunk by chunk, through the store's interface."""
    import hashlib

    ids = TaskIds()
    for start in range(0, n, CHUNK):
        count = min(CHUNK, n - start)
        url = f"http://{host}/page/"
        await store.add([NewTask(id=ids.new(), url=f"{url}{start + k}", host=host) for k in range(count)])
        claimed = await store.claim(count, 600.0, [])
        now = time.time()

        def result(task_id: str, task_url: str, body: bytes, now: float = now) -> Result:
            return Result(id=task_id, url=task_url, final_url=task_url, http_status=200,
                          headers={"content-type": "text/html; charset=utf-8", "server": "bench"},
                          content_type="text/html", encoding="utf-8", encoding_source="header", size=len(body),
                          truncated=False, elapsed_ms=1.0, fetched_at=now, sha256=hashlib.sha256(body).hexdigest(),
                          body=body)

        done = await asyncio.gather(*(
            store.complete(Lease(t.id, t.lease_token or ""),
                           result(t.id, t.url, page(int(t.url.rsplit("/", 1)[1]), body_bytes)))
            for t in claimed))
        if not all(done):
            raise RuntimeError("a job could not be completed while filling the store")


class ExportServer(Server):
    """The server in a child process (harness.Server's memory probe and stop), with /export routed."""

    def start(self) -> ExportServer:
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--serve", self.db],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=ROOT)
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline().decode().strip() or 0)
        if not self.port:
            raise RuntimeError("the export server did not start")
        return self


async def serve(db: str) -> None:
    """Child mode: a server on `db` whose application routes /export (added when make_app lacks it)."""
    from handlers.export import ExportHandler
    from jobqueue.config import Settings
    from server import JobQueueServer

    server = JobQueueServer(Settings(port=0, database=f"sqlite:///{db}", allow_private_addresses=True, workers=1))
    await server.start()
    assert server.http is not None
    app = server.http.request_callback
    app.wildcard_router.add_rules([(rf"{API}/export/?", ExportHandler)])  # type: ignore[attr-defined]
    print(server.port, flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await server.stop()


async def export(server: Server, fmt: str, n: int) -> dict[str, Any]:
    """Download one export, discarding it as it arrives, sampling the server's memory as it runs."""
    received = 0
    peak = base = server.rss_mb()

    def on_chunk(chunk: bytes) -> None:
        nonlocal received, peak
        received += len(chunk)
        peak = max(peak, server.rss_mb())

    client = AsyncHTTPClient(force_instance=True, max_body_size=1 << 40)  # streamed, not held
    started = time.perf_counter()
    response = await client.fetch(HTTPRequest(f"{server.base}{API}/export?format={fmt}", streaming_callback=on_chunk,
                                              request_timeout=3600), raise_error=False)
    elapsed = time.perf_counter() - started
    client.close()
    if response.code != 200:
        raise RuntimeError(f"the {fmt} export failed: {response.code} {response.error}")
    return {"format": fmt, "jobs": n, "seconds": round(elapsed, 2), "jobs_per_s": round(n / elapsed),
            "mb": round(received / 1e6, 1), "mb_per_s": round(received / 1e6 / elapsed, 1),
            "rss_before_mb": round(base, 1), "rss_peak_mb": round(peak, 1), "rss_growth_mb": round(peak - base, 1)}


async def measure(n: int, body_bytes: int) -> list[dict[str, Any]]:
    """Fill a fresh database with n jobs, then time a JSONL and a WARC export of all of them."""
    from jobqueue.store.sqlite.store import SQLiteStore

    with tempfile.TemporaryDirectory() as tmp:
        db = os.path.join(tmp, "export.db")
        store = SQLiteStore(db)
        await store.open()
        started = time.perf_counter()
        await fill(store, n, body_bytes)
        await store.close()
        print(f"stored {n} jobs in {time.perf_counter() - started:.1f}s", file=sys.stderr, flush=True)
        server = ExportServer(db).start()
        try:
            return [await export(server, fmt, n) for fmt in ("jsonl", "warc")]
        finally:
            server.stop()


def main(argv: list[str]) -> int:
    """Print the export figures (or, with --serve DB, be the server child)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--body-bytes", type=int, default=20480)
    parser.add_argument("--serve", metavar="DB", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        asyncio.run(serve(args.serve))
        return 0
    rows = asyncio.run(measure(args.jobs, args.body_bytes))
    print(f"{'format':<7}{'jobs':>9}{'s':>8}{'jobs/s':>9}{'MB':>9}{'MB/s':>7}{'RSS MB':>9}{'peak':>8}{'growth':>8}")
    for r in rows:
        print(f"{r['format']:<7}{r['jobs']:>9}{r['seconds']:>8}{r['jobs_per_s']:>9}{r['mb']:>9}{r['mb_per_s']:>7}"
              f"{r['rss_before_mb']:>9}{r['rss_peak_mb']:>8}{r['rss_growth_mb']:>8}")
    growth = max(r["rss_growth_mb"] for r in rows)
    print(f"peak RSS growth {growth} MB: {'within' if growth < 50 else 'OVER'} the 50 MB goal")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
