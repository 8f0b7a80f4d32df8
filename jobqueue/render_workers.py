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

from jobqueue.backoff import delay as backoff_delay
from jobqueue.errors import Code, FetchError
from jobqueue.history.codec import digest
from jobqueue.metrics import Metrics
from jobqueue.models import Result, Task, TaskError
from jobqueue.profiles import FetchProfiles
from jobqueue.render import BrowserDied, RenderPool, RenderResult
from jobqueue.retry_policy import RETRYABLE_STATUSES, RetryPolicy
from jobqueue.store.base import Lease, Store, StoreError
from jobqueue.supervisor import Supervisor

log = logging.getLogger("jobqueue.render_workers")


@dataclass(frozen=True)
class RenderWorkerSettings:
    """Slots, limits and lease timing of the render workers."""

    slots: int = 4  # renders at once in this process: --render-browsers x --render-pages
    per_host: int = 4  # requests in flight per host, fetches and renders together, across processes
    lease_seconds: float = 60.0
    poll_interval: float = 0.5
    shutdown_grace: float = 5.0
    fetch_timeout: float = 30.0  # a job without fetch.timeout: the whole render, slot wait included
    user_agent: str | None = None


class RenderWorkers:
    """Runs up to `slots` renders at once under store leases, each in the pool's browsers."""

    def __init__(self, store: Store, pool: RenderPool, settings: RenderWorkerSettings, retry: RetryPolicy,
                 publish: Callable[[Task], None], metrics: Metrics | None = None,
                 profiles: FetchProfiles | None = None) -> None:
        self.store = store
        self.pool = pool
        self.settings = settings
        self.retry = retry
        self.publish = publish
        self.metrics = metrics or Metrics()
        self.profiles = profiles
        self._wake = asyncio.Event()
        self._stopping = False
        self._supervisor = Supervisor(metrics=self.metrics)
        self._running: dict[str, asyncio.Task[None]] = {}
        self._leases: dict[str, Lease] = {}
        self._ended: list[Lease] = []  # renders that are over: their host slots are freed by the next claim
        self._pool_started: asyncio.Future[None] | None = None

    def start(self) -> None:
        """Begin claiming and heartbeating, each restarted (and logged) if it ever dies of a bug."""
        self._supervisor.start("render-claims", self._claim_loop)
        self._supervisor.start("render-heartbeats", self._heartbeat_loop)

    def wake(self) -> None:
        """Look for due renders now (after submissions and retries)."""
        self._wake.set()

    def cancel_local(self, task_id: str) -> None:
        """Stop rendering a job this process runs (it was cancelled, or its lease was lost)."""
        running = self._running.get(task_id)
        if running is not None:
            running.cancel()

    async def stop(self) -> None:
        """Stop claiming, let renders finish within the grace period, give the rest back (idempotent)."""
        if self._stopping:
            return
        self._stopping = True
        self._wake.set()
        await self._supervisor.finish("render-claims")
        await self._supervisor.stop()
        in_flight = list(self._running.values())
        if in_flight:
            await asyncio.wait(in_flight, timeout=self.settings.shutdown_grace)
        leases = [self._leases[task_id] for task_id in self._running if task_id in self._leases]
        for job in list(self._running.values()):
            job.cancel()
        for job in in_flight:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await job
        ended, self._ended = self._ended, []
        try:
            if leases:
                for task in await self.store.release(leases):
                    self.publish(task)
            await self.store.free_slots(ended)
        except StoreError as exc:
            log.warning("could not release %d renders (their leases will expire): %s", len(leases), exc)
        self._leases.clear()

    async def _claim_loop(self) -> None:
        failures = 0
        settings = self.settings
        while not self._stopping:
            self._wake.clear()
            free = settings.slots - len(self._running)
            ended, self._ended = self._ended, []
            claimed: list[Task] = []
            try:
                if free > 0 or ended:
                    claimed = await self.store.claim(max(free, 0), settings.lease_seconds, [], settings.per_host,
                                                     ended, rendered=True)
                failures = 0
            except StoreError as exc:
                self._ended = ended + self._ended
                failures += 1
                delay = backoff_delay(failures, 0.5, 30.0)
                log.warning("claiming renders failed (%s); trying again in %.1fs", exc, delay)
                await self._pause(delay)
                continue
            for task in claimed:
                self._start(task)
            if claimed and len(claimed) == free:
                continue
            await self._pause(settings.poll_interval)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wake.wait()

    def _start(self, task: Task) -> None:
        assert task.lease_token is not None
        lease = Lease(task.id, task.lease_token)
        self._leases[task.id] = lease
        self.publish(task)
        if self._stopping:
            self._running[task.id] = asyncio.ensure_future(asyncio.sleep(0))  # given back by stop()
            return
        job = asyncio.ensure_future(self._run(task, lease))
        self._running[task.id] = job
        job.add_done_callback(lambda _job: self._finished(task.id))

    def _finished(self, task_id: str) -> None:
        self._running.pop(task_id, None)
        lease = self._leases.pop(task_id, None)
        if lease is not None:
            self._ended.append(lease)
        self._wake.set()

    async def _run(self, task: Task, lease: Lease) -> None:
        """One attempt: render, then write its outcome; a bug on the way fails the job `internal_error`."""
        try:
            if task.attempts > self.retry.max_attempts:
                self.metrics.failed.labels(Code.ABANDONED).inc()
                error = TaskError(Code.ABANDONED, f"the process running this task stopped {task.attempts - 1} times")
                self._report(task, await self.store.fail(lease, error, None))
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
            log.warning("task %s: could not record the render's outcome: the database is unavailable (%s); it will "
                        "run again after its lease expires", task.id, exc)
        except Exception as exc:
            log.error("task %s: the render failed unexpectedly; it ends as failed (internal_error)", task.id,
                      exc_info=exc)
            self.metrics.failed.labels(Code.INTERNAL_ERROR).inc()
            error = TaskError(Code.INTERNAL_ERROR, f"the attempt failed unexpectedly ({type(exc).__name__}: "
                              f"{str(exc)[:300]}); this is a bug: the server log has the details")
            with contextlib.suppress(Exception):
                self._report(task, await self.store.fail(lease, error, None))

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
            log.error("the browsers could not start: %s", exc)
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
        metrics = self.metrics
        if isinstance(outcome, FetchError):
            error = TaskError(outcome.code, outcome.message)
            if outcome.retryable and self.retry.may_retry(task.attempts):
                delay = self.retry.backoff(task.attempts)
                error.message += f"; attempt {task.attempts} of {self.retry.max_attempts}, next in {delay:.1f}s"
                metrics.retries.labels(outcome.code).inc()
                return await self.store.reschedule(lease, time.time() + delay, error, None)
            metrics.failed.labels(outcome.code).inc()
            return await self.store.fail(lease, error, None)
        status = outcome.http_status
        if status in RETRYABLE_STATUSES and self.retry.may_retry(task.attempts):
            delay = self.retry.backoff(task.attempts)
            error = TaskError(Code.HTTP_ERROR, f"HTTP {status}; attempt {task.attempts} of {self.retry.max_attempts}, "
                              f"next in {delay:.1f}s")
            metrics.retries.labels(f"http_{status}").inc()
            return await self.store.reschedule(lease, time.time() + delay, error, status)
        result = result_from_render(task, outcome)
        done = await self.store.complete(lease, result)
        if done is not None:
            metrics.completed.labels(f"{status // 100}xx").inc()
            metrics.response_bytes.observe(result.size)
        return done

    def _report(self, task: Task, outcome: Task | None) -> None:
        if outcome is not None:
            self.publish(outcome)
        else:
            log.info("task %s: lease lost (cancelled or taken over); render discarded", task.id)

    async def _heartbeat_loop(self) -> None:
        interval = max(self.settings.lease_seconds / 3, 0.05)
        while not self._stopping:
            await asyncio.sleep(interval)
            leases = list(self._leases.values())
            if not leases:
                continue
            try:
                lost = await self.store.extend(leases, self.settings.lease_seconds)
            except StoreError as exc:
                log.warning("renewing render leases failed: %s", exc)
                continue
            for task_id in lost:
                log.info("task %s: lease lost; stopping its render", task_id)
                self.cancel_local(task_id)


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
