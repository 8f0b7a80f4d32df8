"""The render pool's figures on /metrics, read from the pool at scrape time (RenderPool.stats())."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from jobqueue.render.pool import RenderPool


class RenderCollector(Collector):
    """jobqueue_render_*: browsers, pages in use and slots, renders by outcome, render time, restarts, memory."""

    def __init__(self, pool: RenderPool) -> None:
        self.pool = pool

    def collect(self) -> Iterator[Metric]:
        """The pool's figures now (zeros when rendering is off)."""
        stats = self.pool.stats()
        yield GaugeMetricFamily("jobqueue_render_available", "1 when this process renders jobs with `render`",
                                value=int(stats["available"]))
        yield GaugeMetricFamily("jobqueue_render_browsers", "Browsers running", value=stats["browsers"])
        yield GaugeMetricFamily("jobqueue_render_pages_in_use", "Renders under way", value=stats["pages_in_use"])
        yield GaugeMetricFamily("jobqueue_render_page_slots", "Renders the browsers may run at once",
                                value=stats["page_slots"])
        renders = CounterMetricFamily("jobqueue_renders", "Renders by outcome (completed, timeout, blocked, "
                                      "browser_died, ...)", labels=["outcome"])
        for outcome, count in sorted(stats["renders"].items()):
            renders.add_metric([outcome], count)
        yield renders
        yield CounterMetricFamily("jobqueue_render_seconds", "Time spent rendering, slot waits included",
                                  value=stats["render_seconds_total"])
        yield CounterMetricFamily("jobqueue_render_browser_restarts", "Browsers replaced (recycled, crashed or hung)",
                                  value=stats["browser_restarts"])
        yield GaugeMetricFamily("jobqueue_render_browser_memory_bytes", "Proportional set size of the browsers' "
                                "processes", value=self.pool.browser_memory() if stats["browsers"] else 0)


def register(pool: RenderPool, registry: CollectorRegistry) -> None:
    """Show the pool's figures on the server's /metrics."""
    registry.register(RenderCollector(pool))
