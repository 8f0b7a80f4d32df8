"""The worker pool: claims due tasks, fetches them with per-host limits, records the outcome."""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from jobqueue.charset import detect_encoding
from jobqueue.fetcher import Fetcher, FetchError, FetchResponse
from jobqueue.metrics import Metrics
from jobqueue.models import Result, Task, TaskError
from jobqueue.retry_policy import RETRYABLE_STATUSES, RetryPolicy
from jobqueue.store.base import Lease, Store, StoreError
from jobqueue.supervisor import Supervisor

log = logging.getLogger("jobqueue.workers")


@dataclass(frozen=True)
class PoolSettings:
    """Concurrency and lease timing of the worker pool."""

    workers: int = 32
    per_host: int = 4
    prefetch: int = 32  # claimed jobs waiting in memory (at most `workers`), so a free worker never waits
    lease_seconds: float = 60.0
    poll_interval: float = 0.5
    shutdown_grace: float = 5.0


def result_from_response(task_id: str, response: FetchResponse) -> Result:
    """Turn a fetched response into the stored result, recording the charset it decodes with."""
    content_type = response.headers.get("content-type")
    encoding, source = detect_encoding(response.body, content_type)
    media_type = content_type.split(";", 1)[0].strip().lower() if content_type else None
    return Result(
        id=task_id,
        url=response.url,
        final_url=response.final_url,
        http_status=response.http_status,
        headers=response.headers,
        content_type=media_type,
        encoding=encoding,
        encoding_source=source,
        size=len(response.body),
        truncated=False,
        elapsed_ms=response.elapsed_ms,
        fetched_at=response.fetched_at,
        sha256=response.sha256,
        redirects=response.redirects,
        timings=response.timings,
        body=response.body,
        raw_headers=response.raw_headers or None,
    )


class CompletionGroups:
    """Completions finished during one turn of the IOLoop, written as one group when the store can
    (`complete_many`), so a job costs neither its own write nor its own answer from the writer thread.
    Each job's future resolves only once its completion is committed, as with `complete`."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.grouped = getattr(store, "complete_many", None) is not None
        self._waiting: list[tuple[Lease, Result, asyncio.Future[Task | None]]] = []
        self._writing: set[asyncio.Task[None]] = set()

    def complete(self, lease: Lease, result: Result) -> asyncio.Future[Task | None]:
        """Queue one completion; it is written with the others of this turn."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Task | None] = loop.create_future()
        self._waiting.append((lease, result, future))
        if len(self._waiting) == 1:
            loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        waiting, self._waiting = self._waiting, []
        writing = asyncio.ensure_future(self._write(waiting))
        self._writing.add(writing)
        writing.add_done_callback(self._writing.discard)

    async def _write(self, waiting: list[tuple[Lease, Result, asyncio.Future[Task | None]]]) -> None:
        outcomes: list[Task | Exception | None]
        try:
            # result_from_response took each sha256 from the body just fetched: the store need not hash again
            outcomes = await self.store.complete_many([(lease, result) for lease, result, _ in waiting],
                                                      digests_checked=True)
        except Exception as exc:
            outcomes = [exc] * len(waiting)
        for (_lease, _result, future), outcome in zip(waiting, outcomes, strict=True):
            if future.done():  # its job was cancelled meanwhile; the completion was still written or refused
                continue
            if isinstance(outcome, Exception):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)


class WorkerPool:
    """Runs up to `workers` fetches at once, at most `per_host` per host, under store leases."""

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
        self._wake = asyncio.Event()
        self._stopping = False
        self._supervisor = Supervisor()
        self._loop_task: asyncio.Task[None] | None = None
        self._heartbeat_task: asyncio.Task[None] | None = None
        self._running: dict[str, asyncio.Task[None]] = {}  # fetching or writing the outcome
        self._fetching: set[str] = set()  # holding one of the `workers` fetch slots
        self._leases: dict[str, Lease] = {}
        self._host_running: Counter[str] = Counter()
        self._pending: dict[str, list[Task]] = {}  # claimed, waiting for a slot; highest priority first
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
        for host, queue in list(self._pending.items()):
            for task in list(queue):
                if task.id == task_id:
                    queue.remove(task)
                    self._leases.pop(task_id, None)
            if not queue:
                del self._pending[host]

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
            await self._loop_task  # a claim in flight is committed anyway: let it land so it is released
        await self._supervisor.stop()
        in_flight = list(self._running.values())
        if in_flight:
            await asyncio.wait(in_flight, timeout=self.settings.shutdown_grace)
        leases = list(self._leases.values())
        for task in list(self._running.values()):
            task.cancel()
        for task in in_flight:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._leases.clear()
        self._pending.clear()
        if leases:
            try:
                for task in await self.store.release(leases):
                    self.publish(task)
            except StoreError as exc:
                log.warning("could not release %d tasks (their leases will expire): %s", len(leases), exc)
        self.fetcher.close()

    def _saturated_hosts(self) -> list[str]:
        """Hosts that already have a full round waiting: claiming more of them would only hoard."""
        limit = self.settings.per_host
        return sorted(h for h, q in self._pending.items() if len(q) + self._host_running[h] >= 2 * limit)

    async def _claim_loop(self) -> None:
        failures = 0
        while not self._stopping:
            self._wake.clear()
            writing = len(self._running) - len(self._fetching)
            # a small buffer keeps priorities honest: a job claimed early cannot be overtaken by a later,
            # higher-priority one, so it holds at most one round of work
            prefetch = min(self.settings.prefetch, self.settings.workers)
            free = self.settings.workers + prefetch - (len(self._leases) - writing)
            claimed: list[Task] = []
            if free > 0:
                try:
                    claimed = await self.store.claim(free, self.settings.lease_seconds, self._saturated_hosts())
                    failures = 0
                except StoreError as exc:
                    failures += 1
                    delay = min(30.0, 0.5 * 2**failures)
                    log.warning("claiming work failed (%s); trying again in %.1fs", exc, delay)
                    await self._pause(delay)
                    continue
                except Exception:  # a bug must not stop the workers for good
                    log.exception("claiming work failed unexpectedly; trying again in 1s")
                    await self._pause(1.0)
                    continue
                for task in claimed:
                    self._dispatch(task)
            if claimed and len(claimed) == free and len(self._fetching) < self.settings.workers:
                continue
            await self._pause(self.settings.poll_interval)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):  # not wait_for: on 3.11 it can swallow a cancellation
                await self._wake.wait()

    def _dispatch(self, task: Task) -> None:
        assert task.lease_token is not None
        self._leases[task.id] = Lease(task.id, task.lease_token)
        self.publish(task)
        waiting = self._pending.setdefault(task.host, [])
        waiting.insert(bisect.bisect_right(waiting, -task.priority, key=lambda t: -t.priority), task)
        self._fill()

    def _fill(self) -> None:
        """Start waiting jobs while fetch slots are free, highest priority first, within each host's limit.

        Outcomes still being written hold no fetch slot, but at most `workers` of them may wait for
        the database at once, which bounds the bodies held in memory.
        """
        if self._stopping:
            return
        workers, per_host = self.settings.workers, self.settings.per_host
        for host in sorted(self._pending, key=lambda h: -self._pending[h][0].priority):
            queue = self._pending[host]
            while queue and self._host_running[host] < per_host and self._has_slot(workers):
                self._start(queue.pop(0))
            if not queue:
                del self._pending[host]
            if not self._has_slot(workers):
                return

    def _has_slot(self, workers: int) -> bool:
        return len(self._fetching) < workers and len(self._running) < 2 * workers

    def _start(self, task: Task) -> None:
        self._host_running[task.host] += 1
        self._fetching.add(task.id)
        self._running[task.id] = asyncio.ensure_future(self._process(task))

    def _fetch_done(self, task: Task) -> None:
        """The fetch is over: its slot (and its host's) goes to the next job while the outcome is written."""
        if task.id not in self._fetching:
            return
        self._fetching.discard(task.id)
        self._host_running[task.host] -= 1
        if self._host_running[task.host] <= 0:
            del self._host_running[task.host]
        self._fill()
        self._wake.set()

    def _finished(self, task: Task) -> None:
        self._fetch_done(task)
        self._running.pop(task.id, None)
        self._leases.pop(task.id, None)
        self._fill()
        self._wake.set()

    async def _process(self, task: Task) -> None:
        lease = self._leases[task.id]
        try:
            updated = await self._attempt(task, lease)
        except asyncio.CancelledError:
            return
        except StoreError as exc:
            log.warning("task %s: could not record the outcome (%s); it will run again", task.id, exc)
            return
        except Exception:
            log.exception("task %s: unexpected error; it will run again after its lease", task.id)
            return
        finally:
            self._finished(task)
        if updated is not None:
            self.publish(updated)
        else:
            log.info("task %s: lease lost (cancelled or taken over); outcome discarded", task.id)

    async def _attempt(self, task: Task, lease: Lease) -> Task | None:
        if task.attempts > self.retry.max_attempts:
            error = TaskError("abandoned", f"the process running this task stopped {task.attempts - 1} times")
            self.metrics.failed.labels("abandoned").inc()
            return await self.store.fail(lease, error, None)
        metrics = self.metrics
        started = time.perf_counter()
        try:
            response = await self.fetcher.fetch(task.url, task.fetch)
        except FetchError as exc:
            self._fetch_done(task)
            metrics.fetch_seconds.observe(time.perf_counter() - started)
            error = TaskError(exc.code, exc.message)
            if exc.retryable and self.retry.may_retry(task.attempts):
                delay = self.retry.backoff(task.attempts)
                error.message += f"; attempt {task.attempts} of {self.retry.max_attempts}, next in {delay:.1f}s"
                metrics.retries.labels(exc.code).inc()
                return await self.store.reschedule(lease, time.time() + delay, error, None)
            metrics.failed.labels(exc.code).inc()
            return await self.store.fail(lease, error, None)
        self._fetch_done(task)
        metrics.fetch_seconds.observe(time.perf_counter() - started)
        status = response.http_status
        if status in RETRYABLE_STATUSES and self.retry.may_retry(task.attempts):
            delay = self.retry.retry_after(response.headers.get("retry-after"))
            if delay is None:
                delay = self.retry.backoff(task.attempts)
            error = TaskError(
                "http_error",
                f"HTTP {status}; attempt {task.attempts} of {self.retry.max_attempts}, next in {delay:.1f}s",
            )
            metrics.retries.labels(f"http_{status}").inc()
            return await self.store.reschedule(lease, time.time() + delay, error, status)
        completions = self._completions
        result = result_from_response(task.id, response)
        if completions.grouped:
            updated = await completions.complete(lease, result)
        else:
            updated = await self.store.complete(lease, result)
        if updated is not None:
            metrics.completed.labels(f"{status // 100}xx").inc()
            metrics.response_bytes.observe(result.size)
        return updated

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
            except Exception:  # a bug must not stop the heartbeat for good
                log.exception("renewing leases failed unexpectedly")
                continue
            for task_id in lost:
                log.info("task %s: lease lost; stopping its fetch", task_id)
                self.cancel_local(task_id)
