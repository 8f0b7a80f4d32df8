"""The service's readable views: one extraction pool and one ReadableViews per process, shared by the API's
routes and the workers that compute a job's `formats` when it completes.

ReadableViews (jobqueue/readable.py) is the one way in; this adds what a busy service needs around it: requests
for the same body at the same time share one extraction (a hundred jobs of one page completing in one turn cost
one), every extraction that really runs is counted on /metrics (`jobqueue_extractions_total{outcome}`), and a
completing job gets its views as the document its completion keeps beside the body, within a bounded wait.
"""

from __future__ import annotations

import asyncio
import logging

from jobqueue.extract import ExtractionFailed, ExtractionTimeout, ExtractPool, NotHtml, Views
from jobqueue.extract.pool import _GRACE, stop_helpers
from jobqueue.metrics import Metrics
from jobqueue.models import Result, Task
from jobqueue.readable import ReadableViews
from jobqueue.store.base import Store

log = logging.getLogger("jobqueue.readable")

_HTML_TYPES = ("text/html", "application/xhtml+xml")


def readable_type(content_type: str | None) -> bool:
    """Whether a stored media type may have readable views (HTML, text, or none said): the others (images, PDFs)
    are refused without a look at the store; a binary body of a text type is found out by the extractor."""
    return content_type is None or content_type in _HTML_TYPES or content_type.startswith("text/")


class CountedPool(ExtractPool):
    """The extraction pool, counting each extraction it runs by outcome: ok, not_html, timeout, failed."""

    def __init__(self, workers: int, timeout: float, metrics: Metrics) -> None:
        super().__init__(workers, timeout)
        self.metrics = metrics

    async def extract(self, body: bytes, content_type: str | None, charset: str | None, final_url: str, *,
                      main_content: bool = True) -> Views:
        """ExtractPool.extract, counted."""
        outcome = "ok"
        try:
            return await super().extract(body, content_type, charset, final_url, main_content=main_content)
        except NotHtml:
            outcome = "not_html"
            raise
        except ExtractionTimeout:
            outcome = "timeout"
            raise
        except ExtractionFailed:
            outcome = "failed"
            raise
        finally:
            self.metrics.extractions.labels(outcome).inc()


class SharedViews(ReadableViews):
    """ReadableViews where callers asking for the same body's main-content views at once share one extraction."""

    def __init__(self, store: Store, pool: ExtractPool) -> None:
        super().__init__(store, pool)
        self._flights: dict[str, asyncio.Future[Views]] = {}

    async def of(self, result: Result, *, main_content: bool = True, keep: bool = True) -> Views:
        """The views of a result's body, as ReadableViews.of; a caller that gives up leaves the others theirs."""
        if not main_content:  # the whole page is not kept: each ask is its own extraction
            return await super().of(result, main_content=False)
        key = result.sha256
        flight = self._flights.get(key)
        if flight is None:
            flight = self._flights[key] = asyncio.ensure_future(super().of(result, keep=keep))
            flight.add_done_callback(lambda done: self._landed(key, done))
        return await asyncio.shield(flight)

    def _landed(self, key: str, flight: asyncio.Future[Views]) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]
        if not flight.cancelled():
            flight.exception()  # heard by every caller still waiting; none left is no "never retrieved" warning

    async def at_completion(self, task: Task, result: Result) -> Views | None:
        """The views a job with `formats` keeps with its completion (their document), computed before it is
        recorded completed, within the pool's limit (plus the wait for a worker); None when the body has none or
        they failed or came too late: logged and counted, and the job completes all the same."""
        limit = self.pool.timeout + _GRACE
        try:
            async with asyncio.timeout(2 * limit):  # the page's own limit, and as long again to wait for a worker
                views = await self.of(result, keep=False)  # the completion keeps them with the body
        except NotHtml:
            return None
        except (ExtractionTimeout, ExtractionFailed, TimeoutError) as exc:
            code = getattr(exc, "code", "extraction_timeout")
            log.warning("task %s: its formats were not computed (%s: %s); it completes without them", task.id,
                        code, exc)
            return None
        return views

    async def close(self) -> None:
        """Stop the extraction processes and multiprocessing's helpers (at the service's shutdown)."""
        await asyncio.to_thread(self.pool.close)
        stop_helpers()
