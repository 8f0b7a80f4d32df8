"""A fetch attempt counts in the live statistics for at most its timeout (the job's, else the server's): what a
busy event loop adds after curl stopped the fetch is not fetch time, so the p95 never reads more than the timeout."""

from __future__ import annotations

from dataclasses import replace

from jobqueue.live_stats import BOUNDS_MS, SECONDS, LiveStats, percentile, total
from jobqueue.models import Task
from jobqueue.spec import FetchOptions, RenderOptions

T0 = 1_800_000_000.0


def task(timeout: float | None = None) -> Task:
    return Task(id="t", url="https://a.example/", host="a.example", status="failed", attempts=1, created_at=T0 - 5,
                updated_at=T0, started_at=T0 - 2, finished_at=T0, fetch=FetchOptions(timeout=timeout))


def p95_after(stats: LiveStats, job: Task, seconds: float) -> int | None:
    stats.fetched(job, seconds)
    return percentile(total([s for s in stats.take() if s.width == SECONDS]), 0.95)


def test_an_attempt_counts_for_at_most_its_timeout():
    assert p95_after(LiveStats(clock=lambda: T0), task(timeout=2), 2.2) == 2000  # the job's timeout
    assert p95_after(LiveStats(clock=lambda: T0, fetch_timeout=30), task(), 30.4) == 30_000  # the server's
    assert p95_after(LiveStats(clock=lambda: T0, fetch_timeout=30), task(timeout=2), 1.5) == 1500  # faster: as is
    assert p95_after(LiveStats(clock=lambda: T0), task(), 31.0) == 31_000  # no limit known: as measured
    rendered = replace(task(timeout=2), render=RenderOptions())
    assert p95_after(LiveStats(clock=lambda: T0), rendered, 2.5) == 2500  # a render is not limited by fetch.timeout
    assert 2000 in BOUNDS_MS
