"""Typed views of the API's JSON objects: tasks, batches, crawls and results, each keeping its raw JSON too."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from .errors import JobQueueError

FINISHED = ("completed", "failed", "cancelled")
STATUSES = ("queued", "running", *FINISHED)


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 time of the API as an aware datetime (None stays None)."""
    return datetime.fromisoformat(value) if isinstance(value, str) else None


@dataclass(frozen=True)
class TaskError:
    """Why a job failed: a stable code word and a sentence."""

    code: str
    message: str


@dataclass(frozen=True)
class Task:
    """One job: a URL to fetch, its status and, once finished, its outcome."""

    id: str
    url: str
    status: str
    attempts: int = 0
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    http_status: int | None = None
    error: TaskError | None = None
    batch_id: str | None = None
    priority: int = 0
    tags: tuple[str, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def finished(self) -> bool:
        """Whether the job will not change again unless it is retried."""
        return self.status in FINISHED

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Task:
        """Build from the API's task object (unknown fields stay in `raw`)."""
        error = data.get("error")
        return cls(
            id=data["id"], url=data["url"], status=data["status"], attempts=data.get("attempts", 0),
            created_at=parse_time(data.get("created_at")), started_at=parse_time(data.get("started_at")),
            finished_at=parse_time(data.get("finished_at")), http_status=data.get("http_status"),
            error=TaskError(error["code"], error["message"]) if isinstance(error, dict) else None,
            batch_id=data.get("batch_id"), priority=data.get("priority", 0), tags=tuple(data.get("tags") or ()),
            raw=data,
        )


@dataclass(frozen=True)
class Batch:
    """Many jobs submitted together, with counts by status."""

    id: str
    total: int
    counts: dict[str, int]
    created_at: datetime | None = None
    finished_at: datetime | None = None
    tags: tuple[str, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def done(self) -> int:
        """Jobs that are finished (completed, failed or cancelled)."""
        return sum(self.counts.get(status, 0) for status in FINISHED)

    @property
    def failed(self) -> int:
        """Jobs that ended without a result."""
        return self.counts.get("failed", 0)

    @property
    def finished(self) -> bool:
        """Whether none of its jobs is queued or running."""
        return self.finished_at is not None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Batch:
        """Build from the API's batch object."""
        return cls(
            id=data["id"], total=data["total"], counts=dict(data.get("counts") or {}),
            created_at=parse_time(data.get("created_at")), finished_at=parse_time(data.get("finished_at")),
            tags=tuple(data.get("tags") or ()), raw=data,
        )


SKIPS = ("robots", "scope", "duplicate", "limit")  # why a crawl left a link out


@dataclass(frozen=True)
class Crawl:
    """Pages found by following links from seeds within a scope, each an ordinary job, with counts by status."""

    id: str
    status: str  # running, finished or cancelled
    seeds: tuple[str, ...]
    counts: dict[str, int]
    discovered: int = 0  # pages queued so far (never more than max_pages)
    skipped: dict[str, int] = field(default_factory=dict)  # links left out, by reason (SKIPS)
    scope: str = "host"
    max_depth: int = 2
    max_pages: int = 1000
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    sitemap: str = "include"
    robots: str = "obey"
    ignore_query: bool = False
    created_at: datetime | None = None
    finished_at: datetime | None = None
    tags: tuple[str, ...] = ()
    seeding: bool = False  # its sitemaps are still being read
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def done(self) -> int:
        """Pages that are finished (completed, failed or cancelled)."""
        return sum(self.counts.get(status, 0) for status in FINISHED)

    @property
    def failed(self) -> int:
        """Pages that ended without a result."""
        return self.counts.get("failed", 0)

    @property
    def finished(self) -> bool:
        """Whether the crawl will not change again: it finished or was cancelled."""
        return self.status != "running"

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Crawl:
        """Build from the API's crawl object (unknown fields stay in `raw`)."""
        skipped = data.get("skipped") or {}
        return cls(
            id=data["id"], status=data["status"], seeds=tuple(data.get("seeds") or ()),
            counts=dict(data.get("counts") or {}), discovered=data.get("discovered", 0),
            skipped={reason: int(skipped.get(reason, 0)) for reason in (*SKIPS, *skipped)},
            scope=data.get("scope", "host"), max_depth=data.get("max_depth", 2), max_pages=data.get("max_pages", 1000),
            include=tuple(data.get("include") or ()), exclude=tuple(data.get("exclude") or ()),
            sitemap=data.get("sitemap", "include"), robots=data.get("robots", "obey"),
            ignore_query=bool(data.get("ignore_query")), created_at=parse_time(data.get("created_at")),
            finished_at=parse_time(data.get("finished_at")), tags=tuple(data.get("tags") or ()),
            seeding=bool(data.get("seeding")), raw=data,
        )


class ViewReader(Protocol):
    """What a Result asks for its readable views: the client that read it (blocking or asyncio)."""

    def markdown(self, task_id: str, main_content: bool = True) -> Any:
        """GET /results/:id/markdown."""

    def text(self, task_id: str) -> Any:
        """GET /results/:id/text."""

    def links(self, task_id: str) -> Any:
        """GET /results/:id/links."""


@dataclass(frozen=True)
class Result:
    """What a completed job fetched: status, headers and the body decoded to text (None for binary), the page's
    metadata, and its readable views on demand: `markdown()`, `text()`, `links()` (awaitables when the
    Result came from AsyncClient, values from Client)."""

    id: str
    url: str
    final_url: str
    http_status: int
    headers: dict[str, str]
    content_type: str | None = None
    encoding: str | None = None
    size: int = 0
    truncated: bool = False
    sha256: str | None = None
    elapsed_ms: float | None = None
    fetched_at: datetime | None = None
    body: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)  # title, description, language, canonical_url, og
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    reader: ViewReader | None = field(default=None, repr=False, compare=False)  # the client that read it

    @classmethod
    def from_json(cls, data: dict[str, Any], reader: ViewReader | None = None) -> Result:
        """Build from the API's result object; `reader` is the client its views are asked of."""
        return cls(
            id=data["id"], url=data["url"], final_url=data.get("final_url") or data["url"],
            http_status=data["http_status"], headers=dict(data.get("headers") or {}),
            content_type=data.get("content_type"), encoding=data.get("encoding"), size=data.get("size", 0),
            truncated=bool(data.get("truncated")), sha256=data.get("sha256"), elapsed_ms=data.get("elapsed_ms"),
            fetched_at=parse_time(data.get("fetched_at")), body=data.get("body"),
            metadata=dict(data.get("metadata") or {}), raw=data, reader=reader,
        )

    def markdown(self, main_content: bool = True) -> Any:
        """The page as Markdown, only its main content unless main_content=False; APIError `not_html` (415)
        for a body that is neither HTML nor text."""
        return self._reader().markdown(self.id, main_content)

    def text(self) -> Any:
        """The main content as plain text; APIError `not_html` (415) as for markdown()."""
        return self._reader().text(self.id)

    def links(self) -> Any:
        """The page's links, `[{"url", "text", "rel"}]`: absolute, each once, in page order."""
        return self._reader().links(self.id)

    def _reader(self) -> ViewReader:
        if self.reader is None:
            raise JobQueueError("no_client", "this Result was not read by a client; ask the client for its views "
                                "(client.markdown(task_id)) instead")
        return self.reader


@dataclass(frozen=True)
class Event:
    """One message of the live stream: `type` is task, counts, batch.progress, batch.finished, crawl.progress,
    crawl.finished, url.changed, or resync (re-read what you show over REST: messages may have been missed)."""

    type: str
    task: Task | None = None
    batch: Batch | None = None
    crawl: Crawl | None = None
    counts: dict[str, int] | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Event:
        """Build from one websocket message."""
        task = data.get("task")
        batch = data.get("batch")
        crawl = data.get("crawl")
        return cls(
            type=str(data.get("type")),
            task=Task.from_json(task) if isinstance(task, dict) else None,
            batch=Batch.from_json(batch) if isinstance(batch, dict) else None,
            crawl=Crawl.from_json(crawl) if isinstance(crawl, dict) else None,
            counts=data.get("counts") if isinstance(data.get("counts"), dict) else None,
            raw=data,
        )
