"""What a client call raises: every error carries a stable `code` word, as the API's own errors do."""

from __future__ import annotations

from typing import Any


class JobQueueError(Exception):
    """Base of every client error; `code` is machine-readable, the message a sentence for people."""

    def __init__(self, code: str, message: str, status: int = 0, body: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status  # the HTTP status, 0 when no answer came
        self.body = body  # the decoded JSON answer, when there was one

    def __str__(self) -> str:
        return self.message


class APIError(JobQueueError):
    """The server answered with an error: `{"error": {"code", "message"}}` and an HTTP status."""

    def __str__(self) -> str:
        return f"{self.message} (HTTP {self.status} {self.code})"


class Unreachable(JobQueueError):
    """No answer from the server: refused, timed out, cut off, or not an HTTP server at all."""


class WaitTimeout(JobQueueError):
    """A wait for a job or batch ran out of time before it finished."""
