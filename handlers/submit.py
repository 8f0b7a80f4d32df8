"""Reading submissions over HTTP (JSON, text/plain, forms) and answering keyed requests once.

Shared by `POST /queue_tasks` and `POST /batches`, which take the same bodies and differ in how many
URLs they allow and in what they create.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from jobqueue.errors import Code
from jobqueue.idempotency import LOCK_SECONDS, IdempotencyKey, StoredAnswer, check_key, fingerprint
from jobqueue.submission import QUERY_FIELDS, Submission, text_lines

from .base import ApiError, BaseAPIHandler
from .request_text import query_text

_FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")


class SubmitHandler(BaseAPIHandler):
    """A handler that reads a submission body and honours `Idempotency-Key`."""

    def _content_type(self) -> str:
        return self.request.headers.get("Content-Type", "").split(";")[0].strip().lower()

    def _reads_as_json(self) -> bool:
        """`curl -d '{...}'` labels JSON as a form, and fetch() labels a string body text/plain: read those as JSON."""
        content_type = self._content_type()
        start = self._body.lstrip()[:1]
        if content_type in _FORMS:
            return start in (b"{", b"[")
        if content_type == "text/plain":
            return start == b"{"
        json_type = content_type in ("", "application/json") or content_type.endswith("+json")
        if not json_type and start not in (b"{", b"[", b""):
            raise ApiError.of(Code.UNSUPPORTED_MEDIA_TYPE,
                           f"cannot read a {content_type} body; send application/json ({{\"url\": \"...\"}}, "
                           '{"urls": [...]} or {"jobs": [...]}), text/plain (one URL per line) or a form with url=...')
        return True

    async def read_submission(self, max_jobs: int, batch_id: str | None = None) -> Submission:
        """The request's jobs, all validated; nothing is stored yet."""
        reader = self.service.reader
        query = {k: [query_text(k, v) for v in vs] for k, vs in self.request.query_arguments.items()}
        if self._reads_as_json():
            beside = sorted(set(query) & set(QUERY_FIELDS))
            if beside:
                raise ApiError.of(Code.INVALID_REQUEST, f"?{beside[0]}= is read only beside a text/plain or form "
                               "body; with JSON, put job fields in the body")
            return await reader.from_json(self.get_json_body(), max_jobs, batch_id)
        if self._content_type() == "text/plain":
            return await reader.from_lines(text_lines(bytes(self._body)), query, max_jobs, batch_id)
        form = self.get_form_body()
        values = form.get("url", []) + form.get("urls", [])
        urls = [line.strip() for value in values for line in value.splitlines() if line.strip()]
        if not urls:
            raise ApiError.of(Code.INVALID_REQUEST, "the form has no 'url' field")
        return await reader.from_lines(urls, query, max_jobs, batch_id, single="urls" not in form, kind="url")

    def idempotency_key(self) -> IdempotencyKey | None:
        """The request's Idempotency-Key with who sent it and what they sent, or None."""
        raw = check_key(self.request.headers.get("Idempotency-Key"))
        if raw is None:
            return None
        if self._reads_as_json():
            try:
                body: Any = json.loads(self._body)
            except (ValueError, UnicodeDecodeError, RecursionError):
                body = None
            if body is not None:
                return IdempotencyKey(self.client_key, raw, fingerprint(self.request.uri or "", body))
        return IdempotencyKey(self.client_key, raw, fingerprint(self.request.uri or "", raw=bytes(self._body)))

    async def once(self, key: IdempotencyKey | None, work: Callable[[], Awaitable[None]]) -> None:
        """Run `work` (which answers) once per key: a repeat gets the stored first answer; a failure frees the key."""
        if key is None:
            await work()
            return
        answer = await self.service.store.idempotency_begin(key, LOCK_SECONDS)
        if answer is not None:
            self.set_header("Idempotent-Replayed", "true")
            self.replay(answer)
            return
        try:
            await work()
        except BaseException:
            await self.service.store.idempotency_abort(key)
            raise

    def replay(self, answer: StoredAnswer) -> None:
        """Send a stored answer exactly as it was first sent."""
        if answer.location:
            self.set_header("Location", answer.location)
        self.set_status(answer.status)
        self.finish(answer.body)

    @staticmethod
    def answer(status: int, payload: Any, location: str | None) -> StoredAnswer:
        """The JSON answer of a submission, as sent and as kept for repeats."""
        return StoredAnswer(status, json.dumps(payload, ensure_ascii=False, separators=(",", ":")), location)
