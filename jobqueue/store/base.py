"""The narrow interface every storage backend implements, and its errors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from jobqueue.errors import BadCursor, Conflict, NotFound, StoreError
from jobqueue.models import Page, Result, Task, TaskError

__all__ = ["BadCursor", "ChangesUnavailable", "Conflict", "Lease", "NewTask", "NotFound", "Store", "StoreError"]


class ChangesUnavailable(Exception):
    """The backend cannot stream changes; processes fall back to polling recent changes."""


@dataclass(frozen=True)
class NewTask:
    """A validated URL ready to be stored as a queued task."""

    id: str
    url: str
    host: str


@dataclass(frozen=True)
class Lease:
    """Proof that this process holds a claimed task; stale leases are refused."""

    task_id: str
    token: str


class Store(Protocol):
    """Durable task storage with leases, shared by the SQLite and MongoDB backends."""

    name: str

    async def open(self) -> None:
        """Connect and create what the queries need (idempotent)."""

    async def close(self) -> None:
        """Flush pending writes and release the connection."""

    async def ping(self) -> None:
        """Raise StoreError when the database does not answer."""

    async def add(self, tasks: list[NewTask]) -> list[Task]:
        """Store new queued tasks durably before returning them."""

    async def get(self, task_id: str) -> Task | None:
        """Read one task."""

    async def list(self, status: str | None, limit: int, cursor: str | None) -> Page:
        """List tasks newest first, optionally of one status, paged by an opaque cursor."""

    async def counts(self) -> dict[str, int]:
        """Count tasks by status without scanning them."""

    async def claim(self, limit: int, lease_seconds: float, exclude_hosts: list[str]) -> list[Task]:
        """Atomically take up to `limit` due tasks, marking them running under a fresh lease."""

    async def extend(self, leases: list[Lease], lease_seconds: float) -> list[str]:
        """Push the leases' expiry forward; return the ids whose lease was lost."""

    async def release(self, leases: list[Lease]) -> list[Task]:
        """Give claimed tasks back to the queue (shutdown), not counting the attempt."""

    async def complete(self, lease: Lease, result: Result) -> Task | None:
        """Store the result and mark the task completed; None when the lease is stale."""

    async def reschedule(self, lease: Lease, at: float, error: TaskError, http_status: int | None) -> Task | None:
        """Queue the task again for a later attempt; None when the lease is stale."""

    async def fail(self, lease: Lease, error: TaskError, http_status: int | None) -> Task | None:
        """Mark the task failed for good; None when the lease is stale."""

    async def cancel(self, task_id: str) -> Task:
        """Cancel an unfinished task (NotFound, Conflict)."""

    async def retry(self, task_id: str) -> Task:
        """Queue a finished task again, dropping its old result (NotFound, Conflict)."""

    async def get_result(self, task_id: str, with_body: bool) -> Result | None:
        """Read the stored result of a task, with or without its body."""

    async def list_results(self, limit: int, cursor: str | None) -> Page:
        """List results newest first without bodies."""

    async def changed_since(self, since: float, limit: int) -> list[Task]:
        """Tasks whose state changed at or after `since`, oldest change first."""
