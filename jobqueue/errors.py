"""Every error the core raises on purpose: one base with a stable `code`, a sentence and an HTTP status.

The web layer turns any CodedError into the contract's `{"error": {"code", "message"}}` answer
without knowing the subclasses; the core never imports web code to do so.
"""

from __future__ import annotations

import math
from typing import Any


class CodedError(Exception):
    """An error with a stable machine-readable `code`, a human `message` and the HTTP status it maps to."""

    http_status = 500
    default_code = "internal_error"

    def __init__(self, message: str, code: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.extra = extra

    @property
    def headers(self) -> dict[str, str]:
        """HTTP headers the answer should carry (Retry-After, ...)."""
        return {}

    def __reduce__(self) -> Any:  # keep pickling (and copying) working with keyword extras
        return (_rebuild, (type(self), self.__dict__.copy()))


def _rebuild(cls: type[CodedError], state: dict[str, Any]) -> CodedError:
    error = cls.__new__(cls)
    Exception.__init__(error, state.get("message", ""))
    error.__dict__.update(state)
    return error


class BadRequest(CodedError, ValueError):
    """Input the API refuses with 400."""

    http_status = 400
    default_code = "bad_request"

    def __init__(self, code: str, message: str, **extra: Any) -> None:
        super().__init__(message, code, **extra)


class InvalidURL(BadRequest):
    """A submitted URL that cannot be fetched."""


class BadCursor(BadRequest):
    """A paging cursor this server did not hand out."""

    def __init__(self, message: str) -> None:
        super().__init__("invalid_cursor", message)


class NotFound(CodedError):
    """No object has the given id."""

    http_status = 404
    default_code = "not_found"

    def __init__(self, object_id: str, kind: str = "task") -> None:
        super().__init__(f"no {kind} has the id {object_id}")
        self.object_id = object_id
        self.kind = kind

    def __str__(self) -> str:
        return self.object_id


class Conflict(CodedError):
    """The object exists but its state does not allow the operation; carries the task as it is."""

    http_status = 409
    default_code = "conflict"

    def __init__(self, task: Any, message: str) -> None:
        super().__init__(message)
        self.task = task
        if hasattr(task, "to_json"):
            self.extra = {"task": task.to_json()}


class IdempotencyConflict(CodedError):
    """An Idempotency-Key that cannot be honoured: reused with another body (422) or still in use (409)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message, code)
        self.http_status = 422 if code == "idempotency_key_reused" else 409


class RateLimited(CodedError):
    """This client submitted more than its share; `retry_after` says when it may again."""

    http_status = 429
    default_code = "rate_limited"

    def __init__(self, retry_after: float, rate: float, burst: int) -> None:
        self.retry_after = retry_after
        self.wait_seconds = max(1, math.ceil(retry_after))
        super().__init__(f"too many URLs from this client: the limit is {rate:g} URLs/s per client, in bursts of "
                         f"up to {burst} URLs; wait {self.wait_seconds} s (the Retry-After header) before submitting "
                         "again")

    @property
    def headers(self) -> dict[str, str]:
        """Retry-After in whole seconds, at least 1."""
        return {"Retry-After": str(self.wait_seconds)}


class QueueFull(CodedError):
    """The queue holds as many jobs as the server allows; submissions wait until it drains."""

    http_status = 503
    default_code = "queue_full"

    @property
    def headers(self) -> dict[str, str]:
        """Ask the client to come back in a few seconds."""
        return {"Retry-After": "5"}


class TooManySchedules(CodedError):
    """The server runs as many recurring fetches as --max-schedules allows; one must stop before another starts."""

    http_status = 409
    default_code = "too_many_schedules"

    def __init__(self, limit: int, active: int, asked: int) -> None:
        super().__init__(f"this server runs at most {limit} recurring fetches (--max-schedules) and {active} are "
                         f"active, so the {asked} this request would start do not fit; stop some with "
                         "DELETE /schedules/:id (GET /schedules lists them), or ask the operator to raise "
                         "--max-schedules")


class StoreError(CodedError):
    """The database did not answer or refused an operation."""

    http_status = 503
    default_code = "database_unavailable"

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    @property
    def headers(self) -> dict[str, str]:
        """Retry-After when the store knows the trouble is passing (a lock held elsewhere)."""
        return {"Retry-After": str(max(1, math.ceil(self.retry_after)))} if self.retry_after is not None else {}


class FetchError(CodedError):
    """An attempt that brought no usable response; `code` is the task's stable error word."""

    http_status = 502
    default_code = "fetch_error"

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message, code)

    @property
    def retryable(self) -> bool:
        """Transient network trouble is worth another attempt; the rest is final."""
        return self.code in RETRYABLE_FETCH_ERRORS


RETRYABLE_FETCH_ERRORS = frozenset({"dns_error", "connection_error", "timeout", "protocol_error"})
