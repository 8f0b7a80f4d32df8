"""Prometheus metrics of one server, in a registry of its own (no global state)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from jobqueue.models import STATUSES

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    """Counters and histograms the workers, service and store report into."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.submitted = Counter("jobqueue_jobs_submitted_total", "Jobs accepted by the API", registry=r)
        self.completed = Counter("jobqueue_jobs_completed_total", "Jobs that stored a result",
                                 ["status_class"], registry=r)
        self.failed = Counter("jobqueue_jobs_failed_total", "Jobs that failed for good", ["code"], registry=r)
        self.retries = Counter("jobqueue_fetch_retries_total", "Attempts scheduled again", ["reason"], registry=r)
        self.fetch_seconds = Histogram(
            "jobqueue_fetch_duration_seconds", "Time of one fetch attempt", registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
        self.response_bytes = Histogram(
            "jobqueue_response_size_bytes", "Size of stored bodies", registry=r,
            buckets=(1024, 10240, 102400, 1048576, 4194304, 10485760, 104857600))
        self.store_seconds = Histogram(
            "jobqueue_store_operation_seconds", "Latency of database operations", ["operation"], registry=r,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5))
        self.queue_depth = Gauge("jobqueue_jobs", "Jobs by status (read at scrape time)", ["status"], registry=r)
        self.websockets = Gauge("jobqueue_websocket_clients", "Open event streams", registry=r)
        self.loop_lag = Histogram(
            "jobqueue_event_loop_lag_seconds", "How late a 10 ms timer on the IOLoop fires (a stall shows here)",
            registry=r, buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5))
        self.loop_lag_max = Gauge("jobqueue_event_loop_lag_max_seconds",
                                  "The longest IOLoop stall in the last minute or so", registry=r)
        self.webhook_deliveries = Counter(
            "jobqueue_webhook_attempts_total", "Webhook sending attempts by outcome (delivered, retry, failed)",
            ["outcome"], registry=r)
        self.webhook_seconds = Histogram(
            "jobqueue_webhook_attempt_seconds", "Time of one webhook sending attempt", registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.webhook_latency = Histogram(
            "jobqueue_webhook_delivery_latency_seconds", "From the event to its successful delivery", registry=r,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600, 86400))
        self.rate_limited = Counter("jobqueue_requests_rate_limited_total", "Submissions refused with 429",
                                    registry=r)

    def set_counts(self, counts: dict[str, int]) -> None:
        """Record the counts by status just read from the store."""
        for status in STATUSES:
            self.queue_depth.labels(status).set(counts.get(status, 0))

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)


class TimedStore:
    """Wraps a store so every coroutine method reports its latency to `store_seconds`."""

    def __init__(self, store: Any, metrics: Metrics, clock: Callable[[], float] = time.perf_counter) -> None:
        self._store = store
        self._metrics = metrics
        self._clock = clock
        self.name = store.name

    def __getattr__(self, attribute: str) -> Any:
        target = getattr(self._store, attribute)
        if attribute in ("open", "close", "watch") or not callable(target):
            return target
        histogram = self._metrics.store_seconds.labels(attribute)
        clock = self._clock

        async def timed(*args: Any, **kwargs: Any) -> Any:
            started = clock()
            try:
                return await target(*args, **kwargs)
            finally:
                histogram.observe(clock() - started)

        setattr(self, attribute, timed)  # built once: later lookups find it without __getattr__
        return timed


async def watch_loop_lag(metrics: Metrics, interval: float = 0.01, window: float = 60.0) -> None:
    """Forever: time a short sleep and record how late it woke, so any stall of the IOLoop is visible."""
    loop = asyncio.get_running_loop()
    current = previous = 0.0
    window_start = loop.time()
    while True:
        asked = loop.time()
        await asyncio.sleep(interval)
        now = loop.time()
        lag = max(0.0, now - asked - interval)
        metrics.loop_lag.observe(lag)
        if now - window_start > window:
            previous, current, window_start = current, 0.0, now
        current = max(current, lag)
        metrics.loop_lag_max.set(max(current, previous))
