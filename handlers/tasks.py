"""`/queue_tasks`: submit, list, inspect, cancel and retry tasks."""

from __future__ import annotations

from dataclasses import replace

from jobqueue.bulk import parse_bulk
from jobqueue.errors import Code, NotFound
from jobqueue.filters import TASK_FILTERS
from jobqueue.history.service import HistoryService
from jobqueue.idempotency import IdempotentAdd, StoredAnswer
from jobqueue.models import Task
from jobqueue.service import MAX_BATCH
from jobqueue.store.base import ALL_TASKS, Store, TaskFilter
from jobqueue.submission import QUERY_FIELDS

from .base import ApiError, BaseAPIHandler
from .paging import PAGING, continue_listing
from .submit import SubmitHandler

API = "/jobqueue/api/v1.0"
COUNT_CAP = 100_000  # a listing's `matched` counts at most this many jobs (docs/API.md, "Finding jobs")


class TaskListHandler(SubmitHandler):
    """POST one URL, many URLs or jobs (JSON, plain text or a form); GET a page of tasks with counts."""

    query_parameters = {"GET": (*PAGING, *TASK_FILTERS), "POST": tuple(QUERY_FIELDS)}

    async def post(self) -> None:
        key = self.idempotency_key()
        submission = await self.read_submission(MAX_BATCH)

        def render(tasks: list[Task]) -> StoredAnswer:
            if submission.single:
                return self.answer(201, {"task": tasks[0].to_json()}, f"{API}/queue_tasks/{tasks[0].id}")
            return self.answer(201, {"tasks": [t.to_json() for t in tasks]}, None)

        async def work() -> None:
            idempotent = IdempotentAdd(key, render) if key is not None else None
            tasks = await self.service.submit(submission, self.client_key, idempotent)
            self.replay(render(tasks))  # the same answer a repeat of this key gets

        await self.once(key, work)

    async def get(self) -> None:
        query = continue_listing(self, "tasks", TASK_FILTERS)
        where = TaskFilter(**query.filters)
        page, counts = await self.service.list(where, query.limit, query.store_cursor)
        answer: dict[str, object] = {"tasks": [t.to_json() for t in page.items], "next": query.next(page.next_cursor),
                                     "counts": counts}
        if query.store_cursor is None:  # the first page: the pages after it match the same jobs
            answer.update(await matched(self.service.store, where, counts))
        self.write_json(answer)


async def matched(store: Store, where: TaskFilter, counts: dict[str, int]) -> dict[str, object]:
    """`matched` (jobs the whole filter matches) and `matched_counts` (by status, the status filter left out), so a
    client can say "N jobs match" and count its status chips for the search; nothing when the store cannot count the
    filter cheaply (more than COUNT_CAP jobs to read)."""
    search = replace(where, status=None)
    by_status = counts if search == ALL_TASKS else await store.count_matching(search, COUNT_CAP)
    if by_status is None:
        return {}
    total = by_status.get(where.status, 0) if where.status is not None else sum(by_status.values())
    return {"matched": total, "matched_counts": by_status}


class TaskHandler(BaseAPIHandler):
    """GET one task; DELETE cancels it, or with `?purge=true` deletes a finished one with its result."""

    query_parameters = {"DELETE": ("purge",)}

    async def get(self, task_id: str) -> None:
        task = await self.service.get(task_id)
        if task is None:
            raise NotFound(task_id)
        self.write_json({"task": task.to_json()})

    async def delete(self, task_id: str) -> None:
        if self._purge():
            self.write_json({"deleted": await HistoryService(self.service).purge(task_id)})
            return
        task = await self.service.cancel(task_id)
        self.write_json({"task": task.to_json()})

    def _purge(self) -> bool:
        """`?purge=true` deletes a finished job for good; anything else but false/absent is a clear 400."""
        raw = self.get_query_argument("purge", "false").lower()
        if raw not in ("true", "false", "1", "0"):
            raise ApiError.of(Code.INVALID_PURGE, f"purge must be true or false, not {raw!r}")
        return raw in ("true", "1")


class TaskRetryHandler(BaseAPIHandler):
    """POST runs a finished task again."""

    async def post(self, task_id: str) -> None:
        task = await self.service.retry(task_id)
        self.write_json({"task": task.to_json()})


class BulkHandler(BaseAPIHandler):
    """POST cancels, retries or deletes every job a filter matches, or the jobs it names."""

    async def post(self) -> None:
        request = parse_bulk(self.get_json_body())
        outcome = await self.service.bulk(request)
        answer = {"action": request.action, "matched": outcome.matched, "changed": outcome.changed}
        if outcome.changed_ids is not None:
            answer["changed_ids"] = outcome.changed_ids
        self.write_json(answer)
