"""Extraction in the process pool: the same views as in process, errors that cross back, hostile pages stopped
within their time limit while the IOLoop keeps turning, and a stuck worker killed and replaced."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest

from jobqueue.extract import ExtractionTimeout, ExtractPool, NotHtml, extract, extract_in_pool
from jobqueue.extract.pool import _GRACE, stop_helpers

CORPUS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "readable")
URL = "https://news.example.org/2024/03/river-towns-bridges"


def article() -> bytes:
    with open(os.path.join(CORPUS, "article.html"), "rb") as handle:
        return handle.read()


@pytest.fixture(autouse=True, scope="module")
def helpers_stopped():
    """The forkserver and resource tracker the pool started are gone after these tests."""
    yield
    stop_helpers()


class Ticker:
    """Measures the longest gap between turns of the IOLoop while something runs."""

    def __init__(self) -> None:
        self.longest = 0.0
        self._task = asyncio.ensure_future(self._tick())

    async def _tick(self) -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.01)
            now = time.monotonic()
            self.longest = max(self.longest, now - last)
            last = now

    def stop(self) -> float:
        self._task.cancel()
        return self.longest


@pytest.mark.gen_test(timeout=60)
async def test_the_pool_gives_the_views_of_an_extraction_in_process_and_refuses_binary():
    pool = ExtractPool(workers=1, timeout=10)
    try:
        views = await extract_in_pool(pool, article(), "text/html", "utf-8", URL)
        assert views == extract(article(), "text/html", "utf-8", URL)
        whole = await pool.extract(article(), "text/html", "utf-8", URL, main_content=False)
        assert "Sign up for our morning newsletter" in whole.markdown
        with pytest.raises(NotHtml):
            await pool.extract(b"\x89PNG\r\n\x1a\n\x00\x00", "image/png", None, URL)
    finally:
        pool.close()


HOSTILE = {
    "deep nesting": lambda: b"<html><body>" + b"<div>" * 300_000 + b"deep" + b"</div>" * 300_000 + b"</body></html>",
    "10 MB on one line": lambda: b"<html><body><p>" + b"word " * 2_000_000 + b"</p></body></html>",
    "a million links": lambda: b"<html><body>" + b"".join(b'<a href="/p/%d">l%d</a>' % (i, i)
                                                          for i in range(1_000_000)) + b"</body></html>",
}


@pytest.mark.slow
@pytest.mark.gen_test(timeout=120)
async def test_hostile_pages_finish_within_their_time_limit_and_the_ioloop_keeps_turning():
    limit = 4.0
    pool = ExtractPool(workers=1, timeout=limit)
    try:
        await pool.extract(article(), "text/html", "utf-8", URL)  # the worker is up: its start is not timed
        for name, make in HOSTILE.items():
            body = make()
            ticker = Ticker()
            start = time.monotonic()
            try:
                await pool.extract(body, "text/html", "utf-8", "https://hostile.example/")
            except ExtractionTimeout:
                pass
            elapsed = time.monotonic() - start
            longest = ticker.stop()
            assert elapsed < limit + _GRACE + 1, (name, elapsed)
            assert longest < 0.25, (name, longest)  # the IOLoop was never held
        # the pool still serves ordinary pages afterwards
        views = await pool.extract(article(), "text/html", "utf-8", URL)
        assert "pooled their reconstruction grants" in views.text
    finally:
        pool.close()


@pytest.mark.gen_test(timeout=60)
async def test_a_stuck_worker_is_killed_at_the_deadline_and_replaced():
    pool = ExtractPool(workers=1, timeout=1.0)
    try:
        await pool.extract(article(), "text/html", "utf-8", URL)
        executor = pool._executor
        assert executor is not None
        pids = list(executor._processes)  # type: ignore[attr-defined]
        for pid in pids:  # stuck as in C code: no signal handler of its own can run
            os.kill(pid, signal.SIGSTOP)
        start = time.monotonic()
        with pytest.raises(ExtractionTimeout):
            await pool.extract(article(), "text/html", "utf-8", URL)
        assert 1.0 + _GRACE - 0.1 < time.monotonic() - start < 1.0 + _GRACE + 2
        assert pool.killed == 1
        deadline = time.monotonic() + 10
        while not all(_gone(pid) for pid in pids):
            assert time.monotonic() < deadline, "the stuck worker was not killed"
            await asyncio.sleep(0.05)
        views = await pool.extract(article(), "text/html", "utf-8", URL)
        assert "pooled their reconstruction grants" in views.text
    finally:
        pool.close()


def _gone(pid: int) -> bool:
    """The process has exited (a zombie not yet reaped counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (FileNotFoundError, ProcessLookupError):  # reaped before the open, or between the open and the read
        return True
