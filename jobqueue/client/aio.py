"""AsyncClient: the API as coroutines on Tornado's (asyncio) loop, with waits and the live stream."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO

from .errors import JobQueueError, Unreachable, WaitTimeout
from .follow import ProgressCallback, follow
from .http import Transport, api_error
from .models import Batch, Crawl, Event, Result, Task
from .stream import events

DEFAULT_SERVER = "http://127.0.0.1:5000"
# spec fields a text/plain batch may carry as query parameters (POST /batches?tag=a&priority=2)
_QUERY_FIELDS = {"tags": "tag", "priority": "priority", "not_before": "not_before", "max_age": "max_age"}
_FILENAME = re.compile(r'filename="([^"/\\]+)"')


@dataclass(frozen=True)
class Export:
    """Where an export was written and how many bytes it has."""

    path: str | None
    size: int


class AsyncClient:
    """The jobqueue API for asyncio/Tornado code. `async with AsyncClient(url, token) as jq: ...`."""

    def __init__(self, server: str = DEFAULT_SERVER, token: str | None = None, *, timeout: float = 60.0,
                 max_wait: float = 120.0) -> None:
        self.transport = Transport(server, token, timeout, max_wait)

    @property
    def server(self) -> str:
        """The server's base address."""
        return self.transport.server

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections."""
        self.transport.close()

    async def submit(self, url: str, *, idempotency_key: str | None = None, **spec: Any) -> Task:
        """Add one job; `spec` takes the job spec's fields (fetch={...}, priority=, tags=[...], ...)."""
        body = await self.transport.call("POST", "queue_tasks", payload={"url": url, **spec},
                                         headers=_idempotency(idempotency_key))
        return Task.from_json(body["task"])

    async def submit_many(self, urls: Iterable[str], *, idempotency_key: str | None = None, **spec: Any) -> list[Task]:
        """Add up to 1,000 jobs in one request."""
        body = await self.transport.call("POST", "queue_tasks", payload={"urls": list(urls), **spec},
                                         headers=_idempotency(idempotency_key))
        return [Task.from_json(t) for t in body["tasks"]]

    async def submit_batch(self, urls: Iterable[str] | str, *, idempotency_key: str | None = None,
                           **spec: Any) -> Batch:
        """Add up to 100,000 jobs as one batch: sent as text/plain (one URL per line, spec fields as query
        parameters) when the spec allows it, else as JSON. A string is taken as the text of such a file."""
        lines = urls.splitlines() if isinstance(urls, str) else list(urls)
        headers = _idempotency(idempotency_key)
        if set(spec) <= set(_QUERY_FIELDS):
            query = {_QUERY_FIELDS[name]: value for name, value in spec.items()}
            body = await self.transport.call("POST", "batches", query=query, text="\n".join(lines) + "\n",
                                             headers=headers)
        else:
            kept = [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]
            body = await self.transport.call("POST", "batches", payload={"urls": kept, **spec}, headers=headers)
        return Batch.from_json(body["batch"])

    async def get(self, task_id: str) -> Task:
        """One job as it is now."""
        return Task.from_json((await self.transport.call("GET", f"queue_tasks/{task_id}"))["task"])

    async def batch(self, batch_id: str) -> Batch:
        """One batch with its counts."""
        return Batch.from_json((await self.transport.call("GET", f"batches/{batch_id}"))["batch"])

    async def counts(self) -> dict[str, int]:
        """Jobs in the whole queue by status."""
        return dict((await self.transport.call("GET", "queue_tasks", query={"limit": 1}))["counts"])

    async def cancel(self, task_id: str) -> Task:
        """Cancel a job that has not finished."""
        return Task.from_json((await self.transport.call("DELETE", f"queue_tasks/{task_id}"))["task"])

    async def result(self, task_id: str) -> Result:
        """A completed job's result with its body as text; APIError `no_result` while it has none. Its
        `markdown()`, `text()` and `links()` are coroutines of this client."""
        return Result.from_json((await self.transport.call("GET", f"results/{task_id}"))["result"], reader=self)

    async def markdown(self, task_id: str, main_content: bool = True) -> str:
        """A completed job's page as Markdown: its main content (no navigation, footers or sidebars), or the
        whole page with main_content=False. APIError `not_html` (415) for a binary body."""
        return await self._readable(task_id, "markdown", "text/markdown",
                                    None if main_content else {"main_content": "false"})

    async def text(self, task_id: str) -> str:
        """A completed job's main content as plain text; APIError `not_html` (415) for a binary body."""
        return await self._readable(task_id, "text", "text/plain")

    async def links(self, task_id: str) -> list[dict[str, str]]:
        """A completed job's links, `[{"url", "text", "rel"}]`: absolute, each once, in page order."""
        return list((await self.transport.call("GET", f"results/{task_id}/links"))["links"])

    async def _readable(self, task_id: str, view: str, media_type: str,
                        query: dict[str, str] | None = None) -> str:
        response = await self.transport.fetch("GET", f"results/{task_id}/{view}", query=query,
                                              headers={"Accept": f"{media_type}, application/json"})
        if response.code >= 400:
            raise api_error(self.server, response)
        return response.body.decode("utf-8")

    async def body(self, task_id: str) -> bytes:
        """A completed job's body, the bytes as fetched."""
        response = await self.transport.fetch("GET", f"results/{task_id}/body")
        if response.code >= 400:
            raise api_error(self.server, response)
        return response.body

    async def wait(self, task_id: str, timeout: float | None = None) -> Task:
        """Poll one job until it is finished (completed, failed or cancelled); WaitTimeout after `timeout` s."""
        deadline = None if timeout is None else time.monotonic() + timeout
        interval = 0.05
        while True:
            task = await self.get(task_id)
            if task.finished:
                return task
            if deadline is not None and time.monotonic() + interval > deadline:
                raise WaitTimeout("timeout", f"job {task_id} is still {task.status} after {timeout:g} s")
            await asyncio.sleep(interval)
            interval = min(interval * 1.5, 1.0)

    async def wait_batch(self, batch_id: str, timeout: float | None = None,
                         on_progress: ProgressCallback[Batch] | None = None, poll: float = 5.0) -> Batch:
        """Follow a batch until it is finished, calling `on_progress` with each newer state.

        Progress comes from the live stream (batch.progress/batch.finished); the batch is also read over
        REST after every (re)connection and every `poll` seconds, so a stream that is down or refused
        (too many streams) only makes the updates slower.
        """
        def pick(event: Event) -> Batch | None:
            return event.batch if event.batch is not None and event.batch.id == batch_id else None

        def late(batch: Batch) -> str:
            return f"batch {batch_id} is not finished after {timeout:g} s ({batch.done}/{batch.total} done)"

        return await follow(lambda: self.batch(batch_id), self._progress_stream(), pick, late, timeout,
                            on_progress, poll)

    async def crawl(self, url: str | Iterable[str], **options: Any) -> Crawl:
        """Start a crawl from one seed URL or several (up to 1,000); `options` are the crawl's fields (scope,
        max_depth, max_pages, include=[...], exclude=[...], sitemap, robots, ignore_query) and any job spec
        field, which every page gets. APIError `invalid_field` etc. (HTTP 400) names what the server refused."""
        seeds: dict[str, Any] = {"url": url} if isinstance(url, str) else {"urls": list(url)}
        body = await self.transport.call("POST", "crawls", payload={**seeds, **options})
        return Crawl.from_json(body["crawl"])

    async def get_crawl(self, crawl_id: str) -> Crawl:
        """One crawl with its counts, discovered pages and skipped links."""
        return Crawl.from_json((await self.transport.call("GET", f"crawls/{crawl_id}"))["crawl"])

    async def crawl_page(self, cursor: str | None = None, limit: int | None = None) -> tuple[list[Crawl], str | None]:
        """One page of crawls, newest first, and the cursor of the next page (None on the last)."""
        body = await self.transport.call("GET", "crawls", query={"cursor": cursor, "limit": limit})
        return [Crawl.from_json(c) for c in body["crawls"]], body.get("next")

    async def crawls(self, page_size: int | None = None) -> AsyncIterator[Crawl]:
        """Every crawl, newest first, read a page at a time as the iteration goes."""
        cursor: str | None = None
        while True:
            page, cursor = await self.crawl_page(cursor, page_size)
            for crawl in page:
                yield crawl
            if cursor is None:
                return

    async def cancel_crawl(self, crawl_id: str) -> Crawl:
        """Stop a crawl: its unfinished pages are cancelled, finished ones stay."""
        return Crawl.from_json((await self.transport.call("DELETE", f"crawls/{crawl_id}"))["crawl"])

    async def wait_crawl(self, crawl_id: str, timeout: float | None = None,
                         on_progress: ProgressCallback[Crawl] | None = None, poll: float = 5.0) -> Crawl:
        """Follow a crawl until it is finished or cancelled, calling `on_progress` with each newer state: from
        the live stream (crawl.progress/crawl.finished), and over REST as wait_batch does."""
        def pick(event: Event) -> Crawl | None:
            return event.crawl if event.crawl is not None and event.crawl.id == crawl_id else None

        def late(crawl: Crawl) -> str:
            return (f"crawl {crawl_id} is still running after {timeout:g} s ({crawl.done}/{crawl.discovered} "
                    "pages done)")

        return await follow(lambda: self.get_crawl(crawl_id), self._progress_stream(), pick, late, timeout,
                            on_progress, poll)

    def _progress_stream(self) -> AsyncIterator[Event]:
        """The stream with no job rows: counts, batch and crawl messages only."""
        return self.events(view={"task_ids": [], "newest": 0})

    def events(self, task_ids: Iterable[str] | None = None, view: Mapping[str, Any] | None = None,
               max_failures: int | None = None) -> AsyncIterator[Event]:
        """The live stream: task, counts, batch.progress, batch.finished, url.changed events, and a resync
        event after every (re)connection; it reconnects by itself (0.5 s doubling up to 15 s), and raises
        APIError on a refusal retrying cannot change (a wrong token, a parameter the server does not read)."""
        return events(self.transport, task_ids, view, max_failures)

    async def export(self, dest: str | os.PathLike[str] | BinaryIO | None = None, format: str = "jsonl",
                     views: Iterable[str] = (), **filters: str) -> Export:
        """Stream GET /export to a file (a path, a directory or None for the server's file name in the
        current directory, or an open binary file); a cut download raises and leaves no partial file.
        `views` (jsonl only): readable views every line carries, of markdown, text, links, metadata."""
        writer = _ExportWriter(dest)
        query = {"format": format, **filters}
        if views:
            query["with"] = ",".join(views)
        try:
            response = await self.transport.fetch(
                "GET", "export", query=query, request_timeout=0,
                header_callback=writer.header, streaming_callback=writer.write)
        except Unreachable as exc:
            writer.abort()
            if writer.status == 200:  # the download had begun: it was cut, not refused
                raise JobQueueError("incomplete_download", f"the export was cut off after {writer.size} bytes; "
                                    "nothing was kept, try again") from exc
            raise
        except BaseException:
            writer.abort()
            raise
        if response.code >= 400:
            writer.abort()
            raise api_error(self.server, response, writer.error_body)
        if response.error is not None:
            writer.abort()
            raise JobQueueError("incomplete_download", f"the export was cut off after {writer.size} bytes "
                                f"({response.error}); nothing was kept, try again", response.code)
        return writer.finish()


class _ExportWriter:
    """Writes an export's body where it is wanted, to a .part file renamed only once complete."""

    def __init__(self, dest: str | os.PathLike[str] | BinaryIO | None) -> None:
        self.dest = dest
        self.status = 0
        self.filename: str | None = None
        self.size = 0
        self.error_body = b""
        self.file: BinaryIO | None = None
        self.path: str | None = None

    def header(self, line: str) -> None:
        if line.startswith("HTTP/"):
            self.status = int(line.split()[1])
            self.error_body = b""
        elif line.lower().startswith("content-disposition:"):
            match = _FILENAME.search(line)
            self.filename = match.group(1) if match else None

    def write(self, chunk: bytes) -> None:
        if self.status >= 300 or self.status == 0:
            self.error_body = (self.error_body + chunk)[:65536]
            return
        if self.file is None:
            self.file = self._open()
        self.file.write(chunk)
        self.size += len(chunk)

    def _open(self) -> BinaryIO:
        if self.dest is not None and not isinstance(self.dest, str | os.PathLike):
            return self.dest
        target = os.fspath(self.dest) if self.dest is not None else "."
        if os.path.isdir(target):
            target = os.path.join(target, self.filename or "jobqueue-export")
        self.path = target
        return open(target + ".part", "wb")

    def abort(self) -> None:
        if self.path is not None and self.file is not None:
            self.file.close()
            with contextlib.suppress(OSError):
                os.unlink(self.path + ".part")

    def finish(self) -> Export:
        if self.file is None:  # an empty export (an empty CSV still has its header row, but be safe)
            self.file = self._open()
        if self.path is None:
            self.file.flush()
            return Export(None, self.size)
        self.file.close()
        os.replace(self.path + ".part", self.path)
        return Export(self.path, self.size)


def _idempotency(key: str | None) -> dict[str, str]:
    return {"Idempotency-Key": key} if key else {}
