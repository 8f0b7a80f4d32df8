"""`/queue_tasks`: submit, list, inspect, cancel and retry tasks."""

from __future__ import annotations

from typing import Any

from handlers.base import ApiError, BaseAPIHandler
from jobqueue.service import parse_limit, parse_status

API = "/jobqueue/api/v1.0"


class TaskListHandler(BaseAPIHandler):
    """POST one URL, many URLs or a form; GET a page of tasks with counts."""

    async def post(self) -> None:
        urls, single = self._submitted_urls()
        tasks = await self.service.submit(urls, self.client_key)
        if single:
            self.set_header("Location", f"{API}/queue_tasks/{tasks[0].id}")
            self.write_json({"task": tasks[0].to_json()}, status=201)
        else:
            self.write_json({"tasks": [t.to_json() for t in tasks]}, status=201)

    def _submitted_urls(self) -> tuple[list[Any], bool]:
        content_type = self.request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        looks_json = self._body.lstrip()[:1] in (b"{", b"[")
        if content_type in ("application/x-www-form-urlencoded", "multipart/form-data") and not looks_json:
            form = self.get_form_body()
            values = form.get("url", []) + form.get("urls", [])
            urls = [line for value in values for line in value.splitlines() if line.strip()]
            if not urls:
                raise ApiError(400, "invalid_request", "the form has no 'url' field")
            return urls, len(urls) == 1 and "urls" not in form
        body = self.get_json_body()
        if not isinstance(body, dict):
            raise ApiError(400, "invalid_request", 'send a JSON object: {"url": "..."} or {"urls": [...]}')
        if "url" in body and "urls" in body:
            raise ApiError(400, "invalid_request", 'send either "url" or "urls", not both')
        if "url" in body:
            return [body["url"]], True
        if "urls" in body:
            if not isinstance(body["urls"], list):
                raise ApiError(400, "invalid_request", '"urls" must be a JSON array of strings')
            return body["urls"], False
        raise ApiError(400, "invalid_request", 'the JSON object needs a "url" string or a "urls" array')

    async def get(self) -> None:
        status = parse_status(self.get_query_argument("status", None))
        limit = parse_limit(self.get_query_argument("limit", None))
        page, counts = await self.service.list(status, limit, self.get_query_argument("cursor", None) or None)
        self.write_json({"tasks": [t.to_json() for t in page.items], "next": page.next_cursor, "counts": counts})


class TaskHandler(BaseAPIHandler):
    """GET one task; DELETE cancels it."""

    async def get(self, task_id: str) -> None:
        task = await self.service.get(task_id)
        if task is None:
            raise ApiError(404, "not_found", f"no task has the id {task_id}")
        self.write_json({"task": task.to_json()})

    async def delete(self, task_id: str) -> None:
        task = await self.service.cancel(task_id)
        self.write_json({"task": task.to_json()})


class TaskRetryHandler(BaseAPIHandler):
    """POST runs a finished task again."""

    async def post(self, task_id: str) -> None:
        task = await self.service.retry(task_id)
        self.write_json({"task": task.to_json()})
