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

from jobqueue.completions import CompletionGroups, result_from_response
from jobqueue.fetcher import Fetcher, FetchError, FetchResponse
from jobqueue.history.changes import compares_text
from jobqueue.leased_pool import LeasedPool
from jobqueue.metrics import Metrics
from jobqueue.models import Result, Task
from jobqueue.retry_policy import RetryPolicy
from jobqueue.store.base import Lease, Store, StoreError


@dataclass(frozen=True)
class PoolSettings:
    """Concurrency and lease timing of the worker pool."""

    workers: int = 32
    per_host: int = 4  # requests in flight per host across every process on the database
    host_delay: float = 0.0  # seconds between two fetch starts at a host without a min_delay_ms of its own
    lease_seconds: float = 60.0
    poll_interval: float = 0.5
    shutdown_grace: float = 5.0


class WorkerPool(LeasedPool):
    """Runs up to `workers` fetches at once, at most `per_host` per host (the store's slots), under store leases."""

    log = logging.getLogger("jobqueue.workers")
    loops = ("claims", "heartbeats")
    rendered = False
    work = "fetch"
    beats_when_idle = True  # an unavailable database shows in the log even while no job runs

    def __init__(
        self,
        store: Store,
        fetcher: Fetcher,
        settings: PoolSettings,
        retry: RetryPolicy,
        publish: Callable[[Task], None],
        metrics: Metrics | None = None,
    ) -> None:
        super().__init__(store, settings, retry, publish, metrics)
        self.fetcher = fetcher
        self.settings = settings
        self.fetched: Callable[[Task, float], None] | None = None  # told each fetch attempt's time (live statistics)
        self._fetching: set[str] = set()  # holding one of the `workers` fetch slots
        self._completions = CompletionGroups(store)

    async def stop(self) -> None:
        """Stop claiming, let fetches finish within the grace period, give the rest back, close the client."""
        if self._stopping:
            return
        await super().stop()
        self.fetcher.close()

    def _free(self) -> int:
        """Fetch slots free now. Outcomes still being written hold none, but at most `workers` of them may wait
        for the database at once, which bounds the bodies held in memory."""
        workers = self.settings.workers
        return min(workers - len(self._fetching), 2 * workers - len(self._running))

    def _launch(self, task: Task, lease: Lease) -> asyncio.Future[None]:
        """Fetch a job just claimed: it holds a fetch slot and a host slot."""
        self._fetching.add(task.id)
        return self._run(task)

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
            self._finished(task.id)
            job.set_result(None)
            self._report(task, failure or write.result())

        def ended(_job: asyncio.Future[None]) -> None:
            if job.cancelled():
                for future in step:
                    future.cancel()
                self._finished(task.id)

        job.add_done_callback(ended)
        abandoned = self._abandoned(task, lease)
        if abandoned is not None:
            then(asyncio.ensure_future(abandoned))
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
        self._host_slot_over(task.id)

    def _host_slot_over(self, task_id: str) -> None:
        if task_id not in self._fetching:
            return
        self._fetching.discard(task_id)
        super()._host_slot_over(task_id)
        self._wake.set()

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
            return self._retry_or_fail(task, lease, outcome)
        status = outcome.http_status
        retry = self._retry_status(task, lease, status, outcome.headers.get("retry-after"))
        if retry is not None:
            return retry
        result = result_from_response(task.id, outcome)
        completions = self._completions
        written: asyncio.Future[Task | None]
        if ((task.formats or compares_text(task)) and self.readable is not None) or (
                task.crawl_id is not None and self.crawler is not None):  # jobs that need their page read first
            written = asyncio.ensure_future(self._complete_with_views(task, lease, result))
        else:
            written = completions.complete(lease, result) if completions.grouped else asyncio.ensure_future(
                self.store.complete(lease, result))

        def count(written: asyncio.Future[Task | None]) -> None:
            if not written.cancelled() and written.exception() is None and written.result() is not None:
                metrics.completed.labels(f"{status // 100}xx").inc()
                metrics.response_bytes.observe(result.size)

        written.add_done_callback(count)
        return written

    async def _complete_with_views(self, task: Task, lease: Lease, result: Result) -> Task | None:
        """The completion of a job with `formats` (or a run compared by its main text): its views first (off the
        IOLoop, bounded), then its write."""
        await self._views_first(task, result)
        completions = self._completions
        if completions.grouped:
            return await completions.complete(lease, result)
        return await self.store.complete(lease, result)
