"""The web assembly: JobQueueServer builds the store, workers, event hub and HTTP server; main() runs them."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import logging
import signal
import socket
import sys
from collections.abc import Callable, Sequence

from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from jobqueue.access import RateLimiter, TokenSet
from jobqueue.addresses import AddressPolicy
from jobqueue.batch_progress import batch_progress_loop
from jobqueue.config import ConfigError, Settings, load_settings, process_count
from jobqueue.crawler import Crawler, sitemap_reader
from jobqueue.events import EventHub, counts_loop, stats_loop
from jobqueue.fetcher import Fetcher, FetchSettings
from jobqueue.history.retention import RetentionPolicy
from jobqueue.housekeeping import housekeeping_loop
from jobqueue.live_stats import LiveStats
from jobqueue.logs import announce, safe_url
from jobqueue.logs import configure as configure_logs
from jobqueue.metrics import Metrics, store_latency, watch_loop_lag
from jobqueue.models import FAILED, QUEUED, Task
from jobqueue.peer_sync import follow_changes
from jobqueue.processes import ProcessGroup, ProcessRole
from jobqueue.profiles import FetchProfiles, ProfileError
from jobqueue.readable_service import CountedPool, SharedViews
from jobqueue.render import RenderPool, RenderSettings
from jobqueue.render import metrics as render_metrics
from jobqueue.render.launch import find_chromium
from jobqueue.render_workers import RenderWorkers, RenderWorkerSettings
from jobqueue.retry_policy import RetryPolicy
from jobqueue.robots import Robots
from jobqueue.service import JobService
from jobqueue.shared_stats import SharedStats
from jobqueue.spec import SpecLimits
from jobqueue.store import Store, StoreError, store_from_url
from jobqueue.supervisor import Supervisor
from jobqueue.text_index import text_index_loop
from jobqueue.webhooks.sender import WebhookSender
from jobqueue.webhooks.wiring import Webhooks
from jobqueue.workers import PoolSettings, WorkerPool

from . import make_app
from .http_server import ApiHTTPServer

log = logging.getLogger("jobqueue")


class JobQueueServer:
    """Everything one process runs, built once from Settings and shared through the Application."""

    def __init__(self, settings: Settings, store: Store | None = None, role: ProcessRole | None = None) -> None:
        self.settings = settings
        self.role = role  # None: the only process; else which of --processes this is
        self.store: Store | None = store
        self.pool: WorkerPool | None = None
        self.render_pool: RenderPool | None = None  # the browsers, when rendering is on
        self.render_workers: RenderWorkers | None = None
        self.service: JobService | None = None
        self.http: HTTPServer | None = None
        self.port: int = settings.port
        # this process's counts, until added to the store's (shared_stats)
        self.stats = LiveStats(fetch_timeout=settings.fetch_timeout)
        self.shared_stats: SharedStats | None = None
        self.hub = EventHub()
        self.metrics = Metrics()
        self.background = Supervisor(metrics=self.metrics)
        self.profiles = FetchProfiles()
        self.webhooks: WebhookSender | None = None
        self.readable: SharedViews | None = None  # the readable views of stored pages, and their extraction pool
        self.robots: Robots | None = None  # robots.txt of each origin, read before a job that obeys it runs
        self.crawler: Crawler | None = None  # starts crawls, reads their sitemaps, follows their pages' links

    def publish(self, task: Task) -> None:
        """Log a task's new state (one line per change) and announce it to the live event hub."""
        if log.isEnabledFor(logging.INFO):
            fields = {"task": task.id, "status": task.status, "attempts": task.attempts, "url": safe_url(task.url)}
            if task.http_status is not None:
                fields["http_status"] = task.http_status
            # a running retry still carries the previous attempt's error: only a scheduled retry
            # (queued again) or a failure is about it
            if task.error is not None and task.status in (QUEUED, FAILED):
                fields["error"] = task.error.code
            if self.role is not None:
                fields["proc"] = self.role.index
            log.info("task state", extra=fields)
        self.stats.record(task)  # only this process's changes: each process adds its own to the shared figures
        self.hub.publish(task)

    async def start(self, sockets: list[socket.socket] | None = None) -> None:
        """Open the database, bind the port (or serve `sockets`, bound by the parent of --processes), start the
        workers (ConfigError says what went wrong)."""
        settings = self.settings
        try:
            policy = AddressPolicy.build(settings.allow_private_addresses, settings.allow_networks)
        except ValueError as exc:
            raise ConfigError(f"--allow-network: {exc}") from exc
        hooks = Webhooks.from_settings(settings, policy)
        try:
            latency = store_latency(self.metrics)
            if self.store is None:
                self.store = store_from_url(settings.database, sqlite_synchronous=settings.sqlite_synchronous,
                                            outbox=hooks.outbox, url_changed=self.hub.publish_url_changed,
                                            latency=latency)
            else:  # built by the caller (tests, embedding), without the hooks only the server has
                self.store.outbox, self.store.url_changed = hooks.outbox, self.hub.publish_url_changed
                self.store.latency = latency
            await self.store.open()
        except (ValueError, StoreError) as exc:
            raise ConfigError(f"cannot use the database {settings.database}: {exc}") from exc
        try:
            self.profiles = FetchProfiles(settings.fetch_profiles)
        except ProfileError as exc:
            await self.store.close()
            raise ConfigError(str(exc)) from exc
        fetcher = Fetcher(
            FetchSettings(
                connect_timeout=settings.connect_timeout,
                total_timeout=settings.fetch_timeout,
                max_body_size=settings.max_body_size,
                user_agent=settings.user_agent,
                max_clients=settings.workers,
            ),
            policy,
            self.profiles,
        )
        retry = RetryPolicy(max_attempts=settings.max_attempts, base_delay=settings.retry_base_delay)
        self.pool = WorkerPool(
            self.store,
            fetcher,
            PoolSettings(
                workers=settings.workers,
                per_host=settings.per_host,
                host_delay=settings.host_delay,
                lease_seconds=settings.lease_seconds,
                shutdown_grace=settings.shutdown_grace,
            ),
            retry,
            self.publish,
            self.metrics,
        )
        # one extraction pool per process: its processes start with the first page to extract
        self.readable = SharedViews(self.store, CountedPool(settings.extract_workers, settings.extract_timeout,
                                                            self.metrics))
        self.pool.readable = self.readable
        self.robots = Robots(self.store, Robots.fetcher_for(fetcher.settings, fetcher), settings.robots_user_agent,
                             obey_by_default=settings.robots == "obey")
        self.pool.robots = self.robots
        rendering = await self._start_rendering(policy, retry)
        pool, renders = self.pool, self.render_workers

        def wake() -> None:
            pool.wake()
            if renders is not None:
                renders.wake()

        def cancel_local(task_id: str) -> None:
            pool.cancel_local(task_id)
            if renders is not None:
                renders.cancel_local(task_id)

        self.service = JobService(
            self.store, policy, self.publish, wake, cancel_local,
            limiter=RateLimiter(settings.rate_limit, settings.rate_burst),
            max_queued=settings.max_queued, max_schedules=settings.max_schedules, metrics=self.metrics,
            batch_sealed=self.hub.touch_batch, deleted=self.hub.publish_deleted,
            limits=SpecLimits(max_body_size=settings.max_body_size, profiles=self.profiles.header_names,
                              profile_hosts=self.profiles.hosts, webhook_url=hooks.check_url,
                              min_every=settings.min_every, rendering=rendering),
        )
        self.crawler = crawler = Crawler(self.store, self.service.reader, self.robots,
                                         sitemap_reader(fetcher.settings, policy, self.robots), self.publish)
        self.service.crawler = self.pool.crawler = self.crawler
        if self.render_workers is not None:
            self.render_workers.crawler = self.crawler
        app = make_app(self.service, settings, hub=self.hub, metrics=self.metrics,
                       tokens=TokenSet(settings.api_tokens, settings.read_only_tokens),
                       process=self.role.index if self.role is not None else None, render=self.render_pool,
                       readable=self.readable, robots=self.robots)
        if sockets is None:
            try:
                sockets = bind_sockets(settings.port, settings.host, family=socket.AF_UNSPEC)
            except OSError as exc:
                await self._stop_rendering()
                await self.store.close()
                raise ConfigError(f"cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}") from exc
        self.port = sockets[0].getsockname()[1]
        largest = max(settings.max_request_size, settings.max_batch_request_size)
        self.http = ApiHTTPServer(app, max_body_size=largest + 65536)
        self.http.add_sockets(sockets)
        self.pool.start()
        if self.render_workers is not None:
            self.render_workers.start()
        store, hub = self.store, self.hub
        self.background.start("dashboard-counts", lambda: counts_loop(hub, store))
        self.background.start("peer-changes", lambda: follow_changes(store, hub))
        self.background.start("batch-progress", lambda: batch_progress_loop(store, hub))
        self.background.start("crawl-sitemaps", crawler.resume_loop)
        retention = RetentionPolicy.from_settings(settings)
        self.background.start("housekeeping", lambda: housekeeping_loop(store, retention=retention,
                                                                        deleted=hub.publish_deleted))
        self.background.start("loop-lag", lambda: watch_loop_lag(self.metrics))
        self.shared_stats = shared = SharedStats(store, self.stats)
        self.pool.fetched = self.stats.fetched
        self.background.start("stats-flush", shared.run)
        self.background.start("live-stats", lambda: stats_loop(hub, shared))
        # one indexer per database: two would read the same new results and index them twice
        if "q" in store.capabilities.list_filters and (self.role is None or self.role.index == 1):
            self.background.start("text-index", lambda: text_index_loop(store, views=self.readable))
        self.webhooks = hooks.sender(store, policy, self.metrics, settings)
        if self.webhooks is not None:
            self.background.start("webhooks", self.webhooks.run)

    async def _start_rendering(self, policy: AddressPolicy, retry: RetryPolicy) -> bool:
        """Build the browser pool and the render workers when rendering is on (a Chromium and Playwright found,
        --render-browsers not 0); whether it is."""
        settings = self.settings
        assert self.store is not None
        if settings.chromium and find_chromium(settings.chromium) is None:
            await self.store.close()
            raise ConfigError(f"--chromium {settings.chromium} is not an executable file")
        render = RenderSettings.resolve(settings.render_browsers, settings.render_pages, settings.render_recycle,
                                        settings.chromium, settings.connect_timeout)
        self.render_pool = RenderPool(render, policy)  # the same guard as the fetcher's
        render_metrics.register(self.render_pool, self.metrics.registry)
        if not self.render_pool.available:
            if settings.render_browsers:
                log.warning("rendering is off: no Chromium found (apt-get install chromium, or --chromium=PATH) or "
                            "Playwright missing (pip install 'jobqueue[render]')")
            return False
        # the browsers start with the first render (RenderWorkers), on this IOLoop's thread
        self.render_workers = RenderWorkers(
            self.store, self.render_pool,
            RenderWorkerSettings(slots=render.browsers * render.pages, per_host=settings.per_host,
                                 host_delay=settings.host_delay,
                                 lease_seconds=settings.lease_seconds, shutdown_grace=settings.shutdown_grace,
                                 fetch_timeout=settings.fetch_timeout, user_agent=settings.user_agent),
            retry, self.publish, self.metrics, self.profiles)
        self.render_workers.readable = self.readable
        self.render_workers.robots = self.robots
        return True

    async def _stop_rendering(self) -> None:
        """Give back the renders under way, then close every browser (no Chromium outlives the server)."""
        if self.render_workers is not None:
            await self.render_workers.stop()
        if self.render_pool is not None:
            await self.render_pool.stop()

    @property
    def url(self) -> str:
        """The dashboard's address."""
        return dashboard_url(self.settings.host, self.port)

    async def stop(self) -> None:
        """Stop accepting requests, let fetches finish briefly, give back the rest, close the database."""
        if self.http is not None:
            self.http.stop()
        self.hub.close_streams()
        await self.background.stop()
        if self.crawler is not None:
            await self.crawler.stop()
        if self.pool is not None:
            await self.pool.stop()
        await self._stop_rendering()
        if self.robots is not None:
            self.robots.fetcher.close()
        if self.readable is not None:
            await self.readable.close()
        if self.webhooks is not None:
            await self.webhooks.close()
        if self.http is not None:
            await self.http.close_all_connections()
        if self.shared_stats is not None:
            await self.shared_stats.settle()  # a flush the stopped loops left under way still commits
            try:
                await self.shared_stats.flush()  # the last counts of this process, so a restart loses none
            except StoreError:
                pass  # already logged
        if self.store is not None:
            await self.store.close()


def dashboard_url(host: str, port: int) -> str:
    """The dashboard's address, as the start line prints it."""
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


async def run(settings: Settings, sockets: list[socket.socket] | None = None, role: ProcessRole | None = None,
              ready: Callable[[], None] | None = None) -> None:
    """Serve until SIGINT or SIGTERM, then shut down cleanly; one of --processes calls `ready` instead of
    printing the start line, which its parent prints once."""
    server = JobQueueServer(settings, role=role)
    await server.start(sockets)
    # Everything built so far lives as long as the process: keep it out of every garbage collection,
    # and collect the young generation less often, so big submissions do not stall the IOLoop.
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, server.profiles.reload)
    if ready is None:
        announce_start(settings, server.port)
    else:
        ready()
    await stop.wait()
    log.info("shutting down: finishing running fetches for up to %.0fs", settings.shutdown_grace)
    await server.stop()


def announce_start(settings: Settings, port: int, processes: int = 1) -> None:
    """The start line scripts wait for (on stdout), and the warnings about who can reach the service."""
    url = dashboard_url(settings.host, port)
    shape = f"{settings.workers} workers" + (f" in {processes} processes" if processes > 1 else "")
    announce(f"dashboard on {url} (database {safe_url(settings.database)}, {shape})", stream=sys.stdout, url=url)
    warnings = exposure_warnings(settings)
    for warning in warnings:
        announce(warning, logging.WARNING)
    if not settings.api_tokens and not warnings:
        announce(f"no API token, so reachable from this machine only ({settings.host}); "
                 "set --api-token before listening elsewhere")


def serve_processes(settings: Settings, count: int) -> int:
    """Run `count` processes on one database and one socket (jobqueue.processes); the service's exit status."""
    def child(role: ProcessRole, sockets: list[socket.socket], ready: Callable[[], None]) -> int:
        # --workers is the service's total: each process takes its share. --per-host and --webhook-concurrency
        # are totals too, but the store counts them (its slots), so every process is given the whole limit
        own = dataclasses.replace(settings, workers=role.share(settings.workers))
        asyncio.run(run(own, sockets, role, ready))
        return 0

    return ProcessGroup(settings, count, child).run(lambda port: announce_start(settings, port, count))


def exposure_warnings(settings: Settings) -> list[str]:
    """Say loudly when the service is reachable from other machines without a token."""
    loopback = settings.host in ("127.0.0.1", "::1", "localhost") or settings.host.startswith("127.")
    if loopback or settings.api_tokens:
        return []
    return [f"listening on {settings.host} WITHOUT an API token: anyone who can reach this port can submit "
            "jobs and read every stored page. Set --api-token (or JOBQUEUE_API_TOKEN), or bind to 127.0.0.1."]


def main(argv: Sequence[str] | None = None, prog: str = "server.py") -> int:
    """Entry point: parse options, run, and turn configuration problems into one clear sentence."""
    try:
        settings = load_settings(argv, prog=prog)
        configure_logs(settings.log_format, getattr(logging, settings.log_level.upper()))
        count = process_count(settings)
        if count > 1:
            return serve_processes(settings, count)
        asyncio.run(run(settings))
    except ConfigError as exc:
        print(f"jobqueue: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
