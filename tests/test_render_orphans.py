"""No Chromium outlives the process that owns the render pool, however that process ends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from jobqueue.render.launch import pool_processes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHROMIUM = os.environ.get("JOBQUEUE_TEST_CHROMIUM", "/usr/bin/chromium")
pytestmark = [pytest.mark.slow, pytest.mark.browser,
              pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian's chromium")]


@pytest.mark.parametrize("signum, group, hung", [(signal.SIGKILL, False, False), (signal.SIGTERM, False, False),
                                                 (signal.SIGKILL, True, False), (signal.SIGKILL, True, True)])
def test_no_browser_process_outlives_its_owner(signum: int, group: bool, hung: bool) -> None:
    """SIGKILL, SIGTERM (with no handler), SIGKILL of the owner's whole process group at once (as a supervisor
    does: the driver dies too and closes nothing), and that with hung browsers (stopped: they cannot notice
    their pipe closing, only PDEATHSIG's SIGKILL ends them)."""
    child = subprocess.Popen([sys.executable, "-m", "tests.render_child", CHROMIUM], cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line, "the pool's owner did not start"
        pool = json.loads(line)
        processes = pool_processes(pool["marker"], pool["groups"])
        assert len(pool["groups"]) == 2
        assert len(processes) >= 5, processes  # the driver, two browsers and their helpers
        if hung:
            for leader in pool["groups"]:
                os.kill(leader, signal.SIGSTOP)
        if group:
            os.killpg(child.pid, signum)
        else:
            child.send_signal(signum)
        child.wait(10)
        deadline = time.monotonic() + 15
        while (left := pool_processes(pool["marker"], pool["groups"])) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert left == [], [_describe(pid) for pid in left]
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def _describe(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return f"{pid}: {handle.read()[:120]!r}"
    except OSError:
        return f"{pid}: gone"
