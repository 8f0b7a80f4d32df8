"""The operations the API offers, over the store, the worker pool and the event publisher."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from jobqueue.access import RateLimiter
from jobqueue.addresses import AddressPolicy
from jobqueue.bulk import BulkOutcome, BulkRequest, run_bulk
from jobqueue.errors import BadRequest, Code, CodedError, NotFound, QueueFull, RateLimited, StoreError, TooManySchedules
from jobqueue.filters import parse_id as parse_id  # re-exported for the web layer
from jobqueue.filters import parse_status as parse_status
from jobqueue.idempotency import IdempotencyKey, IdempotentAdd, StoredAnswer
from jobqueue.metrics import Metrics
from jobqueue.models import QUEUED, STATUSES, Batch, Crawl, Page, Result, Task, TaskIds
from jobqueue.spec import SpecLimits
from jobqueue.store.base import ALL_TASKS, NewTask, Store, TaskFilter
from jobqueue.submission import MAX_BATCH_URLS as MAX_BATCH_URLS  # re-exported for the web layer
from jobqueue.submission import Submission, SubmissionReader
from jobqueue.submit_group import SubmitGroup
from jobqueue.webhooks.delivery import DELIVERY_STATUSES, Delivery, DeliveryFilter

if TYPE_CHECKING:
    from jobqueue.crawler import Crawler

log = logging.getLogger("jobqueue.service")
MAX_BATCH = 1000  # URLs per POST /queue_tasks
BATCH_CHUNK = 2000  # jobs per commit while a batch is stored
BULK_CHUNK = 500  # jobs per commit when a batch is cancelled or retried
STORING_SECONDS = 300.0  # a batch not sealed by then was abandoned by a dead process
MAX_PAGE = 1000
DEFAULT_PAGE = 50


@dataclass
class ResultView:
    """A result with its body decoded for the JSON API."""

    result: Result
    text: str | None


def decode_stored(result: Result) -> str | None:
    """Decode a stored body with the encoding recorded when it was fetched."""
    if result.body is None or result.encoding is None:
        return None
    text = result.body.decode(result.encoding, errors="replace")
    return text[1:] if text.startswith("\ufeff") else text


def ascii_int(raw: str, max_digits: int = 18) -> int | None:
    """A whole number written in ASCII digits, else None: str.isdigit() also takes '²' and '٣'."""
    if not raw or len(raw) > max_digits or not raw.isascii() or not raw.isdigit():
        return None
    return int(raw)


def parse_limit(raw: str | None) -> int:
    """Read `?limit=`: absent means 50; anything but a whole number from 1 to 1000 (even empty) is refused."""
    if raw is None:
        return DEFAULT_PAGE
    value = ascii_int(raw)
    if value is None or not 1 <= value <= MAX_PAGE:
        raise BadRequest(Code.INVALID_LIMIT, f"limit must be a whole number from 1 to {MAX_PAGE} in ASCII digits "
                         f"(leave it out for {DEFAULT_PAGE})")
    return value


def parse_delivery_status(raw: str | None) -> str | None:
    """Read `?status=` of the deliveries listing."""
    if raw is None:
        return None
    if raw not in DELIVERY_STATUSES:
        raise BadRequest(Code.INVALID_STATUS, f"status must be one of {', '.join(DELIVERY_STATUSES)} (leave it out "
                         "for all)")
    return raw


class JobService:
    """Submit, inspect, cancel and retry tasks; every state change is published once."""

    def __init__(
        self,
        store: Store,
        policy: AddressPolicy,
        publish: Callable[[Task], None],
        wake_workers: Callable[[], None],
        cancel_local: Callable[[str], None],
        limiter: RateLimiter | None = None,
        max_queued: int = 1_000_000,
        metrics: Metrics | None = None,
        limits: SpecLimits | None = None,
        batch_sealed: Callable[[str], None] = lambda _batch_id: None,
        deleted: Callable[[str], None] = lambda _task_id: None,
        max_schedules: int = 0,
    ) -> None:
        self.store = store
        self.policy = policy
        self.publish = publish
        self.wake_workers = wake_workers
        self.cancel_local = cancel_local
        self.limiter = limiter
        self.max_queued = max_queued
        self.max_schedules = max_schedules  # active recurring fetches at most (0: no limit)
        self.metrics = metrics
        self.ids = TaskIds()
        self.group = SubmitGroup(store)  # requests arriving together share one store.add
        self.deleted = deleted  # announces a deleted job to live clients
        self.batch_sealed = batch_sealed  # lets live clients hear of a batch that finished before it was sealed
        self.reader = SubmissionReader(policy, limits or SpecLimits(), self.ids)
        self.crawler: Crawler | None = None  # starts crawls and follows their pages' links (set by the server)
        self._queued_seen = (0.0, 0)  # (when, queued count): re-read at most twice a second

    async def submit(self, submission: Submission, client: str = "",
                     idempotent: IdempotentAdd | None = None) -> list[Task]:
        """Store new tasks durably, announce them and wake the workers; only stored URLs spend the rate limit."""
        new = submission.tasks
        await self._admit_schedules(new)
        await self._admit(client, len(new))
        try:
            tasks = await (self.group.add(new) if idempotent is None else self.store.add(new, idempotent))
        except Exception:  # the store refused: nothing was queued, so nothing is charged
            self._refund(client, len(new))
            raise
        self._announce(tasks)
        return tasks

    @property
    def limits(self) -> SpecLimits:
        """The server settings job specs are checked against, which the OpenAPI document states too."""
        return self.reader.limits

    def new_batch_id(self) -> str:
        """An id for a batch about to be read (its jobs carry it from the start)."""
        return self.ids.new()

    async def submit_batch(self, submission: Submission, batch_id: str, client: str = "",
                           key: IdempotencyKey | None = None,
                           render: Callable[[Batch], StoredAnswer] | None = None) -> Batch:
        """Store a batch in chunks (each its own commit, so other writers and the IOLoop go on between them),
        then seal it; a keyed answer is kept in the sealing commit. Until sealed the batch is invisible,
        and if this process dies first it is removed with its jobs (the request never got its 201)."""
        new = submission.tasks
        await self._admit_schedules(new)
        await self._admit(client, len(new))
        try:
            started = await self.store.create_batch(batch_id, len(new), submission.tags, STORING_SECONDS,
                                                    submission.webhook)
            counts = dict.fromkeys(STATUSES, 0)
            for start in range(0, len(new), BATCH_CHUNK):
                tasks = await self.store.add(new[start:start + BATCH_CHUNK])
                for task in tasks:
                    counts[task.status] += 1
                self._announce(tasks)
            batch = Batch(batch_id, started.created_at, len(new), counts, None, submission.tags)
            answer = (key, render(batch)) if key is not None and render is not None else None
            await self.store.seal_batch(batch_id, answer)
        except Exception:
            self._refund(client, len(new))
            await self._drop_unfinished_batch(batch_id)
            raise
        self.batch_sealed(batch_id)
        return batch

    async def _drop_unfinished_batch(self, batch_id: str) -> None:
        """The request failed: remove what was stored of it now (or, if the store is down, housekeeping will)."""
        try:
            await self.store.abandon_batch(batch_id)
            while await self.store.drop_abandoned_batches():
                pass
        except StoreError as exc:
            log.warning("batch %s: its stored jobs are removed later (%s)", batch_id, exc)

    async def _admit(self, client: str, count: int) -> None:
        """Refuse a submission the queue cannot take, then charge the client's rate limit."""
        if await self._queued() + count > self.max_queued:
            raise QueueFull(f"the queue already holds {self.max_queued} jobs or close to it; try again when "
                            "it has drained (GET /queue_tasks shows the counts)")
        limiter = self.limiter
        if limiter is not None:
            wait = limiter.take(client, count)
            if wait is not None:
                if self.metrics is not None:
                    self.metrics.rate_limited.inc()
                raise RateLimited(wait, limiter.rate, limiter.burst)

    async def _admit_schedules(self, new: list[NewTask]) -> None:
        """Refuse recurring jobs beyond --max-schedules, counting the active schedules every process started."""
        asked = sum(1 for task in new if task.spec.every is not None)
        if not asked or not self.max_schedules:
            return
        active = await self.store.count_active_schedules(self.max_schedules + 1)
        if active + asked > self.max_schedules:
            raise TooManySchedules(self.max_schedules, active, asked)

    def _refund(self, client: str, count: int) -> None:
        if self.limiter is not None:
            self.limiter.refund(client, count)

    def _announce(self, tasks: list[Task]) -> None:
        queued = sum(1 for t in tasks if t.status == QUEUED)
        self._queued_seen = (self._queued_seen[0], self._queued_seen[1] + queued)
        if self.metrics is not None:
            self.metrics.submitted.inc(len(tasks))
        for task in tasks:
            self.publish(task)
        if queued:
            self.wake_workers()

    async def _queued(self) -> int:
        when, queued = self._queued_seen
        now = time.monotonic()
        if now - when > 0.5:
            queued = (await self.store.counts())["queued"]
            self._queued_seen = (now, queued)
        return queued

    async def get(self, task_id: str) -> Task | None:
        """One task, or None."""
        return await self.store.get(task_id)

    async def bulk(self, request: BulkRequest) -> BulkOutcome:
        """Cancel, retry or delete every job a filter matches (or the jobs named), a chunk per write."""
        self.check_filter(request.where)
        outcome = await run_bulk(self.store, request, self.publish, self.deleted, self.cancel_local)
        if request.action == "retry" and outcome.changed:
            self.wake_workers()
        return outcome

    def check_filter(self, where: TaskFilter) -> None:
        """Refuse a filter this database cannot apply, rather than silently ignoring it."""
        can = self.store.capabilities.list_filters
        missing = [name for name in where.__dataclass_fields__ if getattr(where, name) is not None and name not in can]
        if missing:
            what = "full-text search (q)" if missing[0] == "q" else f"the {missing[0]} filter"
            raise BadRequest(Code.NOT_SUPPORTED, f"{what} is not available with the {self.store.name} database of this "
                             f"server; it can filter by {', '.join(can)}")

    async def cancel(self, task_id: str) -> Task:
        """Cancel an unfinished task and stop its fetch if this process runs it."""
        task = await self.store.cancel(task_id)
        self.cancel_local(task_id)
        self.publish(task)
        return task

    async def retry(self, task_id: str) -> Task:
        """Queue a finished task again."""
        task = await self.store.retry(task_id)
        self.publish(task)
        self.wake_workers()
        return task

    async def result(self, task_id: str) -> ResultView | None:
        """A result with its decoded body, or None."""
        result = await self.store.get_result(task_id, with_body=True)
        if result is None:
            return None
        return ResultView(result, decode_stored(result))

    async def raw_body(self, task_id: str) -> Result | None:
        """A result with its raw bytes, for /body."""
        return await self.store.get_result(task_id, with_body=True)

    async def artifact(self, task_id: str, kind: str) -> bytes:
        """A rendered result's screenshot or PDF: NotFound when there is no such job, 404 not_captured when it
        has none (not rendered, not asked in `capture`, or not completed)."""
        data = await self.store.get_artifact(task_id, kind)
        if data is not None:
            return data
        task = await self.store.get(task_id)
        if task is None:
            raise NotFound(task_id)
        why = ("it is not rendered" if task.render is None
               else f"its capture does not ask for a {kind}" if not any(c.startswith(kind) for c in task.render.capture)
               else f"it is {task.status}")
        raise CodedError(f"task {task_id} has no {kind}: {why}", Code.NOT_CAPTURED)

    async def results(self, limit: int, cursor: str | None, where: TaskFilter = ALL_TASKS) -> Page:
        """A page of results without bodies, narrowed by their jobs' fields."""
        if where.empty:
            return await self.store.list_results(limit, cursor)
        self.check_filter(where)
        return await self.store.list_results(limit, cursor, where)

    async def batch(self, batch_id: str) -> Batch:
        """One batch with its counts (NotFound)."""
        batch = await self.store.get_batch(batch_id)
        if batch is None:
            raise NotFound(batch_id, "batch")
        return batch

    async def batches(self, limit: int, cursor: str | None) -> Page:
        """A page of batches, newest first."""
        return await self.store.list_batches(limit, cursor)

    async def cancel_batch(self, batch_id: str) -> Batch:
        """Cancel every unfinished job of a batch, a chunk per commit, each change announced."""
        while tasks := await self.store.cancel_batch(batch_id, BULK_CHUNK):
            for task in tasks:
                self.cancel_local(task.id)
                self.publish(task)
        return await self.batch(batch_id)

    async def start_crawl(self, body: Any, client: str | None = None) -> Crawl:
        """Start a crawl (jobqueue/crawler.py checks the request); its seeds are announced like any new jobs and,
        when a `client` asks, charged to its rate limit as submitted jobs are (a refused request is refunded)."""
        if self.crawler is None:
            raise BadRequest(Code.INVALID_REQUEST, "this server does not crawl")
        seeds = body.get("urls") if isinstance(body, dict) else None
        cost = len(seeds) if isinstance(seeds, list) and seeds else 1
        if client is not None:
            await self._admit(client, cost)
        try:
            crawl, queued = await self.crawler.start(body)
        except Exception:
            if client is not None:
                self._refund(client, cost)
            raise
        self._announce(queued)
        return crawl

    async def crawl(self, crawl_id: str) -> Crawl:
        """One crawl with its counts (NotFound)."""
        crawl = await self.store.get_crawl(crawl_id)
        if crawl is None:
            raise NotFound(crawl_id, "crawl")
        return crawl

    async def crawls(self, limit: int, cursor: str | None) -> Page:
        """A page of crawls, newest first."""
        return await self.store.list_crawls(limit, cursor)

    async def cancel_crawl(self, crawl_id: str) -> Crawl:
        """Stop a crawl and cancel every unfinished page of it, a chunk per commit, each change announced."""
        while True:
            crawl, tasks = await self.store.cancel_crawl(crawl_id, BULK_CHUNK)
            for task in tasks:
                self.cancel_local(task.id)
                self.publish(task)
            if not tasks:
                return crawl

    async def retry_batch(self, batch_id: str) -> Batch:
        """Queue a batch's failed jobs again, a chunk per commit."""
        while tasks := await self.store.retry_batch(batch_id, BULK_CHUNK):
            self._announce_retried(tasks)
        return await self.batch(batch_id)

    async def deliveries(self, where: DeliveryFilter, limit: int, cursor: str | None) -> Page:
        """A page of webhook deliveries, newest first."""
        return await self.store.list_deliveries(where, limit, cursor)

    async def delivery(self, delivery_id: str) -> Delivery:
        """One webhook delivery (NotFound)."""
        found = await self.store.get_delivery(delivery_id)
        if found is None:
            raise NotFound(delivery_id, "webhook delivery")
        return found

    async def redeliver(self, delivery_id: str) -> Delivery:
        """Send a delivery again soon, with the same id and body (NotFound)."""
        return await self.store.redeliver(delivery_id)

    def _announce_retried(self, tasks: list[Task]) -> None:
        for task in tasks:
            self.publish(task)
        self.wake_workers()

    # last: below it, `list` in this class's annotations names this method, not the builtin
    async def list(self, where: TaskFilter, limit: int, cursor: str | None) -> tuple[Page, dict[str, int]]:
        """A page of tasks matching a filter, and the counts by status of the whole queue."""
        self.check_filter(where)
        page = await self.store.list(where, limit, cursor)
        return page, await self.store.counts()
