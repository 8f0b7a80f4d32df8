"""`/results`: stored responses, as JSON or as the raw body."""

from __future__ import annotations

from handlers.base import ApiError, BaseAPIHandler
from jobqueue.service import parse_limit


class ResultListHandler(BaseAPIHandler):
    """GET a page of results without bodies."""

    async def get(self) -> None:
        limit = parse_limit(self.get_query_argument("limit", None))
        page = await self.service.results(limit, self.get_query_argument("cursor", None) or None)
        self.write_json({"results": [r.to_json() for r in page.items], "next": page.next_cursor})


class _ResultBase(BaseAPIHandler):
    async def _missing(self, task_id: str) -> ApiError:
        task = await self.service.get(task_id)
        if task is None:
            return ApiError(404, "not_found", f"no task has the id {task_id}")
        return ApiError(
            409,
            "no_result",
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
    """GET the body exactly as fetched, sandboxed so a browser never runs it as ours."""

    async def get(self, task_id: str) -> None:
        result = await self.service.raw_body(task_id)
        if result is None:
            raise await self._missing(task_id)
        self.set_header("Content-Type", result.headers.get("content-type", "application/octet-stream"))
        self.set_header("Content-Security-Policy", "sandbox")
        self.set_header("X-Content-Type-Options", "nosniff")
        if self.get_query_argument("download", None) is not None:
            self.set_header("Content-Disposition", f'attachment; filename="{task_id}.body"')
        self.finish(result.body or b"")
