"""Extraction in the process pool: the same views as in process, errors that cross back, hostile pages stopped
within their time limit while the IOLoop keeps turning, a stuck worker killed and replaced, and pages handed
over several at a time, each with its own outcome, within one limit."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from concurrent.futures import ProcessPoolExecutor

import pytest

from jobqueue.extract import ExtractionTimeout, ExtractPool, NotHtml, Views, extract, extract_in_pool
from jobqueue.extract.pool import _GRACE, BATCH_PAGES, _run_many, stop_helpers

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
        _executor, pids = await started(pool)
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


async def started(pool: ExtractPool) -> tuple[ProcessPoolExecutor, list[int]]:
    """The pool's executor and its worker processes' pids, once a first page has started them."""
    await pool.extract(article(), "text/html", "utf-8", URL)
    executor = pool._executor
    assert executor is not None
    return executor, list(executor._processes)  # type: ignore[attr-defined]


def numbered(count: int) -> list[bytes]:
    """The article made into `count` distinct bodies."""
    return [article().replace(b"</body>", b"<p>page number %d</p></body>" % i) for i in range(count)]


@pytest.mark.gen_test(timeout=60)
async def test_pages_waiting_for_the_worker_are_handed_over_together_and_each_gets_its_own_views():
    pool = ExtractPool(workers=1, timeout=10)
    try:
        await started(pool)
        before = pool.handovers
        bodies = numbered(20)
        got = await asyncio.gather(*(pool.extract(body, "text/html", "utf-8", URL) for body in bodies))
        assert [views for views in got] == [extract(body, "text/html", "utf-8", URL) for body in bodies]
        # the first goes alone while the others queue behind it, then they go BATCH_PAGES at a time
        assert pool.handovers - before <= 1 + -(-19 // BATCH_PAGES), pool.handovers - before
        page, image = await asyncio.gather(  # an error stays its own page's, in a hand-over with others
            pool.extract(article(), "text/html", "utf-8", URL),
            pool.extract(b"\x89PNG\r\n\x1a\n\x00\x00", "image/png", None, URL), return_exceptions=True)
        assert isinstance(page, Views) and isinstance(image, NotHtml), (page, image)
    finally:
        pool.close()


@pytest.mark.gen_test(timeout=60)
async def test_pages_handed_over_with_a_stuck_one_run_again_alone_on_a_fresh_pool():
    pool = ExtractPool(workers=1, timeout=1.0)
    try:
        _executor, pids = await started(pool)
        blocker = asyncio.ensure_future(pool.extract(article(), "text/html", "utf-8", URL))
        for pid in pids:  # the worker stops while the others wait behind the page it holds
            os.kill(pid, signal.SIGSTOP)
        bodies = numbered(3)
        got = await asyncio.gather(*(pool.extract(body, "text/html", "utf-8", URL) for body in bodies))
        assert got == [extract(body, "text/html", "utf-8", URL) for body in bodies]
        with pytest.raises(ExtractionTimeout):  # the page the stuck worker held, alone: out of time
            await blocker
        assert pool.killed == 1
    finally:
        pool.close()


@pytest.mark.gen_test(timeout=60)
async def test_a_pool_broken_while_idle_is_replaced_by_the_next_page():
    pool = ExtractPool(workers=1, timeout=10)
    try:
        executor, pids = await started(pool)
        for pid in pids:
            os.kill(pid, signal.SIGKILL)  # from outside: the kernel's OOM killer, say
        deadline = time.monotonic() + 10
        while not executor._broken:  # type: ignore[attr-defined]
            assert time.monotonic() < deadline, "the pool never noticed its worker died"
            await asyncio.sleep(0.02)
        for _ in range(2):
            views = await pool.extract(article(), "text/html", "utf-8", URL)
            assert "pooled their reconstruction grants" in views.text
        assert pool._executor is not executor and pool.killed == 0  # no page was stuck
    finally:
        pool.close()


def _fake_extract(body: bytes, *_args: object, **_kwargs: object) -> Views:
    """Takes as many seconds as the body says (60: until its alarm stops it)."""
    time.sleep(float(body))
    return Views(markdown=body.decode(), text=body.decode())


def test_a_hand_over_shares_one_time_limit_and_sends_back_the_pages_it_has_no_time_for(monkeypatch):
    monkeypatch.setattr("jobqueue.extract.pool.extract", _fake_extract)

    def page(seconds: str) -> tuple[bytes, str, str, str, bool]:
        return seconds.encode(), "text/html", "utf-8", URL, True

    outcomes = _run_many([page("0.7"), page("0")], 1.0)  # 0.3 s left: too little to start a page
    assert isinstance(outcomes[0], str) and outcomes[1] is None
    outcomes = _run_many([page("0"), page("60"), page("0")], 1.0)  # ran out of what was left: sent back
    assert isinstance(outcomes[0], str) and outcomes[1] is None and outcomes[2] is None
    started = time.monotonic()
    outcomes = _run_many([page("60"), page("0")], 1.0)  # the first page had the whole limit: out of time
    assert isinstance(outcomes[0], ExtractionTimeout) and outcomes[1] is None
    assert time.monotonic() - started < 1.5
