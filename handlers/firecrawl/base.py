"""The base of every Firecrawl route: the API's tokens, limits and guard, with Firecrawl's error shape."""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from tornado.web import HTTPError

from jobqueue.errors import Code

from ..base import ApiError, BaseAPIHandler, translate


class FirecrawlHandler(BaseAPIHandler):
    """Answers errors as Firecrawl does, `{"success": false, "error": "..."}` (with jobqueue's `code` beside)."""

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        translated = translate(exc) if exc is not None else None
        if translated is not None:
            exc, status_code = translated, translated.status_code
        code: str = Code.INTERNAL_ERROR
        if isinstance(exc, ApiError):
            code, message = exc.code, exc.message
            for name, value in exc.headers.items():
                self.set_header(name, value)
        elif isinstance(exc, HTTPError) and status_code < 500:
            code, message = Code.BAD_REQUEST, exc.log_message or HTTPStatus(status_code).phrase
            if status_code == 405:
                code = Code.METHOD_NOT_ALLOWED
                self.set_header("Allow", ", ".join(self.allowed_methods()))
                message = f"{self.request.method} is not allowed on {self.request.path}"
        elif status_code == 503:
            code, message = Code.UNAVAILABLE, "the service is unavailable; try again shortly"
        else:
            message = f"internal error (request {self._request_id}); the server log has the details"
        self.fail(status_code, message, code)

    def fail(self, status: int, message: str, code: str, **extra: Any) -> None:
        """Answer a Firecrawl error document."""
        self.error_code = code  # for the access log line
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(json.dumps({"success": False, "error": message, "code": code, **extra}, ensure_ascii=False))

    def succeed(self, payload: dict[str, Any], status: int = 200) -> None:
        """Answer a Firecrawl success document."""
        self.write_json({"success": True, **payload}, status)

    def here(self, path: str) -> str:
        """An absolute URL on this server, under the prefix this request used (/v2 or /firecrawl/v2)."""
        prefix = "/firecrawl" if self.request.path.startswith("/firecrawl/") else ""
        return f"{self.request.protocol}://{self.request.host}{prefix}/v2/{path}"


_ELSEWHERE = {
    "search": "search is not supported by jobqueue (it has no search engine)",
    "extract": "extract (LLM extraction) is not supported by jobqueue",
    "agent": "agent is not supported by jobqueue",
    "deep-research": "deep research is not supported by jobqueue",
    "llmstxt": "llms.txt generation is not supported by jobqueue",
    "browser": "browser sessions are not supported by jobqueue",
}


class UnsupportedHandler(FirecrawlHandler):
    """Any other Firecrawl path: 400 naming what jobqueue does not do, or 404."""

    def prepare(self) -> None:
        super().prepare()
        tail = self.request.path.split("/v2/", 1)[-1]
        first = tail.split("/", 1)[0]
        if first in _ELSEWHERE:
            raise ApiError.of(Code.NOT_SUPPORTED, _ELSEWHERE[first])
        raise ApiError.of(Code.NOT_FOUND, f"no such Firecrawl endpoint in jobqueue: {self.request.path}")
