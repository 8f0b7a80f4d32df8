"""Acting on every job a filter matches: cancel, retry or delete, a chunk at a time.

The matching jobs are listed newest first, a chunk per store read, and each chunk is changed in one
store write, so other requests and the IOLoop go on between chunks however many jobs match. Each
changed job is announced once, like a single change. Only the jobs in the states an action applies
to are listed (queued and running ones for cancel, finished ones for retry and delete), so a filter
that matches a million finished jobs costs nothing to cancel.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jobqueue.errors import BadRequest
from jobqueue.filters import TASK_FILTERS
from jobqueue.models import CANCELLED, COMPLETED, FAILED, QUEUED, RUNNING, Task
from jobqueue.store.base import TaskFilter

CHUNK = 500
ACTIONS = {"cancel": (QUEUED, RUNNING), "retry": (COMPLETED, FAILED, CANCELLED),
           "delete": (COMPLETED, FAILED, CANCELLED)}


@dataclass(frozen=True)
class BulkRequest:
    """A validated `POST /queue_tasks/bulk` body."""

    action: str
    where: TaskFilter


def parse_bulk(body: Any) -> BulkRequest:
    """Read `{"action": ..., "filter": {...}}`; an empty filter is refused: everything needs `{"all": true}`."""
    if not isinstance(body, dict) or set(body) - {"action", "filter"}:
        raise BadRequest("invalid_request", 'send {"action": "cancel" | "retry" | "delete", "filter": {...}}')
    action = body.get("action")
    if not isinstance(action, str) or action not in ACTIONS:
        raise BadRequest("invalid_field", "action must be cancel, retry or delete")
    raw = body.get("filter")
    if not isinstance(raw, dict) or not raw:
        raise BadRequest("empty_filter", 'give a filter (the fields of GET /queue_tasks, like {"status": "failed"}); '
                         'to act on every job, send {"filter": {"all": true}}')
    if "all" in raw:
        if raw != {"all": True}:
            raise BadRequest("invalid_field", '"all" must be true and stand alone: {"filter": {"all": true}}')
        return BulkRequest(action, TaskFilter())
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
    return BulkRequest(action, TaskFilter(**values))


async def run_bulk(store: Any, request: BulkRequest, publish: Callable[[Task], None],
                   deleted: Callable[[str], None], cancel_local: Callable[[str], None]) -> tuple[int, int]:
    """Apply the action to every matching job in the states it applies to; (matched, changed)."""
    matched = changed = 0
    where = request.where
    for status in ACTIONS[request.action]:
        if where.status is not None and where.status != status:
            continue
        narrowed = dataclasses.replace(where, status=status)
        cursor: str | None = None
        while True:
            page = await store.list(narrowed, CHUNK, cursor)
            ids = [t.id for t in page.items if t.status == status]
            matched += len(ids)
            if request.action == "cancel":
                for task in await store.cancel_many(ids):
                    cancel_local(task.id)
                    publish(task)
                    changed += 1
            elif request.action == "retry":
                for task in await store.retry_many(ids):
                    publish(task)
                    changed += 1
            else:
                for task_id in await store.delete_many(ids):
                    deleted(task_id)
                    changed += 1
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
            await asyncio.sleep(0)
    return matched, changed
