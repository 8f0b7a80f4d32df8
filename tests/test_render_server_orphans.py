"""No Chromium outlives the server that rendered with it: SIGTERM (a clean stop), SIGKILL, and a server of two
--processes whose children each run their own browsers."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from jobqueue.render.launch import MARKER_ENV, pool_processes
from tests.render_site import LoopThread, Site

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHROMIUM = os.environ.get("JOBQUEUE_TEST_CHROMIUM", "/usr/bin/chromium")
pytestmark = [pytest.mark.slow, pytest.mark.browser,
              pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian's chromium")]


@pytest.fixture(scope="module")
def site():
    loop = LoopThread()
    pages = loop.run(Site().start())
    yield pages
    loop.run(pages.stop())
    loop.close()


@pytest.mark.parametrize("signum, processes", [(signal.SIGTERM, 1), (signal.SIGKILL, 1), (signal.SIGTERM, 2)],
                         ids=["sigterm", "sigkill", "sigterm-2-processes"])
def test_no_chromium_outlives_the_server(tmp_path, site: Site, signum: int, processes: int) -> None:
    server = subprocess.Popen(
        [sys.executable, "server.py", "--port=0", f"--database=sqlite:///{tmp_path}/jq.db", "--allow-private-addresses",
         "--render-browsers=1", f"--chromium={CHROMIUM}", f"--processes={processes}", "--workers=2",
         "--shutdown-grace=1"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        port = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert port, line
        base = f"http://127.0.0.1:{port.group(1)}/jobqueue/api/v1.0/queue_tasks"
        for _ in range(processes):  # with two processes, each is likely to take one and start its browsers
            body = json.dumps({"urls": [site.url("/js")] * 2, "render": {"wait_ms": 30000}}).encode()
            urllib.request.urlopen(urllib.request.Request(base, body, {"Content-Type": "application/json"}), timeout=10)
        deadline = time.monotonic() + 30
        while len(markers := _pool_markers(server.pid)) < 1 or not _browsers(markers):
            assert time.monotonic() < deadline, "no browser started"
            time.sleep(0.1)
        time.sleep(0.5)  # the renders are under way
        markers = _pool_markers(server.pid)
        groups = _groups(markers)
        assert any(pool_processes(marker, groups) for marker in markers)
        os.kill(server.pid, signum)
        server.wait(20)
        deadline = time.monotonic() + 15
        while (left := [pid for marker in markers for pid in pool_processes(marker, groups)]) and \
                time.monotonic() < deadline:
            time.sleep(0.1)
        assert left == [], [_describe(pid) for pid in left]
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def _environ(pid: int) -> dict[str, str]:
    try:
        with open(f"/proc/{pid}/environ", "rb") as handle:
            pairs = handle.read().split(b"\0")
    except OSError:
        return {}
    return dict(p.decode(errors="replace").split("=", 1) for p in pairs if b"=" in p)


def _stat(pid: int) -> list[str]:
    with open(f"/proc/{pid}/stat") as handle:
        return handle.read().rsplit(")", 1)[1].split()


def _descends_from(pid: int, ancestor: int) -> bool:
    while pid > 1:
        if pid == ancestor:
            return True
        try:
            pid = int(_stat(pid)[1])
        except OSError:
            return False
    return False


def _pool_markers(server: int) -> set[str]:
    """The markers of the pools the server (or its children) started."""
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (marker := _environ(int(entry)).get(MARKER_ENV)) and _descends_from(int(entry), server):
            found.add(marker)
    return found


def _browsers(markers: set[str]) -> list[int]:
    pids = [pid for marker in markers for pid in pool_processes(marker)]
    return [pid for pid in pids if _comm(pid).startswith("chrom")]


def _groups(markers: set[str]) -> set[int]:
    groups = set()
    for pid in _browsers(markers):
        try:
            groups.add(int(_stat(pid)[2]))
        except OSError:
            continue
    return groups


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as handle:
            return handle.read().strip()
    except OSError:
        return ""


def _describe(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return f"{pid}: {handle.read()[:120]!r}"
    except OSError:
        return f"{pid}: gone"
