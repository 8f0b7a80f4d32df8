"""`/queue_tasks`: submit, list, inspect, cancel and retry tasks."""

from __future__ import annotations

from typing import Any

from handlers.base import ApiError, BaseAPIHandler
from handlers.paging import continue_listing
from jobqueue.service import MAX_BATCH, parse_id, parse_status
from jobqueue.store.base import TaskFilter

API = "/jobqueue/api/v1.0"
_FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")
_SHOWN = 100  # characters of a bad line quoted back in an error


class TaskListHandler(BaseAPIHandler):
    """POST one URL, many URLs, a form or plain text; GET a page of tasks with counts."""

    async def post(self) -> None:
        urls, single, labels = self._submitted_urls()
        tasks = await self.service.submit(urls, self.client_key, labels)
        if single:
            self.set_header("Location", f"{API}/queue_tasks/{tasks[0].id}")
            self.write_json({"task": tasks[0].to_json()}, status=201)
        else:
            self.write_json({"tasks": [t.to_json() for t in tasks]}, status=201)

    def _submitted_urls(self) -> tuple[list[Any], bool, list[str] | None]:
        """Read the URLs by Content-Type: (urls, answer as one task?, labels naming each in errors)."""
        content_type = self.request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        start = self._body.lstrip()[:1]
        # `curl -d '{...}'` labels JSON as a form and fetch() labels a string body text/plain: read those as JSON
        if content_type in _FORMS and start not in (b"{", b"["):
            return (*self._form_urls(), None)
        if content_type == "text/plain" and start != b"{":
            urls, labels = self._text_urls()
            return urls, False, labels
        json_type = content_type in ("", "application/json") or content_type.endswith("+json")
        if not json_type and start not in (b"{", b"[", b""):
            raise ApiError(415, "unsupported_media_type",
                           f"cannot read a {content_type} body; send application/json ({{\"url\": \"...\"}} or "
                           '{"urls": [...]}), text/plain (one URL per line) or a form with url=...')
        return (*self._json_urls(), None)

    def _form_urls(self) -> tuple[list[Any], bool]:
        form = self.get_form_body()
        values = form.get("url", []) + form.get("urls", [])
        urls = [line for value in values for line in value.splitlines() if line.strip()]
        if not urls:
            raise ApiError(400, "invalid_request", "the form has no 'url' field")
        return urls, len(urls) == 1 and "urls" not in form

    def _text_urls(self) -> tuple[list[Any], list[str]]:
        """One URL per line; blank lines and lines starting with '#' are skipped; errors name the line."""
        try:
            text = self._body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ApiError(400, "invalid_request", f"the text body is not UTF-8 ({exc}); send UTF-8 text, "
                           "one URL per line") from exc
        urls: list[Any] = []
        labels: list[str] = []
        for number, line in enumerate(text.splitlines(), 1):
            url = line.strip()
            if not url or url.startswith("#"):
                continue
            if len(urls) == MAX_BATCH:
                raise ApiError(400, "batch_too_large", f"the text body has more than {MAX_BATCH} URLs; the limit "
                               f"is {MAX_BATCH} per request (line {number} is the first over it)")
            shown = url if len(url) <= _SHOWN else url[:_SHOWN] + "..."
            urls.append(url)
            labels.append(f"line {number} ({shown!r})")
        if not urls:
            raise ApiError(400, "invalid_request", "the text body has no URL; send one URL per line "
                           "(blank lines and lines starting with '#' are skipped)")
        return urls, labels

    def _json_urls(self) -> tuple[list[Any], bool]:
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
        query = continue_listing(self, "tasks", {"status": parse_status, "batch": parse_id})
        page, counts = await self.service.list(TaskFilter(**query.filters), query.limit, query.store_cursor)
        self.write_json({"tasks": [t.to_json() for t in page.items], "next": query.next(page.next_cursor),
                         "counts": counts})


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
