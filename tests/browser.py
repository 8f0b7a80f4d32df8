"""Real processes for browser tests: a target site and a server, each a child process on 127.0.0.1."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHROMIUM = os.environ.get("JOBQUEUE_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-quic", "--no-first-run", "--disable-component-update", "--disable-sync"]
ARTIFACTS = os.path.join(ROOT, "test-artifacts")
EXPECT_SECONDS = 15  # playwright's expect waits 5 s by default: short on a loaded 2-core machine


@pytest.fixture(autouse=True)
def patient_expect() -> Iterator[None]:
    """Let `expect` assertions wait as long as page operations do, in the test modules that import this
    fixture (autouse reaches only those)."""
    from playwright.sync_api import expect

    expect.set_options(timeout=EXPECT_SECONDS * 1000)
    yield
    expect.set_options(timeout=5_000)


def have_chromium() -> bool:
    """Browser tests need Debian's chromium and the playwright package."""
    try:
        import playwright  # noqa: F401
    except ImportError:
        return False
    return os.path.exists(CHROMIUM)


@contextmanager
def child(args: list[str], pattern: bytes) -> Iterator[tuple[subprocess.Popen[bytes], re.Match[bytes]]]:
    """Start a child process and wait for its first line to match `pattern`."""
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(pattern, line)
        assert match, f"{args[1]} did not start: {line!r}"
        yield proc, match
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def server_args(tmp_path: str, port: int = 0, *extra: str) -> list[str]:
    """The command line of a test server on a SQLite file in `tmp_path`."""
    return [sys.executable, "server.py", "--port", str(port), "--database", f"sqlite:///{tmp_path}/browser.db",
            "--allow-private-addresses", "--retry-base-delay", "0.05", *extra]


def call(dashboard: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """Call the API of a test server (`path` after /jobqueue/api/v1.0): a str is sent as text/plain,
    anything else as JSON; returns (status, decoded answer)."""
    data, kind = None, None
    if isinstance(body, str):
        data, kind = body.encode(), "text/plain"
    elif body is not None:
        data, kind = json.dumps(body).encode(), "application/json"
    request = urllib.request.Request(f"{dashboard}jobqueue/api/v1.0{path}", data=data, method=method,
                                     headers={"Content-Type": kind} if kind else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


SERVER_LINE = rb"(http://127\.0\.0\.1:(\d+)/)"


@contextmanager
def running_target() -> Iterator[str]:
    """Yield the base URL of a target site running as a child process."""
    with child([sys.executable, "-m", "tests.target"], rb"^(\d+)") as (_t, match):
        yield f"http://127.0.0.1:{int(match.group(1))}"


@contextmanager
def running_service(tmp_path: str, *extra: str) -> Iterator[tuple[str, str]]:
    """Yield (dashboard URL, target base URL) for a server and a target running as child processes."""
    with running_target() as target, child(server_args(tmp_path, 0, *extra), SERVER_LINE) as (_s, sm):
        yield sm.group(1).decode(), target


@contextmanager
def jobs_flowing(dashboard: str, make: Callable[[int], dict[str, Any]], every: float = 0.1,
                 rounds: int = 600) -> Iterator[list[dict[str, Any]]]:
    """Keep submitting jobs from a thread while a browser test acts, as a busy queue would: `make(n)` gives
    the n-th POST /queue_tasks body, one every `every` seconds, at most `rounds` of them; yields the jobs
    made so far (a list that grows), and stops the thread on leaving."""
    made: list[dict[str, Any]] = []
    stop = threading.Event()
    failures: list[str] = []

    def run() -> None:
        deadline = time.monotonic() + rounds * every + 60
        for n in range(rounds):
            if stop.is_set() or time.monotonic() > deadline:
                return
            code, body = call(dashboard, "POST", "/queue_tasks", make(n))
            if code != 201:
                failures.append(f"{code} {body}")
                return
            made.extend(body["tasks"] if "tasks" in body else [body["task"]])
            stop.wait(every)  # pacing the submissions, not synchronising with anything

    thread = threading.Thread(target=run, name="jobs-flowing", daemon=True)
    thread.start()
    try:
        yield made
    finally:
        stop.set()
        thread.join(40)
    assert not failures, f"a submission while jobs flowed was refused: {failures[0]}"
