"""Firecrawl's crawls and batch scrapes over jobqueue's crawls and batches: start, status paged by `next`,
cancel and errors. A status lists the finished pages as documents, newest first, shaped by the tag their
request left on them (jobqueue/firecrawl/scrape_options.py)."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

from jobqueue.errors import Code, InvalidURL
from jobqueue.firecrawl.crawl_options import read_batch, read_crawl
from jobqueue.firecrawl.documents import document
from jobqueue.firecrawl.scrape_options import Shape
from jobqueue.models import COMPLETED, FAILED, FINISHED, Task, iso
from jobqueue.service import MAX_BATCH_URLS
from jobqueue.store.base import TaskFilter
from jobqueue.urls import normalize_url

from ..base import ApiError
from .base import FirecrawlHandler

PAGE = 20  # documents per status answer: each may hold a whole page's HTML
MAX_ERRORS = 1000
_CURSOR = {"GET": ("cursor",)}


class StatusPages(FirecrawlHandler):
    """A status answer: the counts, and one page of documents with the URL of the next."""

    query_parameters = _CURSOR
    kind = ""  # "crawl" or "batch/scrape"

    async def documents(self, where: TaskFilter, shape: Shape) -> tuple[list[dict[str, Any]], str | None]:
        """One page of the finished jobs' documents, and the `next` URL when more are stored."""
        service = self.service
        service.check_filter(where)
        cursor = self.get_query_argument("cursor", None) or None  # empty: the first page, as everywhere
        page = await service.store.list(where, PAGE, cursor)
        docs = await asyncio.gather(*(document(t, service.store, self.readable, shape) for t in page.items))
        path = self.request.path.rstrip("/").split("/v2/", 1)[1]
        following = self.here(f"{path}?cursor={quote(page.next_cursor)}") if page.next_cursor else None
        return list(docs), following

    async def errors(self, where: TaskFilter) -> None:
        """The failed jobs as Firecrawl's errors; those robots.txt refused are listed in robotsBlocked."""
        page = await self.service.store.list(where, MAX_ERRORS, None)
        failed: list[Task] = page.items
        errors = [{"id": t.id, "timestamp": iso(t.finished_at), "url": t.url,
                   "code": t.error.code if t.error else None, "error": t.error.message if t.error else t.status}
                  for t in failed if not (t.error and t.error.code == "blocked_by_robots")]
        blocked = [t.url for t in failed if t.error and t.error.code == "blocked_by_robots"]
        self.succeed({"errors": errors, "robotsBlocked": blocked})


def _counts(counts: dict[str, int]) -> tuple[int, int]:
    """(finished, total) of a crawl's or batch's jobs."""
    return sum(counts.get(s, 0) for s in FINISHED), sum(counts.values())


class CrawlStartHandler(FirecrawlHandler):
    """POST a Firecrawl crawl: a jobqueue crawl whose pages are jobs tagged firecrawl; {id, url}."""

    async def post(self) -> None:
        request = read_crawl(self.get_json_body())
        crawl = await self.service.start_crawl(request.body, self.client_key)
        self.succeed({"id": crawl.id, "url": self.here(f"crawl/{crawl.id}")})


class CrawlStatusHandler(StatusPages):
    """GET the crawl's status and its finished pages (paged by `next`); DELETE cancels it."""

    async def get(self, crawl_id: str) -> None:
        crawl = await self.service.crawl(crawl_id)
        docs, following = await self.documents(TaskFilter(crawl=crawl.id, status=COMPLETED),
                                                Shape.from_tags(crawl.tags))
        finished, total = _counts(crawl.counts)
        status = {"running": "scraping", "finished": "completed"}.get(crawl.status, crawl.status)
        self.succeed({"status": status, "completed": finished, "total": total, "creditsUsed": finished,
                      "expiresAt": None, "next": following, "data": docs})

    async def delete(self, crawl_id: str) -> None:
        crawl = await self.service.crawl(crawl_id)
        if crawl.status == "finished":
            raise ApiError.of(Code.CONFLICT, f"the crawl {crawl_id} has finished already; there is nothing to cancel")
        await self.service.cancel_crawl(crawl_id)
        self.succeed({"status": "cancelled"})


class CrawlErrorsHandler(StatusPages):
    """GET the crawl's failed pages."""

    query_parameters = {}

    async def get(self, crawl_id: str) -> None:
        await self.service.crawl(crawl_id)
        await self.errors(TaskFilter(crawl=crawl_id, status=FAILED))


class BatchStartHandler(FirecrawlHandler):
    """POST a Firecrawl batch scrape: a jobqueue batch of jobs tagged firecrawl; {id, url, invalidURLs}."""

    request_size_setting = "max_batch_request_size"

    async def post(self) -> None:
        service = self.service

        def valid(url: str) -> bool:
            try:
                normalize_url(url, service.policy)
            except InvalidURL:
                return False
            return True

        request = read_batch(self.get_json_body(), valid)
        batch_id = service.new_batch_id()
        submission = await service.reader.from_json(request.body, MAX_BATCH_URLS, batch_id)
        batch = await service.submit_batch(submission, batch_id, self.client_key)
        answer: dict[str, Any] = {"id": batch.id, "url": self.here(f"batch/scrape/{batch.id}")}
        if request.invalid:
            answer["invalidURLs"] = request.invalid
        self.succeed(answer)


class BatchStatusHandler(StatusPages):
    """GET the batch's status and its finished jobs' documents (a failed one with metadata.error); DELETE cancels
    its unfinished jobs."""

    async def get(self, batch_id: str) -> None:
        batch = await self.service.batch(batch_id)
        docs, following = await self.documents(TaskFilter(batch=batch.id, status=COMPLETED),
                                                Shape.from_tags(batch.tags))
        finished = _counts(batch.counts)[0]
        status = "scraping" if finished < batch.total else (
            "cancelled" if batch.counts.get("cancelled") else "completed")
        self.succeed({"status": status, "completed": finished, "total": batch.total, "creditsUsed": finished,
                      "expiresAt": None, "next": following, "data": docs})

    async def delete(self, batch_id: str) -> None:
        batch = await self.service.batch(batch_id)
        if _counts(batch.counts)[0] >= batch.total:
            raise ApiError.of(Code.CONFLICT, f"the batch {batch_id} has finished already; there is nothing to cancel")
        await self.service.cancel_batch(batch_id)
        self.succeed({"status": "cancelled"})


class BatchErrorsHandler(StatusPages):
    """GET the batch's failed jobs."""

    query_parameters = {}

    async def get(self, batch_id: str) -> None:
        await self.service.batch(batch_id)
        await self.errors(TaskFilter(batch=batch_id, status=FAILED))
