"""The store interface by role: each consumer can name the part of the store it uses, and each
backend implements them all (jobqueue.store.base.Store is their composition)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from jobqueue.hosts import HostInfo
from jobqueue.idempotency import IdempotencyKey, IdempotentAdd, StoredAnswer
from jobqueue.live_stats import StatsSlot
from jobqueue.models import Batch, Crawl, CrawlLinks, Page, Result, Schedule, Task, TaskError
from jobqueue.store.records import (
    ALL_TASKS,
    Capabilities,
    ChangePage,
    Lease,
    NewCrawl,
    NewTask,
    RobotsEntry,
    TaskFilter,
)
from jobqueue.store.trip_time import Latency
from jobqueue.webhooks.delivery import Delivery, DeliveryFilter, DeliveryOutcome
from jobqueue.webhooks.outbox import Outbox
from jobqueue.webhooks.spec import WebhookSpec


class StoreConnection(Protocol):
    """Opening, closing and health: what every backend needs before any other role works."""

    name: str
    capabilities: Capabilities
    latency: Latency | None  # told each database call's time (trip_time.py); set before open

    async def open(self) -> None:
        """Connect and create what the queries need (idempotent)."""

    async def close(self) -> None:
        """Flush pending writes and release the connection."""

    async def ping(self) -> str | None:
        """Raise StoreError when the database does not answer; without writing, and quickly (it serves /healthz).
        Returns a sentence when the database answers but is slow, else None."""


class TaskStore(Protocol):
    """Jobs and their leases: submitting, claiming, finishing, cancelling and retrying them, and their results."""

    async def add(self, tasks: list[NewTask], idempotent: IdempotentAdd | None = None) -> list[Task]:
        """Store new tasks durably before returning them; with `idempotent`, keep the answer in the same step.

        A task whose spec has `max_age` is stored `completed`, sharing the result of the newest job of
        the same fetch (same reuse key) that completed within that age, when there is one.
        """

    async def get(self, task_id: str) -> Task | None:
        """Read one task."""

    async def counts(self) -> dict[str, int]:
        """Count tasks by status without scanning them."""

    async def claim(self, limit: int, lease_seconds: float, exclude_hosts: list[str],
                    per_host: int | None = None, ended: list[Lease] | None = None,
                    rendered: bool = False, host_delay: float = 0.0) -> list[Task]:
        """Atomically take up to `limit` due tasks of one kind (rendered in a browser, or fetched), marking them
        running under a fresh lease. With `per_host`, each
        also takes one of its host's slots, held by its lease and shared by every store on the database, so no
        host ever has more than `per_host` requests in flight; a host without a free slot is passed over. The
        slots of `ended` (requests that are over) are freed first, as free_slots() does.
        A host's policy (HostStore) holds too: its max_concurrency replaces `per_host`; a paused host, or one
        whose next start time has not come, is passed over; a host with a delay between starts (its min_delay_ms,
        else `host_delay` seconds) gets at most one job per claim, and its next start time moves by that delay."""

    async def free_slots(self, leases: list[Lease]) -> None:
        """The requests of these leases are over (their outcome may still be being written): free their hosts'
        slots. release() frees them too; a slot whose lease runs out frees itself."""

    async def extend(self, leases: list[Lease], lease_seconds: float) -> list[str]:
        """Push the leases' expiry forward; return the ids whose lease was lost."""

    async def release(self, leases: list[Lease]) -> list[Task]:
        """Give claimed tasks back to the queue (shutdown), not counting the attempt."""

    async def complete(self, lease: Lease, result: Result) -> Task | None:
        """Store the result and mark the task completed; None when the lease is stale."""

    async def reschedule(self, lease: Lease, at: float, error: TaskError, http_status: int | None) -> Task | None:
        """Queue the task again for a later attempt; None when the lease is stale."""

    async def fail(self, lease: Lease, error: TaskError, http_status: int | None) -> Task | None:
        """Mark the task failed for good; None when the lease is stale."""

    async def cancel(self, task_id: str) -> Task:
        """Cancel an unfinished task (NotFound, Conflict)."""

    async def retry(self, task_id: str) -> Task:
        """Queue a finished task again, dropping its old result (NotFound, Conflict)."""

    async def cancel_many(self, task_ids: list[str]) -> list[Task]:
        """Cancel those of the jobs still queued or running, in one write; the cancelled ones come back."""

    async def retry_many(self, task_ids: list[str]) -> list[Task]:
        """Queue those of the jobs that finished again, dropping their results; the queued ones come back."""

    async def delete_many(self, task_ids: list[str]) -> list[str]:
        """Delete those of the jobs that finished, with their results and unshared bodies; their ids come back."""

    async def get_result(self, task_id: str, with_body: bool) -> Result | None:
        """Read the stored result of a task, with or without its body."""

    async def get_artifact(self, task_id: str, kind: str) -> bytes | None:
        """Read what a completed render captured besides its DOM (`screenshot` or `pdf`, models.ARTIFACTS); None
        when the job has none."""

    async def list_results(self, limit: int, cursor: str | None, where: TaskFilter = ALL_TASKS) -> Page:
        """List results newest first without bodies, narrowed by their jobs' fields (Capabilities.list_filters)."""

    async def idempotency_begin(self, key: IdempotencyKey, lock_seconds: float) -> StoredAnswer | None:
        """Take a key for a request in flight (None), or return the answer to replay (IdempotencyConflict)."""

    async def idempotency_abort(self, key: IdempotencyKey) -> None:
        """Free a key whose request failed, so it can be sent again."""

    async def count_matching(self, where: TaskFilter, cap: int) -> dict[str, int] | None:
        """Count the jobs a filter matches, by status (every status a key), for a listing's `matched`: reading at
        most about cap+1 jobs or index entries, so it is cheap; None when more than `cap` match (or, on SQLite, a
        walk's range holds more than `cap` rows) or the database cannot count this filter in a listing's time."""

    # last: below it, `list` in this class's annotations names this method, not the builtin
    async def list(self, where: TaskFilter, limit: int, cursor: str | None) -> Page:
        """List tasks newest first, narrowed by a filter, paged by an opaque cursor."""


class BatchStore(Protocol):
    """Batches: many jobs stored as one, sealed, counted, cancelled or retried together."""

    async def create_batch(self, batch_id: str, total: int, tags: tuple[str, ...], storing_seconds: float,
                           webhook: WebhookSpec | None = None) -> Batch:
        """Start a batch whose jobs are stored next; it is removed if not sealed within `storing_seconds`."""

    async def seal_batch(self, batch_id: str, answer: tuple[IdempotencyKey, StoredAnswer] | None) -> Batch:
        """Mark every job of a batch stored (and keep a keyed answer in the same step)."""

    async def get_batch(self, batch_id: str) -> Batch | None:
        """Read one sealed batch with its counts (one row, whatever its size)."""

    async def get_batches(self, batch_ids: list[str]) -> list[Batch]:
        """Read several sealed batches."""

    async def list_batches(self, limit: int, cursor: str | None) -> Page:
        """Sealed batches, newest first."""

    async def cancel_batch(self, batch_id: str, limit: int) -> list[Task]:
        """Cancel up to `limit` unfinished jobs of a batch; [] when none is left (NotFound)."""

    async def retry_batch(self, batch_id: str, limit: int) -> list[Task]:
        """Queue up to `limit` failed jobs of a batch again; [] when none is left (NotFound)."""

    async def abandon_batch(self, batch_id: str) -> None:
        """Give up on a batch whose request failed while its jobs were stored; drop_abandoned_batches removes it."""

    async def drop_abandoned_batches(self) -> int:
        """Remove batches whose storing process died before sealing them, with their jobs."""


class OutboxStore(Protocol):
    """Webhooks: deliveries written with the state changes they announce, then claimed and sent."""

    # With `outbox`, complete, fail, cancel, cancel_batch and seal_batch store the deliveries of the change
    # (Outbox.for_task / for_batch) atomically with it; given to the backend's constructor.
    outbox: Outbox | None

    async def relay_outbox(self) -> int:
        """Turn outbox entries written with state changes into deliveries (a no-op where they are written so)."""

    async def deliveries_due(self) -> bool:
        """Whether any delivery is due now, without writing."""

    async def claim_deliveries(self, limit: int, lease_seconds: float, exclude_endpoints: list[str]
                               ) -> list[Delivery]:
        """Take due deliveries under a fresh lease, counting the attempt, skipping the given endpoints; under
        `outbox.per_endpoint`, each takes one of its endpoint's slots, as claim() does per host."""

    async def finish_delivery(self, delivery: Delivery, outcome: DeliveryOutcome) -> bool:
        """Record an attempt's outcome under the delivery's lease and free its slot; False when the lease was lost."""

    async def release_deliveries(self, deliveries: list[Delivery]) -> None:
        """Give claimed deliveries back, due now, not counting the attempt, and free their slots."""

    async def get_delivery(self, delivery_id: str) -> Delivery | None:
        """Read one delivery."""

    async def list_deliveries(self, where: DeliveryFilter, limit: int, cursor: str | None) -> Page:
        """Deliveries newest first, narrowed by status, task or batch."""

    async def redeliver(self, delivery_id: str) -> Delivery:
        """Make a delivery pending and due now, keeping its id and body (NotFound)."""


class ScheduleStore(Protocol):
    """Schedules of recurring fetches (a job's `every`)."""

    async def list_schedules(self, limit: int, cursor: str | None) -> Page:
        """Schedules of recurring fetches, newest first."""

    async def get_schedule(self, schedule_id: str) -> Schedule | None:
        """One schedule."""

    async def stop_schedule(self, schedule_id: str) -> tuple[Schedule, list[Task]]:
        """Stop a schedule, cancelling its queued run (returned); runs already stored stay (NotFound)."""

    async def count_active_schedules(self, limit: int) -> int:
        """How many schedules are not stopped, counting no further than `limit` (what --max-schedules checks)."""


class HistoryStore(Protocol):
    """A URL's results over time, what its bodies take on disk, and the word that a recurring page changed."""

    # With `url_changed`, complete() calls it (on the IOLoop, after the commit) with the run and the previous
    # run's id when a recurring job's body changed; given to the backend's constructor.
    url_changed: Callable[[Task, str], None] | None

    async def history(self, url: str, limit: int, cursor: str | None) -> Page:
        """A URL's results newest first, without bodies, as jobqueue.history.timeline.HistoryEntry items."""

    async def url_changes_since(self, seq: int, limit: int) -> list[tuple[int, str, str]]:
        """url.changed records after `seq`, oldest first: (seq, task id, previous run's id)."""

    async def storage_stats(self) -> dict[str, int]:
        """Running totals: results, distinct_bodies, body_bytes (raw, per result), stored_bytes (bodies on disk)."""


class ChangeLog(Protocol):
    """Every process's job state changes, in order, so each process can show them all."""

    async def changed_since(self, since: float, limit: int) -> list[Task]:
        """Tasks whose state changed at or after `since`, oldest change first."""

    async def changes_after(self, position: Any, limit: int) -> ChangePage:
        """Up to `limit` job state changes recorded after `position` (None: the newest change), each once, in the
        order they were made: what lets every process show every process's changes, intermediate states too."""

    async def prune_changes(self, before: float) -> int:
        """Forget changes recorded before `before` (a bounded number per call); how many went."""


class StatsStore(Protocol):
    """Live statistics every process adds its counts to, so every dashboard shows the service's
    (jobqueue/shared_stats.py): slots of `width` seconds from `start`, for the whole service (host "") or one host."""

    async def add_stats(self, slots: list[StatsSlot]) -> None:
        """Add each slot's counts to the shared slot of its (width, host, start), made on first use."""

    async def stats_series(self, width: int, since: int, per: int) -> list[StatsSlot]:
        """The whole service's slots of `width` from `since` on, summed into slots of `per` seconds, oldest first."""

    async def stats_hosts(self, since: int, limit: int) -> tuple[list[StatsSlot], int]:
        """The `limit` hosts that finished the most jobs from `since` on, with their totals; how many finished any."""

    async def purge_stats(self, width: int, hosts: bool, before: int) -> int:
        """Delete the slots of `width` (the hosts' or the service's) that start before `before`; how many went."""


class MaintenanceStore(Protocol):
    """Retention: what the housekeeping loops delete in bounded steps, and the space they give back."""

    async def purge_finished(
        self, finished_before: float, keep_per_url: int, limit: int, resume: tuple[float, int | str] | None = None,
    ) -> tuple[list[str], tuple[float, int | str] | None]:
        """Delete up to `limit` jobs finished before a time, sparing each URL's newest `keep_per_url` results."""

    async def vacuum_step(self, pages: int) -> int:
        """Give up to `pages` freed pages back to the file system; the number still free (0 where moot)."""

    async def purge_idempotency(self, before: float) -> int:
        """Delete keys created before `before` (a bounded number per call)."""


class ViewStore(Protocol):
    """Derived views of a stored body (its Markdown, text, links, metadata as one JSON document): computed once per
    body and extractor version, kept compressed beside the body, dropped with it (jobqueue/store/views.py)."""

    async def get_views(self, sha256: str, version: int) -> str | None:
        """The views kept for the body of this sha256 (a result's `sha256`) by this extractor version; None when
        none are kept, so the caller extracts them and puts them."""

    async def put_views(self, sha256: str, version: int, document: str) -> None:
        """Keep a body's views, unless views of this key are kept already (the first put wins, across processes too)
        or no body of this sha256 is stored (any more); views of the body's older versions go in the same step."""


class RobotsStore(Protocol):
    """Each origin's robots.txt, fetched once and kept until it expires, so every process on the database shares
    one copy (jobqueue/robots.py decides what it allows)."""

    async def get_robots(self, origin: str) -> RobotsEntry | None:
        """The entry kept for an origin, expired or not (the caller checks `expires_at`); None when there is none."""

    async def put_robots(self, origin: str, status: int | None, body: str, fetched_at: float,
                         expires_at: float) -> None:
        """Keep an origin's robots.txt, replacing an older fetch of it; a fetch older than the kept one is dropped,
        so two processes fetching at once both keep a true answer."""


class CrawlStore(Protocol):
    """Crawls: pages found by following links, each an ordinary job with a crawl_id, depth and parent. A completed
    page's links (`Result.crawl_links`) are queued by `complete` in its own transaction; these are the rest."""

    async def create_crawl(self, crawl: NewCrawl, seeds: list[NewTask]) -> tuple[Crawl, list[Task]]:
        """Store a crawl and queue its seeds (each once, up to max_pages); the crawl and the seeds queued."""

    async def add_crawl_pages(self, crawl_id: str, links: CrawlLinks, seeded: bool = False) -> list[Task]:
        """Queue pages found outside a completion (its sitemaps'), each once, while the crawl runs and has room;
        `seeded` says its sitemaps are read, so it may finish."""

    async def get_crawl(self, crawl_id: str, counted: bool = True) -> Crawl | None:
        """A crawl with its pages counted by status; None when there is none. Not `counted`: `counts` is empty,
        and reading it costs one row whatever the crawl's size (what the crawler reads every second)."""

    async def list_crawls(self, limit: int, cursor: str | None) -> Page:
        """Crawls newest first, a page at a time."""

    async def cancel_crawl(self, crawl_id: str, limit: int) -> tuple[Crawl, list[Task]]:
        """Stop a crawl from growing and cancel up to `limit` of its unfinished pages (call again until none is
        returned); NotFound without such a crawl."""

    async def take_stalled_seeding(self, seconds: float, limit: int) -> list[Crawl]:
        """Running crawls whose sitemap reading ended without its `seeded` (the process reading died and its time
        ran out), each held for the caller for `seconds`, so exactly one process reads them again."""


class HostStore(Protocol):
    """Per-host pacing (jobqueue/hosts.py): each host's policy and next allowed start time, kept in the database so
    every process's claims obey them."""

    async def get_host(self, host: str) -> HostInfo | None:
        """A host's policy, next start time, queued and running jobs and recent outcomes; None when it has neither
        a policy nor an unfinished job."""

    async def list_hosts(self, q: str | None, limit: int, cursor: str | None) -> Page:
        """Hosts with unfinished jobs or a policy, as HostInfo items by name, a page at a time; `q` keeps the
        names that contain it."""

    async def set_host_policy(self, host: str, max_concurrency: int | None, min_delay_ms: int | None,
                              paused: bool | None, keep: tuple[str, ...] = ()) -> HostInfo:
        """Set a host's policy (persisted, shared by every process): None resets a field to the server's default,
        the fields named in `keep` stay as they are."""

    async def hold_host(self, host: str, until: float) -> None:
        """Start no fetch of the host before `until` (a 429 or 503 with Retry-After; at most jobqueue.hosts.HOLD_MAX
        from now); a later next start time already kept stays."""
