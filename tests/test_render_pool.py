"""The renderer pool against real Chromium and a real site on 127.0.0.1: what a render gives back, fresh
contexts, timeouts, and browsers that die mid-render."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import signal
import struct
import time
from collections.abc import Iterator
from typing import Any

import pytest

from jobqueue.addresses import AddressPolicy
from jobqueue.errors import BadRequest, FetchError
from jobqueue.render import BrowserDied, RenderPool, RenderSettings, parse_render
from tests.render_site import LoopThread, Site

CHROMIUM = os.environ.get("JOBQUEUE_TEST_CHROMIUM", "/usr/bin/chromium")
pytestmark = [pytest.mark.slow, pytest.mark.browser,
              pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian's chromium")]


class Rig:
    """A pool and a site on one loop thread, driven from sync tests."""

    def __init__(self, **settings: Any) -> None:
        self.loop = LoopThread()
        self.site = self.loop.run(Site().start())
        policy = AddressPolicy.build(False, ["127.0.0.1/32"])
        self.pool = RenderPool(RenderSettings(chromium=CHROMIUM, **settings), policy)
        self.loop.run(self.pool.start())

    def render(self, path: str, render: Any = True, capture: Any = None, timeout: float = 20, **kw: Any) -> Any:
        options = parse_render(render, capture)
        return self.loop.run(self.pool.render(self.site.url(path), options, timeout=timeout, **kw), timeout + 30)

    def close(self) -> None:
        self.loop.run(self.pool.stop())
        self.loop.run(self.site.stop())
        self.loop.close()
        assert self.pool.processes() == []


@pytest.fixture(scope="module")
def rig() -> Iterator[Rig]:
    rig = Rig(browsers=1, pages=2)
    yield rig
    rig.close()


def png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", png[16:24])


def wait_until(predicate: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_javascript_content_is_in_the_rendered_dom(rig: Rig) -> None:
    result = rig.render("/js")
    assert b'<p id="made">made by javascript</p>' in result.body
    assert result.http_status == 200
    assert result.final_url == rig.site.url("/js")
    assert ("Content-Type", "text/html; charset=utf-8") in result.headers
    assert result.blocked_requests == 0
    assert result.timings.total >= result.timings.navigation > 0


def test_wait_for_and_wait_ms(rig: Rig) -> None:
    assert b"<p id=\"late\">" not in rig.render("/late").body
    assert b'<p id="late">came late</p>' in rig.render("/late", {"wait_for": "#late"}).body
    assert b'data-ready="yes"' not in rig.render("/wait-ms").body
    # the page's timer runs 3 s from load: a loaded machine's slow hand-over of `load` never lets it fire first
    waited = rig.render("/wait-ms", {"wait_ms": 3500})
    assert b'data-ready="yes"' in waited.body
    assert waited.timings.waits >= 3.5


def test_a_selector_that_never_comes_times_out(rig: Rig) -> None:
    with pytest.raises(FetchError) as caught:
        rig.render("/js", {"wait_for": "#never"}, timeout=2)
    assert caught.value.code == "timeout"


def test_screenshots_and_pdf(rig: Rig) -> None:
    result = rig.render("/tall", {"viewport": {"width": 640, "height": 480}}, ["screenshot", "pdf"])
    assert png_size(result.screenshot) == (640, 480)
    assert result.pdf.startswith(b"%PDF")
    full = rig.render("/tall", {"viewport": {"width": 640, "height": 480}}, ["screenshot_full"])
    width, height = png_size(full.screenshot)
    assert width == 640 and height >= 3000


def test_each_render_has_a_fresh_context(rig: Rig) -> None:
    rig.render("/set-cookie")
    seen = json.loads(_seen(rig.render("/echo").body))
    assert "cookie" not in seen


def test_headers_user_agent_and_cookies_apply(rig: Rig) -> None:
    cookie = {"name": "session", "value": "abc", "url": rig.site.url("/")}
    result = rig.render("/echo", headers={"X-Job": "42"}, user_agent="jobqueue-test/1.0", cookies=[cookie])
    seen = json.loads(_seen(result.body))
    assert seen["x-job"] == "42"
    assert seen["user-agent"] == "jobqueue-test/1.0"
    assert seen["cookie"] == "session=abc"
    assert ("X-Echo", "yes") in result.headers


def test_an_endless_script_times_out_and_the_next_render_works(rig: Rig) -> None:
    began = time.monotonic()
    with pytest.raises(FetchError) as caught:
        rig.render("/endless", timeout=3)
    assert caught.value.code == "timeout" and not isinstance(caught.value, BrowserDied)
    assert time.monotonic() - began < 3 + 6  # the timeout, plus at most the context's close
    assert b"made by javascript" in rig.render("/js").body
    assert rig.pool.stats()["pages_in_use"] == 0


def test_kill_9_of_the_browser_during_a_render(rig: Rig) -> None:
    pid = rig.pool.slots[0].pid
    assert pid > 0
    future = _start(rig, "/wait-ms", {"wait_ms": 20000})
    wait_until(lambda: rig.pool.stats()["pages_in_use"] == 1, 10, "the render to start")
    time.sleep(0.5)  # let the navigation get under way: the kill must land mid-render
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(BrowserDied):
        future.result(30)
    assert b"made by javascript" in rig.render("/js").body
    assert rig.pool.slots[0].pid not in (0, pid)
    assert rig.pool.stats()["browser_restarts"] >= 1


def test_kill_9_of_the_renderer_during_a_render(rig: Rig) -> None:
    future = _start(rig, "/wait-ms", {"wait_ms": 20000})
    wait_until(lambda: rig.pool.stats()["pages_in_use"] == 1, 10, "the render to start")
    time.sleep(0.5)
    renderers = _renderers(rig.pool)  # the page's, and a spare one the browser may keep ready
    assert renderers
    for pid in renderers:
        os.kill(pid, signal.SIGKILL)
    with pytest.raises(BrowserDied):
        future.result(30)
    assert b"made by javascript" in rig.render("/js").body


def test_invalid_options_name_the_field() -> None:
    for render, capture, field in (({"wait_until": "never"}, None, "render.wait_until"),
                                   ({"wait_ms": 30001}, None, "render.wait_ms"),
                                   ({"viewport": {"width": 100, "height": 500}}, None, "render.viewport"),
                                   ({"block": ["script"]}, None, "render.block"),
                                   ({"wat": 1}, None, "render.wat"),
                                   (None, ["screenshot"], "capture"),
                                   (True, ["movie"], "capture")):
        with pytest.raises(BadRequest) as caught:
            parse_render(render, capture)
        assert caught.value.message.startswith(f"{field}:"), caught.value.message


def test_recycling_replaces_the_browser() -> None:
    rig = Rig(browsers=1, pages=1, recycle=3)
    try:
        pids = set()
        for _ in range(7):
            assert b"made by javascript" in rig.render("/js").body
            pids.add(rig.pool.slots[0].pid)
        assert len(pids) == 3
        assert rig.pool.stats()["browser_restarts"] == 2
    finally:
        rig.close()


def _start(rig: Rig, path: str, render: Any) -> concurrent.futures.Future[Any]:
    """A render under way on the rig's loop, to act on while it runs."""
    coro = rig.pool.render(rig.site.url(path), parse_render(render), timeout=40)
    return asyncio.run_coroutine_threadsafe(coro, rig.loop.loop)


def _renderers(pool: RenderPool) -> list[int]:
    found = []
    for pid in pool.processes():
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                if b"--type=renderer" in handle.read():
                    found.append(pid)
        except OSError:
            pass
    return found


def _seen(body: bytes) -> str:
    import html

    start = body.index(b"<pre id=\"seen\">") + len(b"<pre id=\"seen\">")
    return html.unescape(body[start:body.index(b"</pre>", start)].decode())
