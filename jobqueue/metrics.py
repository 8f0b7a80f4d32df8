"""Prometheus metrics of one server, in a registry of its own (no global state).

The figures every job moves (completions, failures, retries, fetch time, body size, store latency) are
LoopCounter and LoopHistogram: plain numbers that only the IOLoop thread updates, without the lock and the
label lookup prometheus_client's own types take on each update, turned into Prometheus families when
/metrics is read. The exposition is the same, minus the `_created` series.
"""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import Callable, Iterator, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

from jobqueue.models import STATUSES

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _Tally:
    """One label value's count (what LoopCounter.labels returns, kept for the next call)."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        """Add to the count."""
        self.value += amount


class LoopCounter:
    """A counter with one label, updated by the IOLoop thread only (no lock), read at scrape time."""

    def __init__(self, name: str, documentation: str, label: str, registry: CollectorRegistry) -> None:
        self.name, self.documentation, self.label = name, documentation, label
        self._children: dict[str, _Tally] = {}
        registry.register(self)

    def labels(self, value: str) -> _Tally:
        """The count for one label value, made on first use."""
        child = self._children.get(value)
        if child is None:
            child = self._children[value] = _Tally()
        return child

    def collect(self) -> Iterator[Metric]:
        """The Prometheus family, for the registry."""
        family = CounterMetricFamily(self.name, self.documentation, labels=[self.label])
        for value, child in sorted(self._children.items()):
            family.add_metric([value], child.value)
        yield family

    def describe(self) -> list[Metric]:
        """Names only, so the registry checks for clashes without collecting."""
        return [CounterMetricFamily(self.name, self.documentation, labels=[self.label])]


class _Buckets:
    """One histogram's counts per bucket (not cumulative until collected) and sum."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        """Count one value in the first bucket whose bound is at least it."""
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value


class LoopHistogram:
    """A histogram, with at most one label, updated by the IOLoop thread only (no lock), read at scrape time."""

    def __init__(self, name: str, documentation: str, buckets: Sequence[float], registry: CollectorRegistry,
                 label: str | None = None) -> None:
        self.name, self.documentation, self.label = name, documentation, label
        self.bounds = tuple(float(b) for b in buckets)
        self._children: dict[str, _Buckets] = {}
        self._plain = _Buckets(self.bounds)
        self.observe = self._plain.observe
        registry.register(self)

    def labels(self, value: str) -> _Buckets:
        """The histogram of one label value, made on first use."""
        child = self._children.get(value)
        if child is None:
            child = self._children[value] = _Buckets(self.bounds)
        return child

    def collect(self) -> Iterator[Metric]:
        """The Prometheus family, for the registry."""
        family = HistogramMetricFamily(self.name, self.documentation, labels=[self.label] if self.label else None)
        shown = sorted(self._children.items()) if self.label else [("", self._plain)]
        for value, child in shown:
            running, buckets = 0, []
            for bound, count in zip((*self.bounds, float("inf")), child.counts, strict=True):
                running += count
                buckets.append((floatToGoString(bound), running))
            family.add_metric([value] if self.label else [], buckets, child.total)
        yield family

    def describe(self) -> list[Metric]:
        """Names only, so the registry checks for clashes without collecting."""
        return [HistogramMetricFamily(self.name, self.documentation, labels=[self.label] if self.label else None)]


class Metrics:
    """Counters and histograms the workers, service and store report into."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.submitted = Counter("jobqueue_jobs_submitted_total", "Jobs accepted by the API", registry=r)
        self.completed = LoopCounter("jobqueue_jobs_completed", "Jobs that stored a result", "status_class", r)
        self.failed = LoopCounter("jobqueue_jobs_failed", "Jobs that failed for good", "code", r)
        self.retries = LoopCounter("jobqueue_fetch_retries", "Attempts scheduled again", "reason", r)
        self.fetch_seconds = LoopHistogram(
            "jobqueue_fetch_duration_seconds", "Time of one fetch attempt",
            (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60), r)
        self.response_bytes = LoopHistogram(
            "jobqueue_response_size_bytes", "Size of stored bodies",
            (1024, 10240, 102400, 1048576, 4194304, 10485760, 104857600), r)
        self.store_seconds = LoopHistogram(
            "jobqueue_store_operation_seconds", "Latency of database operations",
            (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5), r, label="operation")
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
        self.extractions = LoopCounter(
            "jobqueue_extractions", "Pages extracted into readable views (each body once: views kept are not "
            "counted again), by outcome", "outcome", r)
        self.loop_restarts = LoopCounter(
            "jobqueue_loop_restarts", "Background loops (claims, heartbeats, peer changes...) restarted after they "
            "raised", "loop", r)

    def set_counts(self, counts: dict[str, int]) -> None:
        """Record the counts by status just read from the store."""
        for status in STATUSES:
            self.queue_depth.labels(status).set(counts.get(status, 0))

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)


def store_latency(metrics: Metrics) -> Callable[[str, float], None]:
    """The hook a store reports each database call's time to (jobqueue/store/trip_time.py), on the IOLoop thread:
    `jobqueue_store_operation_seconds{operation}`."""
    histogram = metrics.store_seconds
    return lambda operation, seconds: histogram.labels(operation).observe(seconds)


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
