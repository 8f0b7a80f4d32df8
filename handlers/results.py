"""`/results`: stored responses, as JSON or as the raw body."""

from __future__ import annotations

import asyncio
import re

from jobqueue.errors import Code, NotFound
from jobqueue.extract import ExtractionFailed, ExtractionTimeout, NotHtml, Views
from jobqueue.extract.core import page_metadata
from jobqueue.filters import TASK_FILTERS
from jobqueue.models import Result
from jobqueue.readable_service import readable_type
from jobqueue.store.base import TaskFilter

from .base import ApiError, BaseAPIHandler
from .paging import PAGING, continue_listing

_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
# type/subtype and then only visible ASCII, spaces and tabs: what a target sent is echoed only if it is
# a media type Tornado (and every browser) can take; anything else is served as opaque bytes
_MEDIA_TYPE = re.compile(rf"{_TOKEN}/{_TOKEN}(?:[ \t]*;[\x20-\x7e\t]*)?")
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]")


def served_type(stored: str | None) -> str:
    """The Content-Type to serve a stored body with: the target's own when it is a clean media type."""
    value = (stored or "").strip()
    return value if _MEDIA_TYPE.fullmatch(value) else "application/octet-stream"


def attachment(name: str) -> str:
    """A Content-Disposition naming the download after `name`, reduced to characters safe in a header."""
    return f'attachment; filename="{_UNSAFE_NAME.sub("_", name)[:80] or "body"}.body"'


class ResultListHandler(BaseAPIHandler):
    """GET a page of results without bodies, with the filters of GET /queue_tasks."""

    query_parameters = {"GET": (*PAGING, *TASK_FILTERS)}

    async def get(self) -> None:
        query = continue_listing(self, "results", TASK_FILTERS)
        page = await self.service.results(query.limit, query.store_cursor, TaskFilter(**query.filters))
        self.write_json({"results": [r.to_json() for r in page.items], "next": query.next(page.next_cursor)})


class _ResultBase(BaseAPIHandler):
    async def _missing(self, task_id: str) -> NotFound | ApiError:
        task = await self.service.get(task_id)
        if task is None:
            return NotFound(task_id)
        return ApiError.of(
            Code.NO_RESULT,
            f"task {task_id} is {task.status} and has no result yet"
            + ("; retry it with POST .../retry" if task.status in ("failed", "cancelled") else ""),
            task=task.to_json(),
        )


class ResultHandler(_ResultBase):
    """GET one result with its body decoded to text, and its page's metadata when it is HTML or text."""

    async def get(self, task_id: str) -> None:
        view = await self.service.result(task_id)
        if view is None:
            raise await self._missing(task_id)
        shown = view.result.to_json(view.text, with_body=True)
        metadata = await self._metadata(view.result)
        if metadata is not None:
            shown["metadata"] = metadata
        self.write_json({"result": shown})

    async def _metadata(self, result: Result) -> dict[str, object] | None:
        """The page's metadata, read from its <head> in a thread: a result is never held up by an extraction
        of the whole page (the views keep the same metadata); None when the body has none."""
        if not readable_type(result.content_type) or result.body is None:
            return None  # an image, a PDF: not even a look at the body
        try:
            return await asyncio.to_thread(page_metadata, result.body, result.content_type, result.encoding,
                                           result.final_url)
        except NotHtml:
            return None  # the routes of the views say why; the result itself is still served


class ResultViewHandler(_ResultBase):
    """GET a result's readable view: its Markdown, its main text or its links (415 not_html for a binary body)."""

    TYPES = {"markdown": "text/markdown; charset=utf-8", "text": "text/plain; charset=utf-8",
             "links": "application/json; charset=utf-8"}

    def initialize(self, kind: str) -> None:
        """Which view this route serves."""
        self.kind = kind

    async def get(self, task_id: str) -> None:
        main_content = self._main_content()
        result = await self.service.raw_body(task_id)
        if result is None:
            raise await self._missing(task_id)
        views = await self._views(result, main_content)
        if self.kind == "links":
            self.write_json({"links": views.links})
            return
        self.set_header("Content-Type", self.TYPES[self.kind])
        self.set_header("X-Content-Type-Options", "nosniff")
        self.finish((views.markdown if self.kind == "markdown" else views.text).encode("utf-8"))

    def _main_content(self) -> bool:
        """Only the main content (default), or with `?main_content=false` the whole page (Markdown only)."""
        raw = self.get_query_argument("main_content", "true").lower()
        if raw not in ("true", "false", "1", "0"):
            raise ApiError.of(Code.INVALID_PARAMETER, f"main_content must be true or false, not {raw[:64]!r}")
        return raw in ("true", "1")

    async def _views(self, result: Result, main_content: bool) -> Views:
        if not readable_type(result.content_type):
            raise ApiError.of(Code.NOT_HTML, f"the body is {result.content_type}, not HTML or text: it has no "
                              f"{self.kind}")
        try:
            return await self.readable.of(result, main_content=main_content)
        except NotHtml as exc:
            raise ApiError.of(Code.NOT_HTML, f"{exc}: it has no {self.kind}") from None
        except ExtractionTimeout as exc:
            raise ApiError.of(Code.EXTRACTION_TIMEOUT, f"{exc}; nothing was kept, so asking again tries again"
                              ) from None
        except ExtractionFailed as exc:
            raise ApiError.of(Code.EXTRACTION_FAILED, str(exc)) from None


class ResultBodyHandler(_ResultBase):
    """GET the body exactly as fetched, sandboxed so a browser never runs it as ours; HEAD the same headers."""

    query_parameters = {"GET": ("download",)}

    async def head(self, task_id: str) -> None:
        """The headers GET sends (type, length, ETag), without the body: Tornado drops it for HEAD."""
        await self.get(task_id)

    async def get(self, task_id: str) -> None:
        result = await self.service.raw_body(task_id)
        if result is None:
            raise await self._missing(task_id)
        # a render's body is the DOM serialized as UTF-8, whatever the document's own header said
        self.set_header("Content-Type", result.content_type if result.rendered and result.content_type
                        else served_type(result.headers.get("content-type")))
        self.set_header("Content-Security-Policy", "sandbox")
        self.set_header("X-Content-Type-Options", "nosniff")
        if self.get_query_argument("download", None) is not None:
            self.set_header("Content-Disposition", attachment(task_id))
        self.finish(result.body or b"")


class ResultArtifactHandler(BaseAPIHandler):
    """GET what a render captured besides its DOM: the screenshot (PNG) or the PDF; 404 not_captured otherwise."""

    TYPES = {"screenshot": "image/png", "pdf": "application/pdf"}

    def initialize(self, kind: str) -> None:
        """Which capture this route serves."""
        self.kind = kind

    async def get(self, task_id: str) -> None:
        data = await self.service.artifact(task_id, self.kind)
        self.set_header("Content-Type", self.TYPES[self.kind])
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Content-Security-Policy", "sandbox")
        self.finish(data)


class ResultMarkdownHandler(ResultViewHandler):
    """GET a result's Markdown: of its main content, or with `?main_content=false` of the whole page."""

    query_parameters = {"GET": ("main_content",)}
