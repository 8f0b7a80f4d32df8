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
# the checkout whose server.py the bench runs: this one, or another build (an older release) to compare side by side
SERVER_ROOT = os.environ.get("BENCH_SERVER_ROOT", ROOT)
API = "/jobqueue/api/v1.0"
WORKERS = 64  # the server's default --workers, given explicitly so an older build runs with the same


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
        self.callbacks_file = ""

    def start(self) -> Server:
        started = time.perf_counter()
        profile = os.environ.get("BENCH_PROFILE")  # a folder: the server's main thread under cProfile, saved there
        profiler = ("-m", "cProfile", "-o", os.path.join(profile, f"server-{os.getpid()}-{started:.0f}.prof")) \
            if profile else ()
        callbacks = os.environ.get("BENCH_CALLBACKS")  # a folder: each IOLoop callback timed (callback_timer.py)
        if callbacks:
            self.callbacks_file = os.path.join(callbacks, f"callbacks-{os.getpid()}-{started:.0f}.json")
            profiler = (os.path.join(ROOT, "bench", "callback_timer.py"), self.callbacks_file)
        self.proc = subprocess.Popen(
            [sys.executable, *profiler, os.path.join(SERVER_ROOT, "server.py"), "--port", "0", "--database", f"sqlite:///{self.db}",
             "--allow-private-addresses", "--rate-limit", "0", "--per-host", str(WORKERS),
             "--workers", str(WORKERS), "--log-level", "warning",
             *(() if "--processes" in self.extra else one_process_option()), *self.extra],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=SERVER_ROOT)
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

    def cpu_seconds(self) -> tuple[float, float]:
        """CPU time used so far (user + system) by the server and any processes it started: all their threads
        (with the processes they reaped: an extraction worker is replaced after its 1,000th page, and its time
        must not leave the sum with it), and their main (IOLoop) threads only."""
        assert self.proc is not None
        tick = os.sysconf("SC_CLK_TCK")
        total = main = 0.0
        for pid in _tree(self.proc.pid):
            try:
                with open(f"/proc/{pid}/stat") as handle:
                    whole = handle.read().rsplit(")", 1)[1].split()
                with open(f"/proc/{pid}/task/{pid}/stat") as handle:
                    first = handle.read().rsplit(")", 1)[1].split()
            except OSError:
                continue  # it ended meanwhile
            total += sum(int(f) for f in whole[11:15]) / tick  # utime, stime, and those of reaped children
            main += (int(first[11]) + int(first[12])) / tick
        return total, main

    def pids(self) -> list[int]:
        """The server's process and its descendants now."""
        assert self.proc is not None
        return _tree(self.proc.pid)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(30)


def thread_cpu_seconds(pids: list[int], name: bytes) -> float:
    """CPU time (user + system) of the threads of these processes whose kernel name is `name` (the SQLite writer
    names itself: jobqueue/store/sqlite/thread.py NATIVE_NAME)."""
    tick, total = os.sysconf("SC_CLK_TCK"), 0.0
    wanted = name.decode()
    for pid in pids:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/comm") as handle:
                    if handle.read().strip() != wanted:
                        continue
                with open(f"/proc/{pid}/task/{tid}/stat") as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def machine_busy_seconds() -> tuple[float, float]:
    """CPU seconds the whole machine spent busy and in all, summed over its cores (/proc/stat), so a run can say
    how much of the machine it used: the service, the target and the bench client together."""
    with open("/proc/stat") as handle:
        fields = [int(f) for f in handle.readline().split()[1:]]
    tick = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / tick, sum(fields[:8]) / tick


def peak_rss_mb(pids: list[int]) -> float:
    """The largest peak resident memory (VmHWM) among these processes."""
    peak = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as handle:
                peak = max(peak, next(int(line.split()[1]) for line in handle if line.startswith("VmHWM:")))
        except (OSError, StopIteration):
            continue
    return peak / 1024


def _tree(pid: int) -> list[int]:
    """`pid` and its descendants."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as handle:
                    todo += [int(child) for child in handle.read().split()]
        except OSError:
            continue
    return found


def one_process_option() -> list[str]:
    """`--processes 1` when this server.py has the option (one process per core is then its default)."""
    global _ONE_PROCESS
    if _ONE_PROCESS is None:
        shown = subprocess.run([sys.executable, os.path.join(SERVER_ROOT, "server.py"), "--help"],
                               capture_output=True, text=True, cwd=SERVER_ROOT).stdout
        _ONE_PROCESS = ["--processes", "1"] if "--processes" in shown else []
    return _ONE_PROCESS


_ONE_PROCESS: list[str] | None = None


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
