"""The renderer pool: `browsers` Chromium browsers with `pages` renders each, behind the guard proxy."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import os
import shutil
import signal
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from jobqueue.addresses import AddressPolicy
from jobqueue.errors import FetchError
from jobqueue.render import launch
from jobqueue.render.browsers import BrowserSlot
from jobqueue.render.options import BrowserDied, RenderingUnavailable, RenderOptions, RenderResult
from jobqueue.render.page import render_page
from jobqueue.render.proxy import GuardProxy

if TYPE_CHECKING:
    from playwright.async_api import Playwright

log = logging.getLogger("jobqueue.render.pool")


@dataclass(frozen=True)
class RenderSettings:
    """How the pool runs; built once from the server's options."""

    browsers: int = 1
    pages: int = 4
    recycle: int = 500
    chromium: str | None = None  # None: `chromium` on the PATH
    connect_timeout: float = 10.0
    launch_timeout: float = 30.0

    @classmethod
    def resolve(cls, browsers: int | None, pages: int, recycle: int, chromium: str | None,
                connect_timeout: float) -> RenderSettings:
        """The server's options as pool settings: `browsers` None means 1 where a Chromium (and Playwright) is
        found, else 0."""
        if browsers is None:
            browsers = 1 if launch.find_chromium(chromium) is not None and playwright_installed() else 0
        return cls(browsers, pages, recycle, chromium, connect_timeout)


class RenderPool:
    """Hands each render a page slot in a live browser, and replaces browsers that age, crash or hang."""

    def __init__(self, settings: RenderSettings, policy: AddressPolicy) -> None:
        self.settings = settings
        self.executable = launch.find_chromium(settings.chromium)
        self.proxy = GuardProxy(policy, settings.connect_timeout)
        self.marker = uuid.uuid4().hex
        self.workdir = ""
        self.slots: list[BrowserSlot] = []
        self.launched: set[int] = set()
        self.outcomes: Counter[str] = Counter()
        self.render_seconds = 0.0
        self.started_at = 0.0
        self.first_render_at: float | None = None
        self._pw: Playwright | None = None
        self._pw_manager: Any = None
        self._changed: asyncio.Condition | None = None
        self._stopping = False

    @property
    def available(self) -> bool:
        """Whether this pool can render at all (a Chromium was found and at least one browser is asked)."""
        return self.executable is not None and self.settings.browsers > 0 and playwright_installed()

    async def start(self) -> None:
        """Start the proxy and the Playwright driver, and launch the browsers."""
        if not self.available:
            return
        from playwright.async_api import async_playwright

        self._stopping = False
        self.started_at = time.monotonic()
        launch.sweep_stale(tempfile.gettempdir())
        self.workdir = tempfile.mkdtemp(prefix=f"{launch.WORKDIR_PREFIX}{os.getpid()}-")
        assert self.executable is not None
        chromium = launch.write_wrapper(self.workdir, "chromium", self.executable, launch.PIDFILE_ENV)
        self._chromium = chromium
        await self.proxy.start()
        self._changed = asyncio.Condition()
        self._pw_manager = async_playwright()
        with launch.driver_wrapped(self.workdir, self.marker):
            self._pw = await self._pw_manager.start()
        self.slots = [BrowserSlot(i, self.settings.pages, self.settings.recycle, self.workdir, self.marker,
                                  self.launched)
                      for i in range(self.settings.browsers)]
        await asyncio.gather(*(self._ensure(slot) for slot in self.slots))

    async def stop(self) -> None:
        """Close every browser, the driver and the proxy; no browser process is left."""
        self._stopping = True
        for slot in self.slots:
            with contextlib.suppress(Exception):
                await slot.close()
        if self._pw_manager is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._pw_manager.__aexit__(None, None, None), 10)
            self._pw_manager = self._pw = None
        await self.proxy.stop()
        for pgid in self.launched:
            launch.kill_group(pgid, self.marker)
        for pid in launch.pool_processes(self.marker):  # crash handlers live in sessions of their own
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        if self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    async def render(self, url: str, options: RenderOptions, headers: Mapping[str, str] | None = None,
                     user_agent: str | None = None, timeout: float = 30.0,
                     cookies: Iterable[Mapping[str, Any]] = ()) -> RenderResult:
        """Render `url` within `timeout` seconds (slot wait included); FetchError (BrowserDied when the
        browser crashed) on failure."""
        if not self.available or self._pw is None:
            raise RenderingUnavailable()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        began = time.monotonic()
        outcome = "error"
        try:
            slot = await self._take_slot(deadline)
            try:
                queued = time.monotonic() - began
                try:
                    browser = await asyncio.wait_for(self._ensure(slot), max(0.001, deadline - loop.time()))
                except TimeoutError:
                    raise FetchError("timeout", "no browser was ready within the render's timeout") from None
                except Exception as exc:
                    slot.mark_dead()
                    raise BrowserDied(f"the browser could not start: {exc}") from None
                session = await self.proxy.open_session()
                try:
                    result = await render_page(browser, session, url, options, headers or {}, user_agent,
                                               cookies, deadline, on_stuck=slot.mark_dead)
                finally:
                    await self.proxy.close_session(session)
                result.timings.queued = queued
                outcome = "completed"
                if self.first_render_at is None:
                    self.first_render_at = time.monotonic()
                return result
            except BrowserDied:
                if slot.browser is None or not slot.browser.is_connected():
                    slot.mark_dead()  # a renderer's crash alone leaves the browser in service
                outcome = "browser_died"
                raise
            except FetchError as exc:
                outcome = exc.code
                raise
            finally:
                slot.finished()
                await self._notify()
        finally:
            self.outcomes[outcome] += 1
            self.render_seconds += time.monotonic() - began

    async def _take_slot(self, deadline: float) -> BrowserSlot:
        assert self._changed is not None
        async with self._changed:
            while True:
                if self._stopping:
                    raise RenderingUnavailable()
                free = [slot for slot in self.slots if slot.available]
                if free:
                    slot = min(free, key=lambda s: s.active)
                    slot.started()
                    return slot
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    raise FetchError("timeout", "no browser page was free within the render's timeout")
                with contextlib.suppress(TimeoutError):
                    # a retiring slot is replaced in the background: look again now and then
                    await asyncio.wait_for(self._changed.wait(), min(remaining, 0.25))

    async def _notify(self) -> None:
        assert self._changed is not None
        async with self._changed:
            self._changed.notify_all()

    async def _ensure(self, slot: BrowserSlot) -> Any:
        await slot.wait_replaced()
        assert self._pw is not None
        return await slot.ensure(self._pw, self._chromium, self.proxy.default_server, self.settings.launch_timeout)

    def stats(self) -> dict[str, Any]:
        """What `/metrics` and `/healthz` show of rendering."""
        slots = [slot.to_json() for slot in self.slots]
        return {
            "available": self.available,
            "browsers": sum(1 for s in slots if s["running"]),
            "pages_in_use": sum(s["pages_in_use"] for s in slots),
            "page_slots": self.settings.browsers * self.settings.pages,
            "renders": dict(self.outcomes),
            "render_seconds_total": round(self.render_seconds, 3),
            "browser_restarts": sum(s["restarts"] for s in slots),
            "stray_proxy_requests": self.proxy.stray_refusals,
            "slots": slots,
        }

    def processes(self) -> list[int]:
        """The pids of every live process of the pool: the driver, the browsers and their helpers."""
        return launch.pool_processes(self.marker, self.launched)

    def browser_memory(self) -> int:
        """Bytes of memory of the pool's browser processes (the driver left out), as proportional set size:
        summed RSS would count the libraries and shared memory every Chromium process maps many times."""
        return memory_bytes(pid for pid in self.processes() if not _is_driver(pid))


def playwright_installed() -> bool:
    """Whether the `render` extra (Playwright for Python) is installed."""
    return importlib.util.find_spec("playwright") is not None


def memory_bytes(pids: Iterable[int]) -> int:
    """The summed PSS of some processes, in bytes (RSS where the kernel has no smaps_rollup)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as handle:
                for line in handle:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) * 1024
                        break
        except FileNotFoundError:
            with contextlib.suppress(OSError), open(f"/proc/{pid}/statm") as handle:
                total += int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:
            continue
    return total


def _is_driver(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/comm") as handle:
            return handle.read().startswith("node")
    except OSError:
        return True
