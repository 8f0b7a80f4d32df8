"""Group commit for submissions: the jobs of requests that arrive together are stored by one `store.add`.

Every write already waits for a durable commit, and the SQLite writer shares one commit among the writes
queued at once. Each write still costs a future, a hand-over to the writer thread, a savepoint and a
wake-up of the IOLoop when it is done; a burst of single-URL POSTs paid those once per request. Here the
requests that reach the store in one IOLoop iteration are stored by one call and answered together, in
order. If that call fails, each request is tried again alone, so one request's bad job never fails
another's. That retry is safe only where an add stores all its jobs or none (SQLite); on a store that
cannot promise it (MongoDB inserts without a transaction) a failed shared add could leave some requests'
jobs stored and their retries refused, so there every request is its own add.
"""

from __future__ import annotations

import asyncio
import logging

from jobqueue.models import Task
from jobqueue.store.base import NewTask, Store

log = logging.getLogger("jobqueue.submit_group")


class SubmitGroup:
    """Collects the `add`s of one IOLoop iteration and stores them with one call to the store."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.grouping = store.capabilities.atomic_add
        self._waiting: list[tuple[list[NewTask], asyncio.Future[list[Task]]]] = []
        self._storing: set[asyncio.Task[None]] = set()

    async def add(self, tasks: list[NewTask]) -> list[Task]:
        """Store `tasks` durably with whatever else arrives in this iteration; the stored tasks, in order."""
        if not self.grouping:
            return await self.store.add(tasks)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Task]] = loop.create_future()
        if not self._waiting:
            loop.call_soon(self._flush)
        self._waiting.append((tasks, future))
        return await future

    def _flush(self) -> None:
        waiting, self._waiting = self._waiting, []
        task = asyncio.ensure_future(self._store(waiting))
        self._storing.add(task)  # held until done: the loop keeps only a weak reference
        task.add_done_callback(self._storing.discard)

    async def _store(self, waiting: list[tuple[list[NewTask], asyncio.Future[list[Task]]]]) -> None:
        if len(waiting) == 1:
            await self._alone(*waiting[0])
            return
        try:
            stored = await self.store.add([task for tasks, _ in waiting for task in tasks])
        except Exception as exc:  # one request's jobs may be the cause: give each its own answer
            log.debug("a grouped submission failed (%s); storing its requests one by one", exc)
            await asyncio.gather(*(self._alone(tasks, future) for tasks, future in waiting))
            return
        start = 0
        for tasks, future in waiting:
            if not future.done():
                future.set_result(stored[start:start + len(tasks)])
            start += len(tasks)

    async def _alone(self, tasks: list[NewTask], future: asyncio.Future[list[Task]]) -> None:
        try:
            stored = await self.store.add(tasks)
        except Exception as exc:
            if not future.done():
                future.set_exception(exc)
            return
        if not future.done():
            future.set_result(stored)
