"""One browser of the pool: launched behind the guard, counted, recycled, and restarted when it dies."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from typing import TYPE_CHECKING, Any

from jobqueue.render import launch

if TYPE_CHECKING:
    from playwright.async_api import Browser, Playwright

log = logging.getLogger("jobqueue.render.browsers")


class BrowserSlot:
    """A place for one browser: at most `pages` renders at once, a new browser after `recycle` renders,
    after a crash, or when it stops answering."""

    def __init__(self, index: int, pages: int, recycle: int, workdir: str, marker: str,
                 launched: set[int]) -> None:
        self.index = index
        self.launched = launched  # every browser pid (= process group) the pool started
        self.pages = pages
        self.recycle = recycle
        self.workdir = workdir
        self.marker = marker
        self.browser: Browser | None = None
        self.pid = 0
        self.active = 0
        self.served = 0  # renders started in the current browser
        self.retiring = False  # no new render goes here until the browser is replaced
        self.dead = False  # crashed or unresponsive: killed, not closed gracefully
        self.restarts = 0
        self.started_at = 0.0
        self._launching: asyncio.Task[Browser] | None = None
        self._replacing: asyncio.Task[None] | None = None

    @property
    def available(self) -> bool:
        """Whether a new render may start here now."""
        return not self.retiring and self.active < self.pages

    async def ensure(self, pw: Playwright, executable: str, proxy_server: str, timeout: float) -> Browser:
        """The running browser, launched first if there is none (one launch at a time)."""
        if self.browser is not None and self.browser.is_connected() and not self.dead:
            return self.browser
        if self._launching is None:
            self._launching = asyncio.ensure_future(self._launch(pw, executable, proxy_server, timeout))
        try:
            return await asyncio.shield(self._launching)
        finally:
            if self._launching is not None and self._launching.done():
                self._launching = None

    async def _launch(self, pw: Playwright, executable: str, proxy_server: str, timeout: float) -> Browser:
        pidfile = os.path.join(self.workdir, f"browser-{self.index}.pid")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(pidfile)
        env = {**os.environ, launch.MARKER_ENV: self.marker, launch.PIDFILE_ENV: pidfile}
        browser = await pw.chromium.launch(
            executable_path=executable, args=launch.guard_args(proxy_server), proxy={"server": proxy_server},
            env=env, timeout=timeout * 1000, handle_sigint=False, handle_sigterm=False, handle_sighup=False)
        self.pid = _read_pid(pidfile)
        if self.pid:
            self.launched.add(self.pid)
        self.browser, self.served, self.dead, self.retiring = browser, 0, False, False
        self.started_at = time.monotonic()
        browser.on("disconnected", lambda _browser: self._disconnected(browser))
        return browser

    def _disconnected(self, browser: Browser) -> None:
        if browser is not self.browser:
            return
        if not self.retiring:
            log.warning("browser %d disconnected (crashed or killed); it will be replaced", self.index)
            self.mark_dead()

    def mark_dead(self) -> None:
        """The browser crashed or stopped answering: no render goes to it, and it is killed, not closed."""
        self.dead = True
        self.retiring = True
        if self.active == 0:
            self.replace_soon()

    def started(self) -> None:
        """A render takes a page here."""
        self.active += 1
        self.served += 1
        if self.served >= self.recycle:
            self.retiring = True

    def finished(self) -> None:
        """A render gave its page back; a retiring browser is replaced once its last render is done."""
        self.active -= 1
        if self.retiring and self.active == 0:
            self.replace_soon()

    def replace_soon(self) -> None:
        """Close (or kill) the current browser in the background; the next render launches a new one."""
        if self._replacing is None or self._replacing.done():
            self._replacing = asyncio.ensure_future(self._retire())

    async def wait_replaced(self) -> None:
        """Until a running replacement has finished."""
        if self._replacing is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._replacing)

    async def _retire(self) -> None:
        browser, pid = self.browser, self.pid
        self.browser, self.pid = None, 0
        if browser is not None:
            self.restarts += 1
            await close_browser(browser, pid, self.marker, graceful=not self.dead)
        self.retiring = False
        self.dead = False

    async def close(self) -> None:
        """Close this slot's browser for good (service shutdown)."""
        self.retiring = True
        if self._launching is not None:
            with contextlib.suppress(Exception):
                await self._launching
        await self.wait_replaced()
        browser, pid = self.browser, self.pid
        self.browser, self.pid = None, 0
        if browser is not None:
            await close_browser(browser, pid, self.marker, graceful=not self.dead)

    def to_json(self) -> dict[str, Any]:
        """This slot as `/metrics` and the pool's stats show it."""
        return {"index": self.index, "running": self.browser is not None and not self.dead, "pid": self.pid,
                "pages_in_use": self.active, "served": self.served, "restarts": self.restarts}


async def close_browser(browser: Browser, pid: int, marker: str, graceful: bool, timeout: float = 5.0) -> None:
    """Close a browser within `timeout`, then kill whatever of its process group is left."""
    if graceful:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(browser.close(), timeout)
    launch.kill_group(pid, marker)
    if not graceful:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(browser.close(), timeout)  # lets Playwright forget it


def _read_pid(path: str) -> int:
    """The pid the Chromium wrapper wrote as it exec'd the browser (0 when unknown)."""
    try:
        with open(path) as handle:
            return int(handle.read().strip())
    except (OSError, ValueError):
        return 0
