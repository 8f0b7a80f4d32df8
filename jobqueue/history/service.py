"""The history operations the API offers (storage figures, a URL's timeline, diffs, schedules, purge),
over the JobService's store and publisher, so they need no wiring of their own."""

from __future__ import annotations

import asyncio
from typing import Any

from jobqueue.errors import Conflict, NotFound
from jobqueue.history.diff import diff_main_texts, diff_results
from jobqueue.models import FINISHED, Page, Result, Schedule
from jobqueue.service import JobService
from jobqueue.urls import normalize_url


class HistoryService:
    """History, storage and schedules over the job service's store."""

    def __init__(self, jobs: JobService) -> None:
        self.jobs = jobs
        self.store: Any = jobs.store

    async def storage(self) -> dict[str, int]:
        """GET /stats/storage."""
        return await self.store.storage_stats()

    async def history(self, raw_url: str, limit: int, cursor: str | None) -> Page:
        """A URL's results, newest first, normalised as a submission would be."""
        return await self.store.history(history_url(raw_url, self.jobs), limit, cursor)

    async def diff(self, task_id: str, against: str) -> dict[str, Any]:
        """The changes from `against`'s result (old) to `task_id`'s (new)."""
        new, old = await self._result(task_id), await self._result(against)
        return await asyncio.to_thread(diff_results, old, new)

    async def text_diff(self, task_id: str, against: str, views: Any) -> dict[str, Any]:
        """The changes of the main text from `against`'s result to `task_id`'s (NotHtml and the extraction
        errors of ReadableViews when either page has no main text)."""
        new, old = await self._result(task_id), await self._result(against)
        new_text, old_text = (await views.of(new)).text, (await views.of(old)).text
        return await asyncio.to_thread(diff_main_texts, old, new, old_text, new_text)

    async def _result(self, task_id: str) -> Result:
        result = await self.store.get_result(task_id, with_body=True)
        if result is not None:
            return result
        task = await self.store.get(task_id)
        if task is None:
            raise NotFound(task_id)
        error = Conflict(task, f"task {task_id} is {task.status} and has no result to compare")
        error.code = "no_result"
        raise error

    async def schedules(self, limit: int, cursor: str | None) -> Page:
        """A page of schedules, newest first."""
        return await self.store.list_schedules(limit, cursor)

    async def schedule(self, schedule_id: str) -> Schedule:
        """One schedule (NotFound)."""
        found = await self.store.get_schedule(schedule_id)
        if found is None:
            raise NotFound(schedule_id, "schedule")
        return found

    async def stop_schedule(self, schedule_id: str) -> Schedule:
        """Stop a recurring fetch; its queued run is cancelled (and announced), stored runs stay."""
        schedule, cancelled = await self.store.stop_schedule(schedule_id)
        for task in cancelled:
            self.jobs.publish(task)
        return schedule

    async def purge(self, task_id: str) -> str:
        """Delete one finished job with its result and (unshared) body (NotFound, Conflict)."""
        deleted = await self.store.delete_many([task_id])
        if not deleted:
            task = await self.store.get(task_id)
            if task is None:
                raise NotFound(task_id)
            if task.status not in FINISHED:
                raise Conflict(task, f"task {task_id} is still {task.status}; cancel it first (DELETE without "
                               "purge), then purge it")
        self.jobs.deleted(task_id)
        return task_id


def history_url(raw: str, jobs: JobService) -> str:
    """The stored form of a URL, as the submission of `raw` would have stored it."""
    return normalize_url(raw, jobs.policy).url
