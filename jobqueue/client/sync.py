"""Client: the same API for plain blocking code, run by an AsyncClient on a private loop thread."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import threading
from collections.abc import Callable, Coroutine, Iterable, Iterator
from typing import Any, BinaryIO, TypeVar

from .aio import DEFAULT_SERVER, AsyncClient, Export
from .models import Batch, Crawl, Result, Task

T = TypeVar("T")


class Client:
    """The jobqueue API, blocking: `with Client(url, token) as jq: jq.wait(jq.submit(url).id)`.

    Usable from any thread, even one running its own event loop (calls then block that loop: use
    AsyncClient there). The live stream is AsyncClient.events().
    """

    def __init__(self, server: str = DEFAULT_SERVER, token: str | None = None, *, timeout: float = 60.0,
                 max_wait: float = 120.0) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="jobqueue-client", daemon=True)
        self._thread.start()
        self._async = AsyncClient(server, token, timeout=timeout, max_wait=max_wait)

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections and stop the loop thread."""
        if self._loop.is_closed():
            return

        async def shut() -> None:
            self._async.close()

        self._run(shut())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    @property
    def server(self) -> str:
        """The server's base address."""
        return self._async.server

    def submit(self, url: str, *, idempotency_key: str | None = None, **spec: Any) -> Task:
        """Add one job; `spec` takes the job spec's fields (fetch={...}, priority=, tags=[...], ...)."""
        return self._run(self._async.submit(url, idempotency_key=idempotency_key, **spec))

    def submit_many(self, urls: Iterable[str], *, idempotency_key: str | None = None, **spec: Any) -> list[Task]:
        """Add up to 1,000 jobs in one request."""
        return self._run(self._async.submit_many(urls, idempotency_key=idempotency_key, **spec))

    def submit_batch(self, urls: Iterable[str] | str, *, idempotency_key: str | None = None, **spec: Any) -> Batch:
        """Add up to 100,000 jobs as one batch (see AsyncClient.submit_batch)."""
        return self._run(self._async.submit_batch(urls, idempotency_key=idempotency_key, **spec))

    def get(self, task_id: str) -> Task:
        """One job as it is now."""
        return self._run(self._async.get(task_id))

    def batch(self, batch_id: str) -> Batch:
        """One batch with its counts."""
        return self._run(self._async.batch(batch_id))

    def counts(self) -> dict[str, int]:
        """Jobs in the whole queue by status."""
        return self._run(self._async.counts())

    def cancel(self, task_id: str) -> Task:
        """Cancel a job that has not finished."""
        return self._run(self._async.cancel(task_id))

    def result(self, task_id: str) -> Result:
        """A completed job's result with its body as text; APIError `no_result` while it has none. Its
        `markdown()`, `text()` and `links()` ask this client."""
        return dataclasses.replace(self._run(self._async.result(task_id)), reader=self)

    def markdown(self, task_id: str, main_content: bool = True) -> str:
        """A completed job's page as Markdown, main content only unless main_content=False (APIError
        `not_html` for a binary body)."""
        return self._run(self._async.markdown(task_id, main_content))

    def text(self, task_id: str) -> str:
        """A completed job's main content as plain text (APIError `not_html` for a binary body)."""
        return self._run(self._async.text(task_id))

    def links(self, task_id: str) -> list[dict[str, str]]:
        """A completed job's links, `[{"url", "text", "rel"}]`: absolute, each once, in page order."""
        return self._run(self._async.links(task_id))

    def body(self, task_id: str) -> bytes:
        """A completed job's body, the bytes as fetched."""
        return self._run(self._async.body(task_id))

    def wait(self, task_id: str, timeout: float | None = None) -> Task:
        """Block until the job is finished; WaitTimeout after `timeout` seconds."""
        return self._run(self._async.wait(task_id, timeout))

    def wait_batch(self, batch_id: str, timeout: float | None = None,
                   on_progress: Callable[[Batch], None] | None = None) -> Batch:
        """Block until the batch is finished, calling `on_progress` (on the client's thread) as it moves."""
        return self._run(self._async.wait_batch(batch_id, timeout, on_progress))

    def crawl(self, url: str | Iterable[str], **options: Any) -> Crawl:
        """Start a crawl from one seed URL or several (see AsyncClient.crawl)."""
        return self._run(self._async.crawl(url, **options))

    def get_crawl(self, crawl_id: str) -> Crawl:
        """One crawl with its counts, discovered pages and skipped links."""
        return self._run(self._async.get_crawl(crawl_id))

    def crawl_page(self, cursor: str | None = None, limit: int | None = None) -> tuple[list[Crawl], str | None]:
        """One page of crawls, newest first, and the cursor of the next page (None on the last)."""
        return self._run(self._async.crawl_page(cursor, limit))

    def crawls(self, page_size: int | None = None) -> Iterator[Crawl]:
        """Every crawl, newest first, read a page at a time as the iteration goes."""
        cursor: str | None = None
        while True:
            page, cursor = self.crawl_page(cursor, page_size)
            yield from page
            if cursor is None:
                return

    def cancel_crawl(self, crawl_id: str) -> Crawl:
        """Stop a crawl: its unfinished pages are cancelled, finished ones stay."""
        return self._run(self._async.cancel_crawl(crawl_id))

    def wait_crawl(self, crawl_id: str, timeout: float | None = None,
                   on_progress: Callable[[Crawl], None] | None = None) -> Crawl:
        """Block until the crawl is finished or cancelled, calling `on_progress` (on the client's thread) as it
        moves."""
        return self._run(self._async.wait_crawl(crawl_id, timeout, on_progress))

    def export(self, dest: str | os.PathLike[str] | BinaryIO | None = None, format: str = "jsonl",
               views: Iterable[str] = (), **filters: str) -> Export:
        """Stream GET /export to a file (see AsyncClient.export)."""
        return self._run(self._async.export(dest, format, views, **filters))
