"""Hundreds of websocket clients that never read cost the server no memory of their own, nor time."""

from __future__ import annotations

import asyncio
import base64
import os
import re
import signal
import socket
import sys
import time

import pytest

from tests.helpers import API, Api, wait_for
from tests.target import Target

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLIENTS = 300
POSTS = 3  # of 1,000 URLs each: about 10,000 state changes for every client
MAX_GROWTH_MB = 60  # measured: 11 MB with the fix, 237 MB without it
MAX_POST_SECONDS = 5.0  # measured: at most 0.9 s with the fix, 26 s without it


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    """A process's resident memory (or its peak, VmHWM) in KiB, from /proc."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} for process {pid}")


async def never_reading_client(port: int) -> socket.socket:
    """A websocket client with a tiny receive buffer that does the handshake and then never reads."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: it sets the window
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, ("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    request = (f"GET {API}/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
    await loop.sock_sendall(sock, request.encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = await asyncio.wait_for(loop.sock_recv(sock, 1024), 10)
        assert chunk, "the server closed the connection during the handshake"
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head[:200]
    return sock


async def start_server(db: str) -> tuple[asyncio.subprocess.Process, int]:
    """server.py as a child process, so its own memory can be measured."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, os.path.join(ROOT, "server.py"), "--port", "0", "--database", f"sqlite:///{db}",
        "--allow-private-addresses", "--workers", "64", "--per-host", "64", "--log-level", "warning",
        "--shutdown-grace", "0.5", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, cwd=ROOT,
    )
    line = await asyncio.wait_for(proc.stdout.readline(), 15)
    match = re.search(rb"http://127\.0\.0\.1:(\d+)/", line)
    assert match, line
    return proc, int(match.group(1))


async def submit(api: Api, target: Target, start: int) -> float:
    """POST 1,000 URLs; return how long the answer took."""
    began = time.monotonic()
    await api.submit_many([target.url(f"/page/{i}") for i in range(start, start + 1000)])
    return time.monotonic() - began


async def all_completed(api: Api, total: int, timeout: float) -> None:
    """Wait until `total` jobs completed."""
    async def done() -> bool:
        return (await api.counts())["completed"] >= total

    await wait_for(done, timeout, f"{total} jobs to complete", interval=0.1)


@pytest.mark.slow
@pytest.mark.gen_test(timeout=120)
async def test_never_reading_clients_cost_no_memory_and_do_not_slow_the_api(tmp_path, target):
    proc, port = await start_server(str(tmp_path / "slow.db"))
    api = Api(f"http://127.0.0.1:{port}")
    clients: list[socket.socket] = []
    try:
        await submit(api, target, 0)  # warm up: caches, pools, the event log
        await all_completed(api, 1000, 30)
        baseline = rss_kib(proc.pid)
        clients = [await never_reading_client(port) for _ in range(CLIENTS)]
        # each POST lands while the previous one's jobs run and their changes flow to every client
        post_times = [await submit(api, target, 1000 * n) for n in range(1, POSTS + 1)]
        await all_completed(api, 1000 * (POSTS + 1), 60)  # measured: about 12 s with the fix, 66 s without
        peak = rss_kib(proc.pid, "VmHWM")
        growth_mb = (peak - baseline) / 1024
        assert growth_mb < MAX_GROWTH_MB, f"{CLIENTS} stalled clients grew the server by {growth_mb:.0f} MB"
        assert max(post_times) < MAX_POST_SECONDS, f"1,000-URL POSTs took {post_times} s"
    finally:
        for sock in clients:
            sock.close()
        api.close()
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 15)
        except TimeoutError:
            proc.kill()  # leave no process behind, then fail
            await proc.wait()
            raise
