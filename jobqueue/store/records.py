"""The values that cross the store interface: what callers hand a store and what it answers with."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from jobqueue.models import Task
from jobqueue.spec import DEFAULT_SPEC, JobSpec, stored_render
from jobqueue.webhooks.spec import WebhookSpec

__all__ = ["ALL_TASKS", "Capabilities", "ChangePage", "ChangesUnavailable", "JobDeleted", "Lease", "NewCrawl",
           "NewTask", "RobotsEntry", "TaskFilter"]


class ChangesUnavailable(Exception):
    """The backend cannot stream changes; processes fall back to polling recent changes."""


@dataclass(frozen=True)
class ChangePage:
    """A page of the store's change log: each job's state as of each change, in the order they were made."""

    tasks: list[Task] = field(default_factory=list)
    position: Any = None  # opaque: where the next changes_after reads on
    more: bool = False  # the page is full: read on at once
    lost: bool = False  # changes after the position asked for were pruned before they were read
    deleted: list[str] = field(default_factory=list)  # jobs deleted after the position: no state of them follows
    commit_order: bool = False  # the tasks are in the order they were committed, not only stamped


@dataclass(frozen=True)
class JobDeleted:
    """A change stream's word that a job was deleted: no state of it follows."""

    task_id: str


@dataclass(frozen=True)
class NewTask:
    """A validated URL and its spec, ready to be stored as a queued task."""

    id: str
    url: str
    host: str
    spec: JobSpec = DEFAULT_SPEC
    batch_id: str | None = None
    crawl_id: str | None = None
    depth: int | None = None
    parent_id: str | None = None
    crawl_key: str | None = None  # the page's URL as its crawl tells pages apart (each crawled once)

    @property
    def reuse_key(self) -> str:
        """The key freshness reuse looks results up by."""
        key = self.spec.fetch.reuse_key(self.url)
        if self.spec.render is None:
            return key
        # a rendered page answers differently from a fetched one, and with its options
        material = json.dumps([key, stored_render(self.spec.render, self.spec.capture)], separators=(",", ":"))
        return hashlib.sha256(material.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class NewCrawl:
    """A validated crawl request, ready to be stored with its seeds."""

    id: str
    seeds: list[str]
    options: dict[str, Any]  # as the crawl's JSON shows them
    max_pages: int
    tags: tuple[str, ...] = ()
    webhook: WebhookSpec | None = None
    seeding_seconds: float = 0.0  # how long its sitemaps may take to read; 0: none are read
    skipped: dict[str, int] = field(default_factory=dict)  # seeds left out before storing (robots, scope)


@dataclass(frozen=True)
class TaskFilter:
    """Which tasks a listing shows; every field narrows it (AND). Values are the canonical text of
    jobqueue.filters' parsers (what cursors carry); `http_status` is a code or a class like `4xx`."""

    status: str | None = None
    batch: str | None = None
    crawl: str | None = None
    tag: str | None = None
    host: str | None = None
    http_status: str | None = None
    error: str | None = None
    url: str | None = None
    q: str | None = None
    since: str | None = None
    until: str | None = None

    @property
    def empty(self) -> bool:
        """True when nothing narrows the listing."""
        return all(getattr(self, name) is None for name in self.__dataclass_fields__)


ALL_TASKS = TaskFilter()


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do beyond the common interface, declared instead of probed."""

    change_stream: bool = False
    # add() of many jobs stores all of them or none (one transaction): only then may submissions that arrive
    # together share one add, since a failed shared add is tried again request by request
    atomic_add: bool = False
    # the TaskFilter fields its listings can narrow by; `q` means full-text search of stored pages
    list_filters: tuple[str, ...] = ("status", "batch")
    # complete_many() writes the completions of one IOLoop turn together (CompletionGroups)
    grouped_complete: bool = False


@dataclass(frozen=True)
class Lease:
    """Proof that this process holds a claimed task; stale leases are refused."""

    task_id: str
    token: str


@dataclass(frozen=True)
class RobotsEntry:
    """An origin's robots.txt as fetched once and shared by every process until `expires_at` (jobqueue/robots.py)."""

    origin: str  # scheme://host[:port], lower case
    status: int | None  # the final HTTP status after redirects; None: a network error (nothing allowed)
    body: str  # the first 500 KiB, decoded as UTF-8 (empty unless 2xx)
    fetched_at: float
    expires_at: float
