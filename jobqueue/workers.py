"""The worker pool: claims due tasks for its free fetch slots, fetches them, records the outcome.

A job is claimed only when it can start at once: the claim asks for as many jobs as there are free
fetch slots, and the store hands out a job only with one of its host's slots (--per-host, counted in
the database, so the limit holds across processes). Nothing waits in memory, so a job submitted later
with a higher priority is the next to start, and `running` means fetching (or recording the outcome).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from jobqueue.backoff import delay as backoff_delay
from jobqueue.completions import CompletionGroups, result_from_response
from jobqueue.fetcher import Fetcher, FetchError, FetchResponse
from jobqueue.metrics import Metrics
from jobqueue.models import Task, TaskError
from jobqueue.retry_policy import RETRYABLE_STATUSES, RetryPolicy
from jobqueue.store.base import Lease, Store, StoreError
from jobqueue.supervisor import Supervisor

log = logging.getLogger("jobqueue.workers")


@dataclass(frozen=True)
class PoolSettings:
    """Concurrency and lease timing of the worker pool."""

    workers: int = 32
    per_host: int = 4  # requests in flight per host across every process on the database
    lease_seconds: float = 60.0
    poll_interval: float = 0.5
    shutdown_grace: float = 5.0


class WorkerPool:
    """Runs up to `workers` fetches at once, at most `per_host` per host (the store's slots), under store leases."""

    def __init__(
        self,
        store: Store,
        fetcher: Fetcher,
        settings: PoolSettings,
        retry: RetryPolicy,
        publish: Callable[[Task], None],
        metrics: Metrics | None = None,
    ) -> None:
        self.store = store
        self.metrics = metrics or Metrics()
        self.fetcher = fetcher
        self.settings = settings
        self.retry = retry
        self.publish = publish
        self.fetched: Callable[[Task, float], None] | None = None  # told each fetch attempt's time (live statistics)
        self._wake = asyncio.Event()
        self._stopping = False
        self._supervisor = Supervisor(metrics=self.metrics)
        self._loop_task: asyncio.Task[None] | None = None
        self._heartbeat_task: asyncio.Task[None] | None = None
        self._running: dict[str, asyncio.Future[None]] = {}  # fetching or writing the outcome
        self._fetching: set[str] = set()  # holding one of the `workers` fetch slots
        self._leases: dict[str, Lease] = {}
        self._ended: list[Lease] = []  # fetches that are over: their host slots are freed before the next claim
        self._completions = CompletionGroups(store)

    def start(self) -> None:
        """Begin claiming and heartbeating, each restarted (and logged) if it ever dies of a bug."""
        self._loop_task = self._supervisor.start("claims", self._claim_loop)
        self._heartbeat_task = self._supervisor.start("heartbeats", self._heartbeat_loop)

    def wake(self) -> None:
        """Look for due work now (called after submissions and retries)."""
        self._wake.set()

    def cancel_local(self, task_id: str) -> None:
        """Stop fetching a task this process runs (it was cancelled by a user)."""
        running = self._running.get(task_id)
        if running is not None:
            running.cancel()

    async def stop(self) -> None:
        """Stop claiming, let fetches finish within the grace period, give the rest back (idempotent)."""
        if self._stopping:
            return
        self._stopping = True
        self._wake.set()
        if self._heartbeat_task is not None:
            self._heartbeat_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat_task
        if self._loop_task is not None:
            # a claim in flight is committed anyway: let it land so it is released
            await self._supervisor.finish("claims")
        await self._supervisor.stop()
        in_flight = list(self._running.values())
        if in_flight:
            await asyncio.wait(in_flight, timeout=self.settings.shutdown_grace)
        leases = list(self._leases.values())
        for job in list(self._running.values()):
            job.cancel()
        for job in in_flight:
            with contextlib.suppress(asyncio.CancelledError):
                await job
        self._leases.clear()
        ended, self._ended = self._ended, []
        try:
            if leases:
                for task in await self.store.release(leases):  # their host slots too
                    self.publish(task)
            await self.store.free_slots(ended)
        except StoreError as exc:
            log.warning("could not release %d tasks (their leases will expire): %s", len(leases), exc)
        self.fetcher.close()

    def _free(self) -> int:
        """Fetch slots free now. Outcomes still being written hold none, but at most `workers` of them may wait
        for the database at once, which bounds the bodies held in memory."""
        workers = self.settings.workers
        return min(workers - len(self._fetching), 2 * workers - len(self._running))

    async def _claim_loop(self) -> None:
        failures = 0
        settings = self.settings
        while not self._stopping:
            self._wake.clear()
            free = self._free()
            claimed: list[Task] = []
            ended, self._ended = self._ended, []
            try:
                if free > 0 or ended:  # the slots of fetches that ended go to this claim (or the next process's)
                    claimed = await self.store.claim(max(free, 0), settings.lease_seconds, [], settings.per_host,
                                                     ended)
                failures = 0
            except BaseException as exc:
                self._ended = ended + self._ended  # freed by the next claim, or when their leases run out
                if not isinstance(exc, StoreError):
                    raise  # a bug: the supervisor logs it and starts the loop again
                failures += 1
                delay = backoff_delay(failures, 0.5, 30.0)
                log.warning("claiming work failed (%s); trying again in %.1fs", exc, delay)
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
        """Fetch a job just claimed (it holds a fetch slot and a host slot); while stopping, only hold its lease,
        which stop() gives back."""
        assert task.lease_token is not None
        self._leases[task.id] = Lease(task.id, task.lease_token)
        self.publish(task)
        if self._stopping:
            return
        self._fetching.add(task.id)
        self._running[task.id] = self._run(task)

    def _run(self, task: Task) -> asyncio.Future[None]:
        """Run a job as a chain of callbacks rather than as an asyncio task of its own: its fetch, then the write
        of its outcome (for a completion, a share of its turn's group write). The returned future settles once
        the job is over; cancelling it drops the step under way."""
        lease = self._leases[task.id]
        job: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        step: list[asyncio.Future[Any]] = []
        started = time.perf_counter()

        recovering = False  # writing the failure of a bug met on the way (at most once)

        def fetched(outcome: FetchResponse | Exception) -> None:
            nonlocal recovering
            if job.done():
                return
            try:
                if not isinstance(outcome, FetchResponse | FetchError):
                    raise outcome
                write: asyncio.Future[Any] = asyncio.ensure_future(self._record(task, lease, outcome, started))
            except Exception as exc:
                self._fetch_done(task)
                recovering = True
                write = asyncio.ensure_future(self._failed_by_bug(task, lease, exc))
            then(write)

        def then(write: asyncio.Future[Any]) -> None:
            step[:] = [write]
            write.add_done_callback(written)

        def written(write: asyncio.Future[Any]) -> None:
            nonlocal recovering
            if job.done():
                return
            if write.cancelled():
                job.cancel()
                return
            failure = write.exception()
            if isinstance(failure, Exception) and not isinstance(failure, StoreError) and not recovering:
                recovering = True  # a bug writing the outcome: the job fails with internal_error
                self._fetch_done(task)
                then(asyncio.ensure_future(self._failed_by_bug(task, lease, failure)))
                return
            self._finished(task)
            job.set_result(None)
            self._report(task, failure or write.result())

        def ended(_job: asyncio.Future[None]) -> None:
            if job.cancelled():
                for future in step:
                    future.cancel()
                self._finished(task)

        job.add_done_callback(ended)
        if task.attempts > self.retry.max_attempts:
            error = TaskError("abandoned", f"the process running this task stopped {task.attempts - 1} times")
            self.metrics.failed.labels("abandoned").inc()
            then(asyncio.ensure_future(self.store.fail(lease, error, None)))
        else:
            step.append(self._fetch(task, fetched))
        return job

    def _fetch(self, task: Task, fetched: Callable[[FetchResponse | Exception], None]) -> asyncio.Future[Any]:
        """Start a job's fetch; `fetched` hears its response or error unless the returned future is cancelled
        first. Most jobs are fetched by callbacks (`Fetcher.fetch_soon`); one that names a profile or sends its
        headers through redirects (followed hop by hop) by the `Fetcher.fetch` coroutine, as a task."""
        if self.fetcher.fetches_soon(task.fetch):
            with contextlib.suppress(Exception):  # the client is closed, say: `fetch` meets it again, reports it
                return self.fetcher.fetch_soon(task.url, task.fetch, fetched)
        fetch = asyncio.ensure_future(self.fetcher.fetch(task.url, task.fetch))

        def done(fetch: asyncio.Future[FetchResponse]) -> None:
            if fetch.cancelled():
                return
            error = fetch.exception()
            fetched(error if isinstance(error, Exception) else fetch.result())

        fetch.add_done_callback(done)
        return fetch

    def _fetch_done(self, task: Task) -> None:
        """The fetch is over: its slot (and its host's) goes to the next job while the outcome is written."""
        if task.id not in self._fetching:
            return
        self._fetching.discard(task.id)
        lease = self._leases.get(task.id)
        if lease is not None:
            self._ended.append(lease)
        self._wake.set()

    def _finished(self, task: Task) -> None:
        self._fetch_done(task)
        self._running.pop(task.id, None)
        self._leases.pop(task.id, None)
        self._wake.set()

    async def _failed_by_bug(self, task: Task, lease: Lease, exc: Exception) -> Task | Exception | None:
        """A bug met by an attempt (building the result of an odd response, deciding or writing its outcome) ends
        the attempt at once as a failure, `internal_error`, not when its lease runs out. It is not retried: the
        same response would meet the same bug. Returns the failed job, or why even that was not recorded."""
        log.error("task %s: the attempt failed unexpectedly; it ends as failed (internal_error)", task.id,
                  exc_info=exc)
        self.metrics.failed.labels("internal_error").inc()
        error = TaskError("internal_error", f"the attempt failed unexpectedly ({type(exc).__name__}: "
                          f"{str(exc)[:300]}); this is a bug: the server log has the details")
        try:
            return await self.store.fail(lease, error, None)
        except Exception as again:
            return again

    def _report(self, task: Task, outcome: Task | BaseException | None) -> None:
        """A finished job's new state to live clients, or in the log why its outcome was not recorded."""
        if isinstance(outcome, StoreError):
            log.warning("task %s: could not record the outcome: the database is unavailable (%s); nothing else can "
                        "be recorded, so it will run again after its lease expires", task.id, outcome)
        elif isinstance(outcome, BaseException):
            log.error("task %s: not even its failure could be recorded (a bug); it will run again after its lease "
                      "expires", task.id, exc_info=outcome)
        elif outcome is not None:
            self.publish(outcome)
        else:
            log.info("task %s: lease lost (cancelled or taken over); outcome discarded", task.id)

    def _record(self, task: Task, lease: Lease, outcome: FetchResponse | FetchError,
                started: float) -> Awaitable[Task | None]:
        """Free the job's fetch slot and start writing what its fetch brought: a retry later, a failure or the
        result (a completion joins its turn's group write when the store can)."""
        self._fetch_done(task)
        metrics = self.metrics
        seconds = time.perf_counter() - started
        metrics.fetch_seconds.observe(seconds)
        if self.fetched is not None:
            self.fetched(task, seconds)
        if isinstance(outcome, FetchError):
            error = TaskError(outcome.code, outcome.message)
            if outcome.retryable and self.retry.may_retry(task.attempts):
                delay = self.retry.backoff(task.attempts)
                error.message += f"; attempt {task.attempts} of {self.retry.max_attempts}, next in {delay:.1f}s"
                metrics.retries.labels(outcome.code).inc()
                return self.store.reschedule(lease, time.time() + delay, error, None)
            metrics.failed.labels(outcome.code).inc()
            return self.store.fail(lease, error, None)
        status = outcome.http_status
        if status in RETRYABLE_STATUSES and self.retry.may_retry(task.attempts):
            asked = self.retry.retry_after(outcome.headers.get("retry-after"))
            delay = self.retry.backoff(task.attempts) if asked is None else asked
            error = TaskError(
                "http_error",
                f"HTTP {status}; attempt {task.attempts} of {self.retry.max_attempts}, next in {delay:.1f}s",
            )
            metrics.retries.labels(f"http_{status}").inc()
            return self.store.reschedule(lease, time.time() + delay, error, status)
        result = result_from_response(task.id, outcome)
        completions = self._completions
        written = completions.complete(lease, result) if completions.grouped else asyncio.ensure_future(
            self.store.complete(lease, result))

        def count(written: asyncio.Future[Task | None]) -> None:
            if not written.cancelled() and written.exception() is None and written.result() is not None:
                metrics.completed.labels(f"{status // 100}xx").inc()
                metrics.response_bytes.observe(result.size)

        written.add_done_callback(count)
        return written

    async def _heartbeat_loop(self) -> None:
        interval = max(self.settings.lease_seconds / 3, 0.05)
        while not self._stopping:
            await asyncio.sleep(interval)
            leases = list(self._leases.values())
            try:
                lost = await self.store.extend(leases, self.settings.lease_seconds)
            except StoreError as exc:
                log.warning("renewing leases failed: %s", exc)
                continue
            for task_id in lost:
                log.info("task %s: lease lost; stopping its fetch", task_id)
                self.cancel_local(task_id)
