"""`/results`: stored responses, as JSON or as the raw body."""

from __future__ import annotations

import re

from jobqueue.errors import Code, NotFound
from jobqueue.filters import TASK_FILTERS
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
    """GET one result with its body decoded to text."""

    async def get(self, task_id: str) -> None:
        view = await self.service.result(task_id)
        if view is None:
            raise await self._missing(task_id)
        self.write_json({"result": view.result.to_json(view.text, with_body=True)})


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
