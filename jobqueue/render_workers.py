"""The render workers: claim rendered jobs (`render` in their spec) for the browser pool's page slots, render
them, record the outcome.

They are the curl workers' (jobqueue/workers.py) counterpart, with slots of their own (--render-browsers x
--render-pages), so a slow render never holds a fetch slot and a crawl of plain pages never waits for a
browser. The store hands each kind of job to its own claim only; a render takes one of its host's slots like a
fetch (--per-host counts both). A claimed job is held under a lease renewed by heartbeats; its outcome is
written by the same store calls as a fetch's (complete, reschedule, fail), retried by the same RetryPolicy.
A browser that died during a render (BrowserDied) is retried like a connection error, in a fresh browser.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import urlsplit

from jobqueue.errors import Code, FetchError
from jobqueue.history.codec import digest
from jobqueue.leased_pool import LeasedPool
from jobqueue.metrics import Metrics
from jobqueue.models import Result, Task
from jobqueue.profiles import FetchProfiles
from jobqueue.render import BrowserDied, RenderPool, RenderResult
from jobqueue.retry_policy import RetryPolicy
from jobqueue.store.base import Lease, Store, StoreError


@dataclass(frozen=True)
class RenderWorkerSettings:
    """Slots, limits and lease timing of the render workers."""

    slots: int = 4  # renders at once in this process: --render-browsers x --render-pages
    per_host: int = 4  # requests in flight per host, fetches and renders together, across processes
    host_delay: float = 0.0  # seconds between two starts at a host without a min_delay_ms of its own
    lease_seconds: float = 60.0
    poll_interval: float = 0.5
    shutdown_grace: float = 5.0
    fetch_timeout: float = 30.0  # a job without fetch.timeout: the whole render, slot wait included
    user_agent: str | None = None


class RenderWorkers(LeasedPool):
    """Runs up to `slots` renders at once under store leases, each in the pool's browsers."""

    log = logging.getLogger("jobqueue.render_workers")
    loops = ("render-claims", "render-heartbeats")
    rendered = True
    work = "render"

    def __init__(self, store: Store, pool: RenderPool, settings: RenderWorkerSettings, retry: RetryPolicy,
                 publish: Callable[[Task], None], metrics: Metrics | None = None,
                 profiles: FetchProfiles | None = None) -> None:
        super().__init__(store, settings, retry, publish, metrics)
        self.pool = pool
        self.settings = settings
        self.profiles = profiles
        self._pool_started: asyncio.Future[None] | None = None

    def _free(self) -> int:
        """Render slots free now: a render holds its slot until its outcome is written."""
        return self.settings.slots - len(self._running)

    def _launch(self, task: Task, lease: Lease) -> asyncio.Future[None]:
        """Render a job just claimed, as a task of its own."""
        job = asyncio.ensure_future(self._run(task, lease))
        job.add_done_callback(lambda _job: self._finished(task.id))
        return job

    async def _run(self, task: Task, lease: Lease) -> None:
        """One attempt: render, then write its outcome; a bug on the way fails the job `internal_error`."""
        try:
            abandoned = self._abandoned(task, lease)
            if abandoned is not None:
                self._report(task, await abandoned)
                return
            started = time.perf_counter()
            try:
                outcome: RenderResult | FetchError = await self._render(task)
            except FetchError as exc:
                outcome = exc
            self.metrics.fetch_seconds.observe(time.perf_counter() - started)
            self._report(task, await self._record(task, lease, outcome))
        except asyncio.CancelledError:
            raise
        except StoreError as exc:
            self._report(task, exc)
        except Exception as exc:
            self._report(task, await self._failed_by_bug(task, lease, exc))

    async def _browsers(self) -> None:
        """Start the pool's browsers at the first render: a server that never renders runs no Chromium. Started
        from here, on the IOLoop's thread, which their PDEATHSIG follows."""
        if self._pool_started is None:
            self._pool_started = asyncio.ensure_future(self.pool.start())
        started = self._pool_started
        try:
            await asyncio.shield(started)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if self._pool_started is started:  # the next render tries again, from scratch
                self._pool_started = None
                with contextlib.suppress(Exception):
                    await self.pool.stop()
            self.log.error("the browsers could not start: %s", exc)
            raise BrowserDied(f"the browsers could not start: {exc}") from None

    async def _render(self, task: Task) -> RenderResult:
        """Render the job's URL with its fetch options: its headers, user agent, timeout and profile."""
        assert task.render is not None
        await self._browsers()
        fetch = task.fetch
        headers = dict(fetch.headers)
        cookies = _cookies(task.url, headers.pop("Cookie", None) or headers.pop("cookie", None))
        if fetch.profile is not None:
            profile = self.profiles.get(fetch.profile) if self.profiles is not None else None
            host = urlsplit(task.url).hostname or ""
            if profile is None:
                raise FetchError(Code.UNKNOWN_PROFILE, f"the fetch profile {fetch.profile!r} is no longer in "
                                 "--fetch-profiles; add it back (and send SIGHUP) or retry the job without it")
            if not profile.allows(host):
                raise FetchError(Code.PROFILE_NOT_ALLOWED, f"the fetch profile {fetch.profile!r} no longer lists "
                                 f"the host {host} in --fetch-profiles")
            # a browser sends extra headers to every origin a page reaches: only the profile's cookies go, and
            # only to the job's host
            for name, value in profile.headers:
                if name.lower() == "cookie":
                    cookies += _cookies(task.url, value)
        return await self.pool.render(task.url, task.render, headers=headers,
                                      user_agent=fetch.user_agent or self.settings.user_agent,
                                      timeout=fetch.timeout or self.settings.fetch_timeout, cookies=cookies)

    async def _record(self, task: Task, lease: Lease, outcome: RenderResult | FetchError) -> Task | None:
        """A retry later, a failure or the result, written like a fetch's."""
        if isinstance(outcome, FetchError):
            return await self._retry_or_fail(task, lease, outcome)
        status = outcome.http_status
        retry = self._retry_status(task, lease, status, None)
        if retry is not None:
            return await retry
        result = result_from_render(task, outcome)
        await self._views_first(task, result)
        done = await self.store.complete(lease, result)
        if done is not None:
            self.metrics.completed.labels(f"{status // 100}xx").inc()
            self.metrics.response_bytes.observe(result.size)
        return done


def result_from_render(task: Task, rendered: RenderResult) -> Result:
    """The stored result of a render: the DOM as the body, the main document's response, the captures."""
    headers: dict[str, str] = {}
    for name, value in rendered.headers:
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    artifacts = {kind: data for kind, data in (("screenshot", rendered.screenshot), ("pdf", rendered.pdf))
                 if data is not None}
    return Result(
        id=task.id, url=task.url, final_url=rendered.final_url, http_status=rendered.http_status, headers=headers,
        content_type=rendered.content_type, encoding="utf-8", encoding_source="render", size=len(rendered.body),
        truncated=False, elapsed_ms=round(rendered.timings.total * 1000, 1), fetched_at=time.time(),
        sha256=digest(rendered.body), body=rendered.body, rendered=True,
        blocked_requests=rendered.blocked_requests, render_timings=rendered.timings.to_json(), artifacts=artifacts)


def _cookies(url: str, header: str | None) -> list[dict[str, Any]]:
    """A Cookie header's pairs as browser cookies for `url`'s host only."""
    if not header:
        return []
    jar: SimpleCookie = SimpleCookie()
    with contextlib.suppress(Exception):
        jar.load(header)
    return [{"name": name, "value": morsel.value, "url": url} for name, morsel in jar.items()]
