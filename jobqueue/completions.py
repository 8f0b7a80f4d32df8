"""A fetched response turned into the stored result, and the completions of one IOLoop turn written as one."""

from __future__ import annotations

import asyncio
from typing import Protocol, cast

from jobqueue.charset import detect_encoding
from jobqueue.fetcher import FetchResponse
from jobqueue.models import Result, Task
from jobqueue.store.base import Lease, Store


def result_from_response(task_id: str, response: FetchResponse) -> Result:
    """Turn a fetched response into the stored result, recording the charset it decodes with."""
    content_type = response.headers.get("content-type")
    encoding, source = detect_encoding(response.body, content_type)
    media_type = content_type.split(";", 1)[0].strip().lower() if content_type else None
    return Result(
        id=task_id,
        url=response.url,
        final_url=response.final_url,
        http_status=response.http_status,
        headers=response.headers,
        content_type=media_type,
        encoding=encoding,
        encoding_source=source,
        size=len(response.body),
        truncated=False,
        elapsed_ms=response.elapsed_ms,
        fetched_at=response.fetched_at,
        sha256=response.sha256,
        redirects=response.redirects,
        timings=response.timings,
        body=response.body,
        raw_headers=response.raw_headers or None,
    )


class GroupedCompletions(Protocol):
    """What a store with `Capabilities.grouped_complete` adds to the Store Protocol (SQLite's writer thread)."""

    async def complete_many(self, completions: list[tuple[Lease, Result]],
                            digests_checked: bool = False) -> list[Task | Exception | None]:
        """Each completion's finished job, None when its lease was lost, or the error that refused it."""
        ...


class CompletionGroups:
    """Completions finished during one turn of the IOLoop, written as one group when the store can
    (`Capabilities.grouped_complete`: `complete_many`), so a job costs neither its own write nor its own answer
    from the writer thread.
    Each job's future resolves only once its completion is committed, as with `complete`."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.grouped = store.capabilities.grouped_complete
        self._waiting: list[tuple[Lease, Result, asyncio.Future[Task | None]]] = []
        self._writing: set[asyncio.Task[None]] = set()

    def complete(self, lease: Lease, result: Result) -> asyncio.Future[Task | None]:
        """Queue one completion; it is written with the others of this turn."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Task | None] = loop.create_future()
        self._waiting.append((lease, result, future))
        if len(self._waiting) == 1:
            loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        waiting, self._waiting = self._waiting, []
        writing = asyncio.ensure_future(self._write(waiting))
        self._writing.add(writing)
        writing.add_done_callback(lambda done: self._written(done, waiting))

    def _written(self, writing: asyncio.Task[None],
                 waiting: list[tuple[Lease, Result, asyncio.Future[Task | None]]]) -> None:
        self._writing.discard(writing)
        if writing.cancelled():  # the loop is going away: no job may wait on its answer for ever
            for _lease, _result, future in waiting:
                future.cancel()
            return
        bug = writing.exception()
        if bug is not None:  # a bug in handing out the answers: each job left waiting hears of it (internal_error)
            for _lease, _result, future in waiting:
                if not future.done():
                    future.set_exception(bug)

    async def _write(self, waiting: list[tuple[Lease, Result, asyncio.Future[Task | None]]]) -> None:
        outcomes: list[Task | Exception | None]
        try:
            # result_from_response took each sha256 from the body just fetched: the store need not hash again
            grouped = cast(GroupedCompletions, self.store)  # only used when its capabilities say it has it
            outcomes = await grouped.complete_many([(lease, result) for lease, result, _ in waiting],
                                                   digests_checked=True)
        except Exception as exc:
            outcomes = [exc] * len(waiting)
        for (_lease, _result, future), outcome in zip(waiting, outcomes, strict=True):
            if future.done():  # its job was cancelled meanwhile; the completion was still written or refused
                continue
            if isinstance(outcome, Exception):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)


