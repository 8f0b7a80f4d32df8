"""What every pool of workers that runs claimed jobs under store leases shares, whatever runs a job.

The fetch workers (WorkerPool) and the render workers (RenderWorkers) claim jobs for their free slots, hold each
under a lease renewed by heartbeats, free its host slot through the next claim, give back what is left on stop,
and write an attempt's failure or retry the same way. Each subclass says how many slots are free, how a claimed
job runs, and when its host slot is over.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, ClassVar, Protocol

from jobqueue.backoff import delay as backoff_delay
from jobqueue.errors import Code, FetchError
from jobqueue.history.changes import change_key, compares_text, text_key
from jobqueue.hosts import HOLD_MAX, HOLD_STATUSES
from jobqueue.metrics import Metrics
from jobqueue.models import Result, Task, TaskError
from jobqueue.readable import views_document
from jobqueue.readable_service import SharedViews
from jobqueue.retry_policy import RETRYABLE_STATUSES, RetryPolicy
from jobqueue.robots import Robots
from jobqueue.store.base import Lease, Store, StoreError
from jobqueue.supervisor import Supervisor

if TYPE_CHECKING:
    from jobqueue.crawler import Crawler


class LeaseTiming(Protocol):
    """The settings a leased pool reads, whatever else its own settings hold."""

    @property
    def per_host(self) -> int: ...
    @property
    def host_delay(self) -> float: ...
    @property
    def lease_seconds(self) -> float: ...
    @property
    def poll_interval(self) -> float: ...
    @property
    def shutdown_grace(self) -> float: ...


class LeasedPool:
    """Claims jobs for free slots under leases kept alive by heartbeats; subclasses run the jobs."""

    log: ClassVar[logging.Logger]
    loops: ClassVar[tuple[str, str]]  # the supervised claim and heartbeat loops' names (as /metrics shows them)
    rendered: ClassVar[bool]  # which kind of job this pool claims
    work: ClassVar[str]  # what a job does, for the log: "fetch", "render"
    beats_when_idle: ClassVar[bool] = False  # renew (an empty list of) leases even when no job runs

    def __init__(self, store: Store, settings: LeaseTiming, retry: RetryPolicy, publish: Callable[[Task], None],
                 metrics: Metrics | None) -> None:
        self.store = store
        self.lease_settings = settings
        self.retry = retry
        self.publish = publish
        self.metrics = metrics or Metrics()
        self._wake = asyncio.Event()
        self._stopping = False
        self._supervisor = Supervisor(metrics=self.metrics)
        self._heartbeat_task: asyncio.Task[None] | None = None
        self._running: dict[str, asyncio.Future[None]] = {}
        self._leases: dict[str, Lease] = {}
        self._ended: list[Lease] = []  # jobs whose host slots are over: freed by the next claim
        self._holds: set[asyncio.Future[None]] = set()  # Retry-After holds of answers kept (not retried)
        self.readable: SharedViews | None = None  # computes a completing job's `formats` (set by the server)
        self.robots: Robots | None = None  # checks a job that obeys robots.txt before its fetch (set by the server)
        self.crawler: Crawler | None = None  # finds the pages a completed crawl page adds (set by the server)

    def start(self) -> None:
        """Begin claiming and heartbeating, each restarted (and logged) if it ever dies of a bug."""
        claims, heartbeats = self.loops
        self._supervisor.start(claims, self._claim_loop)
        self._heartbeat_task = self._supervisor.start(heartbeats, self._heartbeat_loop)

    def wake(self) -> None:
        """Look for due work now (called after submissions and retries)."""
        self._wake.set()

    def cancel_local(self, task_id: str) -> None:
        """Stop running a job this process runs (it was cancelled by a user, or its lease was lost)."""
        running = self._running.get(task_id)
        if running is not None:
            running.cancel()

    async def stop(self) -> None:
        """Stop claiming, let jobs finish within the grace period, give the rest back (idempotent)."""
        if self._stopping:
            return
        self._stopping = True
        self._wake.set()
        if self._heartbeat_task is not None:
            self._heartbeat_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat_task
        await self._supervisor.finish(self.loops[0])  # a claim in flight is committed anyway: let it land
        await self._supervisor.stop()
        in_flight = list(self._running.values())
        if in_flight:
            await asyncio.wait(in_flight, timeout=self.lease_settings.shutdown_grace)
        leases = list(self._leases.values())  # with those claimed while stopping, never started
        for job in list(self._running.values()):
            job.cancel()
        for job in in_flight:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await job
        self._leases.clear()
        ended, self._ended = self._ended, []
        try:
            if leases:
                for task in await self.store.release(leases):  # their host slots too
                    self.publish(task)
            await self.store.free_slots(ended)
        except StoreError as exc:
            self.log.warning("could not release %d tasks (their leases will expire): %s", len(leases), exc)

    def _free(self) -> int:
        """How many jobs the next claim may take."""
        raise NotImplementedError

    def _launch(self, task: Task, lease: Lease) -> asyncio.Future[None]:
        """Run a job just claimed; the returned future settles once it is over and cancelling it stops it."""
        raise NotImplementedError

    def _host_slot_over(self, task_id: str) -> None:
        """The job's host slot goes to the next claim; by default once the job is over."""
        lease = self._leases.get(task_id)
        if lease is not None:
            self._ended.append(lease)

    async def _claim_loop(self) -> None:
        failures = 0
        settings = self.lease_settings
        while not self._stopping:
            self._wake.clear()
            free = self._free()
            claimed: list[Task] = []
            ended, self._ended = self._ended, []
            try:
                if free > 0 or ended:  # the slots of jobs that ended go to this claim (or the next process's)
                    claimed = await self.store.claim(max(free, 0), settings.lease_seconds, [], settings.per_host,
                                                     ended, rendered=self.rendered, host_delay=settings.host_delay)
                failures = 0
            except BaseException as exc:
                self._ended = ended + self._ended  # freed by the next claim, or when their leases run out
                if not isinstance(exc, StoreError):
                    raise  # a bug: the supervisor logs it and starts the loop again
                failures += 1
                delay = backoff_delay(failures, 0.5, 30.0)
                self.log.warning("claiming work failed (%s); trying again in %.1fs", exc, delay)
                await self._pause(delay)
                continue
            for task in claimed:
                self._start(task)
            if claimed and len(claimed) == free:
                continue  # every slot was filled: more may be due
            await self._pause(settings.poll_interval)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):  # not wait_for: on 3.11 it can swallow a cancellation
                await self._wake.wait()

    def _start(self, task: Task) -> None:
        """Run a job just claimed; while stopping, only hold its lease, which stop() gives back."""
        assert task.lease_token is not None
        lease = self._leases[task.id] = Lease(task.id, task.lease_token)
        self.publish(task)
        if not self._stopping:
            robots = self.robots
            # a crawl's page found by a link or a sitemap was checked against robots.txt before it was queued
            obeys = robots is not None and robots.obeys(task) and not (task.crawl_id is not None and task.depth)
            self._running[task.id] = asyncio.ensure_future(self._robots_first(task, lease)) if obeys else (
                self._launch(task, lease))

    async def _robots_first(self, task: Task, lease: Lease) -> None:
        """A job that obeys robots.txt: its origin's robots.txt is read (fetched at most once per period) before
        it runs; a URL it disallows fails `blocked_by_robots`, not retried, and is never fetched."""
        assert self.robots is not None
        launched = False
        try:
            try:
                allowed = await self.robots.allows(task.url)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._report(task, await self._failed_by_bug(task, lease, exc))
                return
            if allowed:
                launched = True
                await self._launch(task, lease)
                return
            self.metrics.failed.labels(Code.BLOCKED_BY_ROBOTS).inc()
            error = TaskError(Code.BLOCKED_BY_ROBOTS, f"robots.txt of this URL's origin disallows it for the agent "
                              f"{self.robots.agent!r} (or could not be fetched: a 5xx or a network error)")
            try:
                outcome: Task | BaseException | None = await self.store.fail(lease, error, None)
            except StoreError as exc:
                outcome = exc
            self._report(task, outcome)
        finally:
            if not launched:  # its host slot, lease and place end here, as _finished ends a launched job's
                LeasedPool._host_slot_over(self, task.id)
                self._running.pop(task.id, None)
                self._leases.pop(task.id, None)
                self._wake.set()

    def _finished(self, task_id: str) -> None:
        self._host_slot_over(task_id)
        self._running.pop(task_id, None)
        self._leases.pop(task_id, None)
        self._wake.set()

    async def _heartbeat_loop(self) -> None:
        interval = max(self.lease_settings.lease_seconds / 3, 0.05)
        while not self._stopping:
            await asyncio.sleep(interval)
            leases = list(self._leases.values())
            if not leases and not self.beats_when_idle:
                continue
            try:
                lost = await self.store.extend(leases, self.lease_settings.lease_seconds)
            except StoreError as exc:
                self.log.warning("renewing leases failed: %s", exc)
                continue
            for task_id in lost:
                self.log.info("task %s: lease lost; stopping its %s", task_id, self.work)
                self.cancel_local(task_id)

    def _abandoned(self, task: Task, lease: Lease) -> Awaitable[Task | None] | None:
        """A job whose process stopped during every attempt fails `abandoned` instead of running again."""
        if task.attempts <= self.retry.max_attempts:
            return None
        self.metrics.failed.labels(Code.ABANDONED).inc()
        error = TaskError(Code.ABANDONED, f"the process running this task stopped {task.attempts - 1} times")
        return self.store.fail(lease, error, None)

    def _retry_or_fail(self, task: Task, lease: Lease, outcome: FetchError) -> Awaitable[Task | None]:
        """An attempt that failed: retried later when its error may pass and attempts remain, else failed."""
        error = TaskError(outcome.code, outcome.message)
        if outcome.retryable and self.retry.may_retry(task.attempts):
            delay = self.retry.backoff(task.attempts)
            error.message += f"; attempt {task.attempts} of {self.retry.max_attempts}, next in {delay:.1f}s"
            self.metrics.retries.labels(outcome.code).inc()
            return self.store.reschedule(lease, time.time() + delay, error, None)
        self.metrics.failed.labels(outcome.code).inc()
        return self.store.fail(lease, error, None)

    def _retry_status(self, task: Task, lease: Lease, status: int,
                      retry_after: str | None) -> Awaitable[Task | None] | None:
        """An HTTP status worth retrying (408, 425, 429, 5xx) is retried while attempts remain, after the server's
        Retry-After or the policy's backoff; None when the answer is to be kept. A 429 or 503 with Retry-After
        holds back every job of the host until then (at most an hour), whether this one is retried or not."""
        hold = self._hold_host(task, status, retry_after)
        if status not in RETRYABLE_STATUSES or not self.retry.may_retry(task.attempts):
            if hold is not None:
                held = asyncio.ensure_future(hold)
                self._holds.add(held)
                held.add_done_callback(self._holds.discard)
            return None
        asked = self.retry.retry_after(retry_after)
        delay = self.retry.backoff(task.attempts) if asked is None else asked
        error = TaskError(Code.HTTP_ERROR, f"HTTP {status}; attempt {task.attempts} of {self.retry.max_attempts}, "
                          f"next in {delay:.1f}s")
        self.metrics.retries.labels(f"http_{status}").inc()
        reschedule = self.store.reschedule(lease, time.time() + delay, error, status)
        return reschedule if hold is None else self._then(hold, reschedule)

    def _hold_host(self, task: Task, status: int, retry_after: str | None) -> Awaitable[None] | None:
        """The write that holds back the host of a 429 or 503 with a Retry-After (None for any other answer)."""
        if status not in HOLD_STATUSES:
            return None
        asked = dataclasses.replace(self.retry, max_retry_after=HOLD_MAX).retry_after(retry_after)
        if not asked:
            return None
        return self._hold(task.host, time.time() + asked)

    async def _hold(self, host: str, until: float) -> None:
        try:
            await self.store.hold_host(host, until)
        except StoreError as exc:  # the job's own retry still waits; only its host's other jobs may not
            self.log.warning("could not hold back the jobs of %s after its Retry-After: %s", host, exc)

    @staticmethod
    async def _then(first: Awaitable[None], then: Awaitable[Task | None]) -> Task | None:
        await first
        return await then

    async def _failed_by_bug(self, task: Task, lease: Lease, exc: Exception) -> Task | Exception | None:
        """A bug met by an attempt (building the result of an odd answer, deciding or writing its outcome) ends
        the attempt at once as a failure, `internal_error`, not when its lease runs out. It is not retried: the
        same answer would meet the same bug. Returns the failed job, or why even that was not recorded."""
        self.log.error("task %s: the attempt failed unexpectedly; it ends as failed (internal_error)", task.id,
                       exc_info=exc)
        self.metrics.failed.labels(Code.INTERNAL_ERROR).inc()
        error = TaskError(Code.INTERNAL_ERROR, f"the attempt failed unexpectedly ({type(exc).__name__}: "
                          f"{str(exc)[:300]}); this is a bug: the server log has the details")
        try:
            return await self.store.fail(lease, error, None)
        except Exception as again:
            return again

    async def _views_first(self, task: Task, result: Result) -> None:
        """A job with `formats` gets its body's readable views before it is recorded completed: its completion
        keeps them beside the body, so they are ready at once and its webhook carries them. A page without views
        (binary, broken, too slow) completes all the same (readable_service logs it)."""
        if task.crawl_id is not None and self.crawler is not None:  # queued by the same completion
            result.crawl_links = await self.crawler.links_for(task, result)
        views = None
        if task.formats and self.readable is not None:
            views = await self.readable.at_completion(task, result)
            result.views = views_document(views) if views is not None else None
        if self.readable is not None and compares_text(task):  # its schedule compares main texts, not bodies
            if views is not None:  # the views in hand: no second extraction
                result.change_key = text_key(views.text)
            else:
                result.change_key = await change_key(task, result, self.readable)

    def _report(self, task: Task, outcome: Task | BaseException | None) -> None:
        """A finished job's new state to live clients, or in the log why its outcome was not recorded."""
        if isinstance(outcome, StoreError):
            self.log.warning("task %s: could not record the outcome: the database is unavailable (%s); nothing "
                             "else can be recorded, so it will run again after its lease expires", task.id, outcome)
        elif isinstance(outcome, BaseException):
            self.log.error("task %s: not even its failure could be recorded (a bug); it will run again after its "
                           "lease expires", task.id, exc_info=outcome)
        elif outcome is not None:
            self.publish(outcome)
        else:
            self.log.info("task %s: lease lost (cancelled or taken over); outcome discarded", task.id)
