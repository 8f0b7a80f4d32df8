"""The one walk every export format shares: the filtered task list, page by page, with each result."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from jobqueue.export.views import asked_of, views_of
from jobqueue.models import COMPLETED, Result, Task
from jobqueue.store.base import Store, TaskFilter

if TYPE_CHECKING:
    from jobqueue.readable import ReadableViews

PAGE_SIZE = 200  # tasks per store.list call
# results read at once: with bodies few (each may be as large as --max-body-size), without many
WINDOW_WITH_BODY = 4
WINDOW_WITHOUT_BODY = 50


@dataclass(frozen=True)
class ExportItem:
    """One job of an export: the task as listed, and its stored result when it completed."""

    task: Task
    result: Result | None
    views: dict[str, Any] | None = None  # the readable views its line carries (JSON Lines), by name


class Encoder(Protocol):
    """Turns export items into the bytes of one format; the walk is the same for all of them."""

    media_type: str
    extension: str
    with_body: bool
    views: tuple[str, ...] | None  # views asked of every job (with=); None: the format carries none at all

    def begin(self) -> bytes:
        """What the export starts with (a header row, a warcinfo record), possibly nothing."""

    def encode(self, item: ExportItem) -> bytes:
        """The bytes of one job (possibly nothing: a WARC has no record for a job that fetched nothing)."""

    def end(self) -> bytes:
        """What closes a complete export, possibly nothing."""


async def walk(store: Store, where: TaskFilter, with_body: bool, page_size: int = PAGE_SIZE, *,
               views: ReadableViews | None = None,
               wanted: tuple[str, ...] | None = None) -> AsyncGenerator[ExportItem, None]:
    """Yield every task the filter matches, newest first, each with its result, holding one page at a time.

    With `views` and `wanted` (an encoder's `views`), a completed job also gets the readable views that
    `wanted` or its own `formats` ask for, read through ReadableViews (stored ones, else extracted now).

    The walk follows the store's own cursor, so tasks submitted after it started (newer than its first
    page) are not part of it, and a task that changes status while it runs is shown as it was read.
    """
    window = WINDOW_WITH_BODY if with_body else WINDOW_WITHOUT_BODY
    cursor: str | None = None
    while True:
        page = await store.list(where, page_size, cursor)
        tasks: list[Task] = page.items
        for start in range(0, len(tasks), window):
            group = tasks[start:start + window]
            items = await asyncio.gather(*(_item(store, t, with_body, views, wanted) for t in group))
            for item in items:
                yield item
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


async def _item(store: Store, task: Task, with_body: bool, views: ReadableViews | None,
                wanted: tuple[str, ...] | None) -> ExportItem:
    result = await _result(store, task, with_body)
    if result is None or views is None or wanted is None:
        return ExportItem(task, result)
    names = asked_of(task, wanted)
    return ExportItem(task, result, await views_of(views, result, names) if names else None)


async def _result(store: Store, task: Task, with_body: bool) -> Result | None:
    if task.status != COMPLETED:
        return None
    result = await store.get_result(task.id, with_body)
    if with_body and result is not None and result.captured:  # a render's screenshot and PDF go with its body
        for kind in result.captured:
            data = await store.get_artifact(task.id, kind)
            if data is not None:
                result.artifacts[kind] = data
    return result
