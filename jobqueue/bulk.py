"""Acting on every job a filter matches: cancel, retry or delete, a chunk at a time.

The matching jobs are listed newest first, a chunk per store read, and each chunk is changed in one
store write, so other requests and the IOLoop go on between chunks however many jobs match. Each
changed job is announced once, like a single change. Only the jobs in the states an action applies
to are listed (queued and running ones for cancel, finished ones for retry and delete), so a filter
that matches a million finished jobs costs nothing to cancel. A dry run lists the same jobs and changes
none: its `matched` is what a confirmation ("retry 3 failed jobs?") can promise. Instead of a filter, `ids` names
up to MAX_IDS jobs (a dashboard's selection); the jobs changed are named in the answer (`changed_ids`) when there
are at most MAX_IDS of them, so a client can undo a cancel (retry them) or a retry (cancel them).
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jobqueue.errors import BadRequest
from jobqueue.filters import TASK_FILTERS
from jobqueue.models import CANCELLED, COMPLETED, FAILED, QUEUED, RUNNING, Task
from jobqueue.store.base import TaskFilter

CHUNK = 500
MAX_IDS = 1000  # jobs a request may name, and changed jobs an answer names
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
ACTIONS = {"cancel": (QUEUED, RUNNING), "retry": (COMPLETED, FAILED, CANCELLED),
           "delete": (COMPLETED, FAILED, CANCELLED)}


@dataclass(frozen=True)
class BulkRequest:
    """A validated `POST /queue_tasks/bulk` body."""

    action: str
    where: TaskFilter
    dry_run: bool = False           # count what the action would match, change nothing
    ids: tuple[str, ...] | None = None  # exactly these jobs (those in a state the action applies to), not a filter


@dataclass
class BulkOutcome:
    """What a bulk action matched and changed, and which jobs it changed (None: more than MAX_IDS)."""

    matched: int = 0
    changed: int = 0
    changed_ids: list[str] | None = dataclasses.field(default_factory=list)

    def note(self, ids: list[str]) -> None:
        """Count a chunk of changed jobs, naming them while there are at most MAX_IDS."""
        self.changed += len(ids)
        if self.changed_ids is not None:
            self.changed_ids = self.changed_ids + ids if self.changed <= MAX_IDS else None


def parse_bulk(body: Any) -> BulkRequest:
    """Read `{"action": ..., "filter": {...}, "dry_run": false}`; an empty filter is refused: everything needs
    `{"all": true}`."""
    if not isinstance(body, dict) or set(body) - {"action", "filter", "dry_run", "ids"}:
        raise BadRequest("invalid_request", 'send {"action": "cancel" | "retry" | "delete", "filter": {...}} (or '
                         '"ids": [...] instead of "filter"), and "dry_run": true to only count the matching jobs')
    action = body.get("action")
    if not isinstance(action, str) or action not in ACTIONS:
        raise BadRequest("invalid_field", "action must be cancel, retry or delete")
    dry_run = body.get("dry_run", False)
    if not isinstance(dry_run, bool):
        raise BadRequest("invalid_field", "dry_run must be true or false")
    if "ids" in body:
        return BulkRequest(action, TaskFilter(), dry_run, _ids(body))
    raw = body.get("filter")
    if not isinstance(raw, dict) or not raw:
        raise BadRequest("empty_filter", 'give a filter (the fields of GET /queue_tasks, like {"status": "failed"}); '
                         'to act on every job, send {"filter": {"all": true}}')
    if "all" in raw:
        if raw != {"all": True}:
            raise BadRequest("invalid_field", '"all" must be true and stand alone: {"filter": {"all": true}}')
        return BulkRequest(action, TaskFilter(), dry_run)
    unknown = sorted(set(raw) - set(TASK_FILTERS))
    if unknown:
        raise BadRequest("unknown_field", f"filter.{unknown[0][:64]}: not a filter; the filters are "
                         f"{', '.join(TASK_FILTERS)} (or all)")
    values = {}
    for name, value in raw.items():
        if not isinstance(value, str):
            raise BadRequest("invalid_filter", f'filter.{name}: give a string, as in the query of GET /queue_tasks '
                             '(like "404" or "4xx" for http_status)')
        values[name] = TASK_FILTERS[name](value)
    return BulkRequest(action, TaskFilter(**values), dry_run)


def _ids(body: dict[str, Any]) -> tuple[str, ...]:
    """The `ids` of a bulk body: 1 to MAX_IDS job ids, never beside a filter."""
    if "filter" in body:
        raise BadRequest("invalid_request", 'give either "filter" or "ids", not both')
    raw = body["ids"]
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_IDS:
        raise BadRequest("invalid_field", f"ids: give a list of 1 to {MAX_IDS} job ids")
    for index, value in enumerate(raw):
        if not isinstance(value, str) or not _ID.fullmatch(value):
            raise BadRequest("invalid_field", f"ids[{index}]: not a job id (1-64 of A-Z a-z 0-9 _ -)")
    return tuple(dict.fromkeys(raw))


async def run_bulk(store: Any, request: BulkRequest, publish: Callable[[Task], None],
                   deleted: Callable[[str], None], cancel_local: Callable[[str], None]) -> BulkOutcome:
    """Apply the action to every matching job in the states it applies to. A dry run counts the same jobs the
    action would match, by the same listing, and changes none."""
    outcome = BulkOutcome()
    if request.ids is not None:
        states = ACTIONS[request.action]
        for start in range(0, len(request.ids), CHUNK):
            found = [await store.get(task_id) for task_id in request.ids[start:start + CHUNK]]
            ids = [t.id for t in found if t is not None and t.status in states]
            outcome.matched += len(ids)
            if not request.dry_run:
                outcome.note(await _apply(store, request.action, ids, publish, deleted, cancel_local))
        return outcome
    where = request.where
    for status in ACTIONS[request.action]:
        if where.status is not None and where.status != status:
            continue
        narrowed = dataclasses.replace(where, status=status)
        cursor: str | None = None
        while True:
            page = await store.list(narrowed, CHUNK, cursor)
            ids = [t.id for t in page.items if t.status == status]
            outcome.matched += len(ids)
            if not request.dry_run:
                outcome.note(await _apply(store, request.action, ids, publish, deleted, cancel_local))
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
            await asyncio.sleep(0)
    return outcome


async def _apply(store: Any, action: str, ids: list[str], publish: Callable[[Task], None],
                 deleted: Callable[[str], None], cancel_local: Callable[[str], None]) -> list[str]:
    """Change one chunk of jobs in one store write, announcing each; the ids changed."""
    if not ids:
        return []
    if action == "cancel":
        cancelled = await store.cancel_many(ids)
        for task in cancelled:
            cancel_local(task.id)
            publish(task)
        return [t.id for t in cancelled]
    if action == "retry":
        queued = await store.retry_many(ids)
        for task in queued:
            publish(task)
        return [t.id for t in queued]
    gone = await store.delete_many(ids)
    for task_id in gone:
        deleted(task_id)
    return list(gone)
