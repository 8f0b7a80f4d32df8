"""The task and result records shared by every backend, and their JSON shapes."""

from __future__ import annotations

import functools
import os
import random
import time
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from jobqueue.render.options import RenderOptions
from jobqueue.spec import DEFAULT_FETCH, FetchOptions, stored_render
from jobqueue.webhooks.spec import WebhookSpec

if TYPE_CHECKING:
    from jobqueue.store.records import NewTask

QUEUED = "queued"
RUNNING = "running"
COMPLETED = "completed"
FAILED = "failed"
CANCELLED = "cancelled"
STATUSES = (QUEUED, RUNNING, COMPLETED, FAILED, CANCELLED)
FINISHED = (COMPLETED, FAILED, CANCELLED)
_DEFAULT_FETCH_JSON = DEFAULT_FETCH.to_json()



_B32HEX = "0123456789abcdefghijklmnopqrstuv"  # RFC 4648 "extended hex": sorts like the numbers
_PAIRS = [a + b for a in _B32HEX for b in _B32HEX]
_SHIFTS = tuple(range(120, -10, -10))


class TaskIds:
    """Makes URL-safe ids that sort by creation time (128-bit, ULID-like), strictly increasing per generator.

    The text is base32 in RFC 4648's "extended hex" alphabet, whose order is the order of the numbers.
    """

    def __init__(self) -> None:
        self._last = 0
        self._random = random.Random(int.from_bytes(os.urandom(16), "big"))
        _GENERATORS.add(self)

    def reseed(self) -> None:
        """Draw fresh randomness: a forked child must not repeat its parent's (or a sibling's) ids."""
        self._random.seed(int.from_bytes(os.urandom(16), "big"))

    def new(self, now: float | None = None) -> str:
        """The next id: the time in ms, then 80 random bits; within one ms, the previous id plus one."""
        millis = int((time.time() if now is None else now) * 1000)
        value = (millis << 80) | self._random.getrandbits(80)
        if value <= self._last:
            value = self._last + 1
        self._last = value
        value <<= 2  # 130 bits: 13 chunks of 10 bits, two characters each
        pairs = _PAIRS
        return "".join([pairs[(value >> shift) & 1023] for shift in _SHIFTS])


_GENERATORS: weakref.WeakSet[TaskIds] = weakref.WeakSet()  # every generator, for the fork hook below


def _reseed_after_fork() -> None:
    for generator in list(_GENERATORS):
        generator.reseed()


os.register_at_fork(after_in_child=_reseed_after_fork)


def iso(ts: float | None) -> str | None:
    """Render an epoch time as the contract's ISO 8601 UTC string with milliseconds."""
    if ts is None:
        return None
    millis = round(ts * 1000)  # to the nearest ms, so a time read back from its own text shows the same
    return f"{_iso_second(millis // 1000)}.{millis % 1000:03d}Z"


@functools.lru_cache(maxsize=4096)
def _iso_second(seconds: int) -> str:
    t = time.gmtime(seconds)
    return f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"


@dataclass
class TaskError:
    """Why the last attempt of a task did not produce a usable response."""

    code: str
    message: str

    def to_json(self) -> dict[str, str]:
        """Shape the error as the contract's `{"code", "message"}` object."""
        return {"code": self.code, "message": self.message}


ARTIFACTS = ("screenshot", "pdf")  # what a render may capture besides the DOM, each stored like a body


def _render_json(render: RenderOptions) -> dict[str, Any]:
    """A rendered task's `render` and `capture`, as the spec gave them (defaults left out)."""
    stored = stored_render(render, render.capture) or {}
    return {"render": {k: v for k, v in stored.items() if k != "capture"} or True,
            "capture": list(render.capture)}


MAX_LOGGED = 10  # attempts a task's JSON shows (the newest)


def _logged(entry: dict[str, Any]) -> dict[str, Any]:
    """One attempt as the API shows it: its time as ISO, its error as {code, message} or null."""
    return {"attempt": entry.get("attempt"), "at": iso(entry.get("at")), "outcome": entry.get("outcome"),
            "http_status": entry.get("http_status"),
            "error": {"code": entry["error"], "message": entry.get("message") or ""} if entry.get("error") else None}


@dataclass
class Task:
    """One URL to fetch and where it is in its lifecycle."""

    id: str
    url: str
    host: str
    status: str
    attempts: int
    created_at: float
    updated_at: float
    started_at: float | None = None
    finished_at: float | None = None
    available_at: float = 0.0
    http_status: int | None = None
    error: TaskError | None = None
    lease_token: str | None = None
    fetch: FetchOptions = DEFAULT_FETCH
    priority: int = 0
    not_before: float | None = None
    tags: tuple[str, ...] = ()
    batch_id: str | None = None
    reused_from: str | None = None
    webhook: WebhookSpec | None = None
    schedule_id: str | None = None  # shared by every run of a recurring fetch
    every: float | None = None  # seconds between the due times of a recurring fetch's runs
    attempt_log: tuple[dict[str, Any], ...] = ()  # one entry per finished attempt, oldest first
    render: RenderOptions | None = None  # rendered in a browser (its `capture` included); None: fetched
    formats: tuple[str, ...] = ()  # readable views computed at completion (markdown, text, links, metadata)
    changed_on: str = "body"  # a recurring run changed when its body differs ("body") or its main text ("text")
    robots: str | None = None  # "obey" or "ignore" its origin's robots.txt; None: the server's --robots
    crawl_id: str | None = None  # a page of a crawl
    depth: int | None = None  # a crawl page's link distance from a seed (seeds 0)
    parent_id: str | None = None  # the crawl page whose links named this one (None: a seed or a sitemap's)

    def to_json(self) -> dict[str, Any]:
        """Shape the task as the contract's JSON object (the lease stays internal, secrets show as "***")."""
        fetch = self.fetch
        return {
            "id": self.id,
            "url": self.url,
            "status": self.status,
            "attempts": self.attempts,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "http_status": self.http_status,
            "error": self.error.to_json() if self.error else None,
            "fetch": _DEFAULT_FETCH_JSON if fetch is DEFAULT_FETCH else fetch.to_json(),
            "priority": self.priority,
            "not_before": iso(self.not_before),
            "tags": list(self.tags),
            "batch_id": self.batch_id,
            "schedule_id": self.schedule_id,
            "every": self.every,
            "reused_from": self.reused_from,
            "webhook": self.webhook.to_json() if self.webhook is not None else None,
            "attempt_log": [_logged(entry) for entry in self.attempt_log[-MAX_LOGGED:]],
            **(_render_json(self.render) if self.render is not None else {}),
            **({"formats": list(self.formats)} if self.formats else {}),
            **({"changed_on": self.changed_on} if self.changed_on != "body" else {}),
            **({"robots": self.robots} if self.robots is not None else {}),
            **({"crawl_id": self.crawl_id, "depth": self.depth, "parent_id": self.parent_id}
               if self.crawl_id is not None else {}),
        }


@dataclass
class Result:
    """The stored response of a completed task."""

    id: str
    url: str
    final_url: str
    http_status: int
    headers: dict[str, str]
    content_type: str | None
    encoding: str | None
    encoding_source: str | None
    size: int
    truncated: bool
    elapsed_ms: float
    fetched_at: float
    sha256: str
    redirects: list[dict[str, Any]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    body: bytes | None = None
    # the final response's status line and header lines as received (for WARC); None when not kept
    raw_headers: bytes | None = None
    rendered: bool = False  # the body is a browser's DOM after the waits (a job with `render`)
    blocked_requests: int = 0  # requests of the page the address guard refused
    render_timings: dict[str, float] = field(default_factory=dict)  # milliseconds: queued, navigation, ...
    captured: tuple[str, ...] = ()  # of ARTIFACTS, those stored with the result
    artifacts: dict[str, bytes] = field(default_factory=dict)  # the captures' bytes, when being written
    # a job with `formats`: its body's readable views (a JSON document) computed before its completion, kept by the
    # completion beside the body; never read back from a stored result
    views: str | None = None
    # a run of a schedule compared by its main text (changed_on "text"): what the schedule compares instead of the
    # body's sha256 ("" when the text could not be extracted: this run is not compared); never stored
    change_key: str | None = None
    # a crawl page's in-scope links, found by its worker and queued in the transaction of its completion
    crawl_links: CrawlLinks | None = None

    def compared_key(self, sha256: str | None) -> str | None:
        """What a schedule compares this run with its last by: the main text's key when its job asked for
        `changed_on: text`, else the body's sha256; None when this run is not to be compared (the last key stays)."""
        if self.change_key is None:
            return sha256
        return self.change_key or None

    def to_json(self, text: str | None = None, with_body: bool = False) -> dict[str, Any]:
        """Shape the result as the contract's JSON object; `text` is the decoded body."""
        out: dict[str, Any] = {
            "id": self.id,
            "url": self.url,
            "final_url": self.final_url,
            "http_status": self.http_status,
            "headers": self.headers,
            "content_type": self.content_type,
            "encoding": self.encoding,
            "encoding_source": self.encoding_source,
            "size": self.size,
            "truncated": self.truncated,  # always false: bodies over the limit fail with too_large instead
            "elapsed_ms": self.elapsed_ms,
            "fetched_at": iso(self.fetched_at),
            "sha256": self.sha256,
            "redirects": self.redirects,
            "timings": self.timings,
        }
        if self.rendered:
            out.update(rendered=True, blocked_requests=self.blocked_requests, render_timings=self.render_timings,
                       captured=list(self.captured or sorted(self.artifacts)))
        if with_body:
            out["body"] = text
        return out


@dataclass
class Page:
    """One page of a newest-first listing, with the opaque cursor of the next one."""

    items: list[Any]
    next_cursor: str | None


@dataclass
class Batch:
    """Many jobs submitted together, with counts by status kept as their jobs move."""

    id: str
    created_at: float
    total: int
    counts: dict[str, int]
    finished_at: float | None = None
    tags: tuple[str, ...] = ()
    sealed: bool = True  # False while its jobs are still being stored

    def to_json(self) -> dict[str, Any]:
        """Shape the batch as the contract's JSON object."""
        return {"id": self.id, "created_at": iso(self.created_at), "total": self.total, "counts": self.counts,
                "finished_at": iso(self.finished_at), "tags": list(self.tags)}


CRAWL_SKIPS = ("robots", "scope", "duplicate", "limit")


@dataclass
class CrawlLinks:
    """The pages a completed crawl page's links lead to (in page order, each a new job to queue unless the crawl
    has it already or is full), and how many links were left out before the store saw them (robots, scope)."""

    pages: list[NewTask]
    skipped: dict[str, int] = field(default_factory=dict)


@dataclass
class Crawl:
    """Pages found by following links from seeds within a scope; every page is an ordinary job."""

    id: str
    created_at: float
    status: str  # running, finished or cancelled
    seeds: list[str]
    options: dict[str, Any]  # scope, max_depth, max_pages, include, exclude, sitemap, robots, ignore_query
    counts: dict[str, int]  # its pages by job status
    discovered: int = 0  # pages queued (never more than max_pages)
    skipped: dict[str, int] = field(default_factory=dict)
    finished_at: float | None = None
    tags: tuple[str, ...] = ()
    seeding: bool = False  # its sitemaps are still being read

    def to_json(self) -> dict[str, Any]:
        """Shape the crawl as the contract's JSON object."""
        return {"id": self.id, "status": self.status, "seeds": self.seeds, **self.options,
                "counts": self.counts, "discovered": self.discovered,
                "skipped": {k: self.skipped.get(k, 0) for k in CRAWL_SKIPS}, "created_at": iso(self.created_at),
                "finished_at": iso(self.finished_at), "tags": list(self.tags), "seeding": self.seeding}


@dataclass
class Schedule:
    """A recurring fetch: the URL, its period, and where its chain of runs stands."""

    id: str
    url: str
    every: float
    created_at: float
    stopped_at: float | None = None
    runs: int = 0  # runs finished (completed or failed)
    last_task_id: str | None = None
    next_task_id: str | None = None
    next_run_at: float | None = None

    def to_json(self) -> dict[str, Any]:
        """Shape the schedule as the JSON object of GET /schedules."""
        return {"id": self.id, "url": self.url, "every": self.every, "active": self.stopped_at is None,
                "created_at": iso(self.created_at), "stopped_at": iso(self.stopped_at), "runs": self.runs,
                "last_task_id": self.last_task_id, "next_task_id": self.next_task_id,
                "next_run_at": iso(self.next_run_at)}
