"""The benchmark's harness: server.py in a child process, a keep-alive API client, percentiles."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from typing import Any

from tornado.httpclient import HTTPRequest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
API = "/jobqueue/api/v1.0"
WORKERS = 32


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) of `values`."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


class Server:
    """server.py in a child process on a fresh SQLite file."""

    def __init__(self, db: str, *extra: str) -> None:
        self.db = db
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.startup_s = 0.0

    def start(self) -> Server:
        started = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(ROOT, "server.py"), "--port", "0", "--database", f"sqlite:///{self.db}",
             "--allow-private-addresses", "--rate-limit", "0", "--per-host", str(WORKERS),
             "--workers", str(WORKERS), "--log-level", "warning", *self.extra],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=ROOT)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode()
        self.startup_s = time.perf_counter() - started
        match = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        if not match:
            raise RuntimeError(f"server.py did not start: {line!r}")
        self.port = int(match.group(1))
        return self

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def rss_mb(self) -> float:
        assert self.proc is not None
        with open(f"/proc/{self.proc.pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return 0.0

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(30)


class Client:
    """A keep-alive JSON client (curl) for the service's API."""

    def __init__(self, base: str, connections: int = 8) -> None:
        from tornado.curl_httpclient import CurlAsyncHTTPClient

        self.base = base
        self.http = CurlAsyncHTTPClient(force_instance=True, max_clients=connections)

    async def call(self, method: str, path: str, payload: Any = None) -> tuple[int, Any]:
        body = json.dumps(payload) if payload is not None else None
        response = await self.http.fetch(HTTPRequest(
            self.base + path, method=method, body=body, request_timeout=120,
            headers={"Content-Type": "application/json"} if body else None), raise_error=False)
        return response.code, (json.loads(response.body) if response.body else None)

    async def post_text(self, path: str, text: str) -> tuple[int, Any]:
        """POST a text/plain body (a batch file)."""
        response = await self.http.fetch(HTTPRequest(
            self.base + path, method="POST", body=text, request_timeout=300,
            headers={"Content-Type": "text/plain"}), raise_error=False)
        return response.code, (json.loads(response.body) if response.body else None)

    async def raw(self, path: str) -> bytes:
        response = await self.http.fetch(self.base + path, request_timeout=60)
        return response.body

    def close(self) -> None:
        self.http.close()
