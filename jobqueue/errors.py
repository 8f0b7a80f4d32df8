"""Every error code the service sends, in one catalogue, and the errors the core raises with them.

`Code` lists each code once with the HTTP status it is answered with and what it means; docs/API.md's
table of codes is generated from it (`python3 dev.py docs`), and a test fails when the source uses a
code the catalogue lacks. The web layer turns any CodedError into the contract's
`{"error": {"code", "message"}}` answer without knowing the subclasses; the core never imports web code.
"""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Any


class Code(StrEnum):
    """A stable error code: its HTTP status (None: never an answer's status by itself), whether a failed job may
    carry it as `error.code`, and one line on what it means. Equal to its string, so stored codes compare."""

    status: int | None
    job: bool
    meaning: str

    def __new__(cls, value: str, status: int | None, meaning: str, job: bool = False) -> Code:
        member = str.__new__(cls, value)
        member._value_ = value
        member.status = status
        member.meaning = meaning
        member.job = job
        return member

    # 400: the request is refused, nothing is stored
    BAD_REQUEST = "bad_request", 400, "the request cannot be read (an HTTP error with no more precise code)"
    MALFORMED_REQUEST = "malformed_request", 400, "not readable as HTTP/1.1; the connection is closed after the answer"
    INVALID_JSON = "invalid_json", 400, "the body is not JSON, or holds a lone UTF-16 surrogate"
    INVALID_FORM = "invalid_form", 400, "a form body that cannot be read, or a field that is not UTF-8"
    INVALID_REQUEST = "invalid_request", 400, "the body is not a submission's shape (one of url, urls or jobs)"
    UNKNOWN_PARAMETER = "unknown_parameter", 400, "a query parameter the route does not read"
    INVALID_PARAMETER = ("invalid_parameter", 400, "a query value that is not UTF-8 once percent-decoded, or not "
                         "one the parameter takes")
    UNKNOWN_FIELD = "unknown_field", 400, "a field (of a body, `fetch` or `webhook`) the server does not know"
    INVALID_FIELD = "invalid_field", 400, "a field's value breaks its rule; the message names the field and the rule"
    INVALID_HEADER = ("invalid_header", 400, "a header that cannot be sent: a bad name, one the fetcher sets, a line "
                      "break, a character beyond Latin-1", True)
    INVALID_BODY = "invalid_body", None, "the POST body cannot be encoded as UTF-8", True
    INVALID_URL = "invalid_url", 400, "a URL that cannot be fetched: not parseable, no host, an invalid host name", True
    URL_TOO_LONG = "url_too_long", 400, "a URL over the length limit"
    UNSUPPORTED_SCHEME = "unsupported_scheme", 400, "a URL (or a redirect) to a scheme other than http(s)", True
    BLOCKED = "blocked", 400, "the address guard refused the address (private, local, outside --allow-network)", True
    UNKNOWN_PROFILE = "unknown_profile", 400, "no fetch profile has this name (--fetch-profiles)", True
    PROFILE_NOT_ALLOWED = "profile_not_allowed", 400, "the fetch profile's `hosts` do not list the URL's host", True
    RENDERING_UNAVAILABLE = ("rendering_unavailable", 400, "a spec with `render` on a server that runs no browser "
                             "(--render-browsers=0, or no Chromium)")
    WEBHOOKS_DISABLED = "webhooks_disabled", 400, "a webhook given to a server started without --webhook-secret"
    BATCH_TOO_LARGE = "batch_too_large", 400, "more URLs in one request than the route takes"
    INVALID_FILTER = "invalid_filter", 400, "a filter value that cannot be used (a bad host, status class, time)"
    INVALID_STATUS = "invalid_status", 400, "a status filter that is not one of the statuses"
    INVALID_ID = "invalid_id", 400, "an id that this server cannot have made"
    INVALID_LIMIT = "invalid_limit", 400, "a page size that is not a whole number from 1 to 1000"
    INVALID_CURSOR = "invalid_cursor", 400, "a cursor this server did not hand out, or beside other filters"
    EMPTY_FILTER = "empty_filter", 400, 'a bulk action with an empty filter (`{"all": true}` means every job)'
    NOT_SUPPORTED = "not_supported", 400, "a filter this server's database cannot apply"
    FILTER_TOO_SLOW = "filter_too_slow", 400, "a filter MongoDB could not answer in time; narrow it"
    INVALID_FORMAT = "invalid_format", 400, "an export format other than jsonl, csv or warc"
    INVALID_IDEMPOTENCY_KEY = "invalid_idempotency_key", 400, "an Idempotency-Key that is not 1-255 printable ASCII"
    INVALID_PURGE = "invalid_purge", 400, "`purge` is not true or false"
    MISSING_URL = "missing_url", 400, "GET /history without `?url=` (and no cursor)"
    MISSING_AGAINST = "missing_against", 400, "a diff without `?against=`"
    INVALID_HOST = "invalid_host", 400, "a host name in the path of /hosts/:host that no job can have"
    INVALID_POLICY = ("invalid_policy", 400, "a PUT /hosts/:host body that is not an object of max_concurrency, "
                      "min_delay_ms and paused")
    # 401-431
    UNAUTHORIZED = "unauthorized", 401, "no API token, or a wrong one"
    FORBIDDEN = "forbidden", 403, "a read-only token asked to change something"
    NOT_FOUND = "not_found", 404, "no object has this id, or no route this path"
    NOT_CAPTURED = "not_captured", 404, "the job's render did not capture this (a screenshot or PDF not asked for)"
    METHOD_NOT_ALLOWED = "method_not_allowed", 405, "the route does not answer this method (see `Allow`)"
    REQUEST_TIMEOUT = "request_timeout", 408, "the request head did not arrive in time; the connection is closed"
    CONFLICT = "conflict", 409, "the object's state does not allow this (cancel a finished job, purge a running one)"
    NO_RESULT = "no_result", 409, "the task has no result (yet)"
    IDEMPOTENCY_KEY_IN_USE = "idempotency_key_in_use", 409, "a request with this Idempotency-Key is still running"
    TOO_MANY_SCHEDULES = "too_many_schedules", 409, "the recurring jobs would pass --max-schedules"
    LENGTH_REQUIRED = "length_required", 411, "a body without a length"
    REQUEST_TOO_LARGE = "request_too_large", 413, "a body over the route's limit"
    URI_TOO_LONG = "uri_too_long", 414, "a request target over 64 KiB"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type", 415, "a body in a format the route does not read"
    NOT_HTML = ("not_html", 415, "the result's body is neither HTML nor text (an image, a PDF): it has no Markdown, "
                "text, links or metadata")
    EXTRACTION_FAILED = ("extraction_failed", 422, "the extractor broke on this page (a library error, nesting too "
                         "deep, its worker died): the page has no readable views")
    IDEMPOTENCY_KEY_REUSED = "idempotency_key_reused", 422, "this Idempotency-Key came with another body"
    RATE_LIMITED = "rate_limited", 429, "this client submitted more URLs than --rate-limit allows; see Retry-After"
    TOO_MANY_REQUESTS = "too_many_requests", 429, "too many requests (an HTTP 429 with no more precise code)"
    TOO_MANY_EXPORTS = "too_many_exports", 429, "as many exports run as the server allows"
    HEADERS_TOO_LARGE = "headers_too_large", 431, "request headers over 64 KiB"
    # 5xx
    INTERNAL_ERROR = "internal_error", 500, "a bug; the message names the request (or the exception) for the log", True
    UNAVAILABLE = "unavailable", 503, "the service cannot answer now; try again shortly"
    DATABASE_UNAVAILABLE = "database_unavailable", 503, "the database did not answer or refused the operation"
    QUEUE_FULL = "queue_full", 503, "the queue holds --max-queued jobs; submit again once it drains"
    EXTRACTION_TIMEOUT = ("extraction_timeout", 503, "extracting the page took longer than --extract-timeout; "
                          "nothing is kept, so asking again tries again")
    TOO_MANY_STREAMS = "too_many_streams", 503, "as many event streams are open as the server allows"
    DATABASE_SLOW = "database_slow", None, "a /healthz warning: the database answers, but slowly"
    # a failed job's error.code only
    DNS_ERROR = "dns_error", None, "the host name could not be resolved", True
    CONNECTION_ERROR = "connection_error", None, "the connection failed, was refused or broke", True
    TIMEOUT = "timeout", None, "the fetch took longer than its timeout", True
    TLS_ERROR = "tls_error", None, "the TLS handshake or certificate check failed", True
    PROTOCOL_ERROR = "protocol_error", None, "the answer was not HTTP/1.x (an HTTP/0.9 reply, a bad status line)", True
    TOO_LARGE = "too_large", None, "the body is larger than its limit (max_bytes, --max-body-size)", True
    TOO_MANY_REDIRECTS = "too_many_redirects", None, "more redirects than --max-redirects", True
    DECODE_ERROR = "decode_error", None, "the body's Content-Encoding could not be decoded", True
    HTTP_ERROR = "http_error", None, "an attempt's answer was an HTTP error worth retrying (408, 425, 429, 5xx)", True
    ABANDONED = "abandoned", None, "its process died during every attempt", True
    FETCH_ERROR = "fetch_error", None, "a fetch failure no other code describes", True
    ERROR = "error", None, "an HTTP error status the server has no more precise code for"
    BLOCKED_BY_ROBOTS = ("blocked_by_robots", None, "the job obeys robots.txt (`robots: obey`, or --robots=obey) and "
                         "its origin's robots.txt disallows the URL, or could not be fetched (5xx, network error); "
                         "not retried", True)


def status_of(code: str) -> int:
    """The HTTP status a code is answered with: the catalogue's, or 500 for a code that has none."""
    member = Code._value2member_map_.get(code)
    status = member.status if isinstance(member, Code) else None
    return status if status is not None else 500


class CodedError(Exception):
    """An error with a stable machine-readable `code`, a human `message` and the HTTP status it maps to."""

    default_code = Code.INTERNAL_ERROR

    def __init__(self, message: str, code: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.extra = extra

    @property
    def http_status(self) -> int:
        """The status the catalogue gives this error's code."""
        return status_of(self.code)

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

    default_code = Code.BAD_REQUEST

    def __init__(self, code: str, message: str, **extra: Any) -> None:
        super().__init__(message, code, **extra)


class InvalidURL(BadRequest):
    """A submitted URL that cannot be fetched."""


class BadCursor(BadRequest):
    """A paging cursor this server did not hand out."""

    def __init__(self, message: str) -> None:
        super().__init__(Code.INVALID_CURSOR, message)


class NotFound(CodedError):
    """No object has the given id."""

    default_code = Code.NOT_FOUND

    def __init__(self, object_id: str, kind: str = "task") -> None:
        super().__init__(f"no {kind} has the id {object_id}")
        self.object_id = object_id
        self.kind = kind

    def __str__(self) -> str:
        return self.object_id


class Conflict(CodedError):
    """The object exists but its state does not allow the operation; carries the task as it is."""

    default_code = Code.CONFLICT

    def __init__(self, task: Any, message: str) -> None:
        super().__init__(message)
        self.task = task
        if hasattr(task, "to_json"):
            self.extra = {"task": task.to_json()}


class IdempotencyConflict(CodedError):
    """An Idempotency-Key that cannot be honoured: reused with another body (422) or still in use (409)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message, code)


class RateLimited(CodedError):
    """This client submitted more than its share; `retry_after` says when it may again."""

    default_code = Code.RATE_LIMITED

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

    default_code = Code.QUEUE_FULL

    @property
    def headers(self) -> dict[str, str]:
        """Ask the client to come back in a few seconds."""
        return {"Retry-After": "5"}


class TooManySchedules(CodedError):
    """The server runs as many recurring fetches as --max-schedules allows; one must stop before another starts."""

    default_code = Code.TOO_MANY_SCHEDULES

    def __init__(self, limit: int, active: int, asked: int) -> None:
        super().__init__(f"this server runs at most {limit} recurring fetches (--max-schedules) and {active} are "
                         f"active, so the {asked} this request would start do not fit; stop some with "
                         "DELETE /schedules/:id (GET /schedules lists them), or ask the operator to raise "
                         "--max-schedules")


class StoreError(CodedError):
    """The database did not answer or refused an operation."""

    default_code = Code.DATABASE_UNAVAILABLE

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    @property
    def headers(self) -> dict[str, str]:
        """Retry-After when the store knows the trouble is passing (a lock held elsewhere)."""
        return {"Retry-After": str(max(1, math.ceil(self.retry_after)))} if self.retry_after is not None else {}


class FetchError(CodedError):
    """An attempt that brought no usable response; `code` is the task's stable error word."""

    http_status = 502  # never an answer: a job's error; the catalogue gives it none
    default_code = Code.FETCH_ERROR

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message, code)

    @property
    def retryable(self) -> bool:
        """Transient network trouble is worth another attempt; the rest is final."""
        return self.code in RETRYABLE_FETCH_ERRORS


RETRYABLE_FETCH_ERRORS = frozenset({Code.DNS_ERROR, Code.CONNECTION_ERROR, Code.TIMEOUT, Code.PROTOCOL_ERROR})


def code_table() -> str:
    """The catalogue as docs/API.md's Markdown table, so the doc is generated, never written by hand."""
    rows = ["| code | HTTP status | a failed job's `error.code` | meaning |", "|---|---|---|---|"]
    for code in Code:
        rows.append(f"| `{code}` | {code.status or '-'} | {'yes' if code.job else ''} | {code.meaning} |")
    return "\n".join(rows) + "\n"
