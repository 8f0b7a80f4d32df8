"""The one base class of every API handler: JSON in, JSON out, JSON errors only."""

from __future__ import annotations

import difflib
import hashlib
import json
import logging
import uuid
from collections.abc import Collection, Mapping
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from tornado import httputil
from tornado.web import Application, HTTPError, RequestHandler, stream_request_body

from jobqueue.access import FULL, READ, TokenSet, bearer
from jobqueue.config import Settings
from jobqueue.errors import Code, CodedError, status_of
from jobqueue.events import EventHub
from jobqueue.readable_service import SharedViews
from jobqueue.service import JobService, ascii_int

from .request_text import parse_json_body, query_text

log = logging.getLogger("jobqueue.api")

# the code of an error Tornado raised with a bare status (a 405, a bad Content-Length)
_DEFAULT_CODES = {code.status: code for code in (
    Code.BAD_REQUEST, Code.UNAUTHORIZED, Code.FORBIDDEN, Code.NOT_FOUND, Code.METHOD_NOT_ALLOWED, Code.CONFLICT,
    Code.LENGTH_REQUIRED, Code.REQUEST_TOO_LARGE, Code.UNSUPPORTED_MEDIA_TYPE, Code.TOO_MANY_REQUESTS,
    Code.INTERNAL_ERROR, Code.UNAVAILABLE)}


class ApiError(HTTPError):
    """An HTTP error with the contract's stable `code` and a sentence for the user."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None,
                 **extra: Any) -> None:
        super().__init__(status, reason=HTTPStatus(status).phrase)
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.extra = extra

    @classmethod
    def of(cls, code: Code, message: str, headers: dict[str, str] | None = None, **extra: Any) -> ApiError:
        """The error for `code`, answered with the status the catalogue gives it."""
        return cls(status_of(code), code, message, headers, **extra)


class SharedObjects:
    """Typed access to the objects main() builds once and hands to the Application."""

    application: Application
    request: httputil.HTTPServerRequest

    if TYPE_CHECKING:  # RequestHandler's: every class that uses these objects is one
        def set_header(self, name: str, value: Any) -> None: ...

    @property
    def service(self) -> JobService:
        """The job service."""
        return self.application.settings["service"]

    @property
    def config(self) -> Settings:
        """The server's settings."""
        return self.application.settings["config"]

    @property
    def hub(self) -> EventHub:
        """The live event hub."""
        return self.application.settings["hub"]

    @property
    def readable(self) -> SharedViews:
        """The readable views of stored pages (one extraction pool per process)."""
        return self.application.settings["readable"]

    @property
    def tokens(self) -> TokenSet:
        """The API tokens (possibly none)."""
        return self.application.settings["tokens"]

    def set_default_headers(self) -> None:
        """Name the process that answered when the service runs several (--processes): /metrics, rate limits and
        websocket streams are each process's own, so an operator needs to know whose they read."""
        process = self.application.settings.get("process")
        if process is not None:
            self.set_header("X-Jobqueue-Process", str(process))

    @property
    def client_key(self) -> str:
        """Who is asking, for per-client limits: the token when there is one, else the address."""
        offered = bearer(self.request.headers.get("Authorization"))
        if offered and self.tokens.required:  # a digest: the key is stored (idempotency keys), the token never is
            return "token:" + hashlib.sha256(offered.encode()).hexdigest()[:32]
        return f"ip:{self.request.remote_ip}"

    def unauthorized(self) -> ApiError | None:
        """A 401 to raise when a token is required and the request has no valid one, a 403 when a read-only
        token asks to change something; an accepted request's answer says its access in X-Jobqueue-Access."""
        if not self.tokens.required:
            self.set_header("X-Jobqueue-Access", FULL)
            return None
        request = self.request
        offered = bearer(request.headers.get("Authorization"))
        if offered is None and getattr(self, "accepts_query_token", False):
            offered = (request.query_arguments.get("token") or [b""])[-1].decode("utf-8", "replace") or None
        access = self.tokens.access(offered)
        if access == READ and request.method not in ("GET", "HEAD", "OPTIONS"):
            return ApiError.of(Code.FORBIDDEN, "this token may only read (it is a --read-only-token); use a full "
                            "API token to change anything")
        if access is not None:
            self.set_header("X-Jobqueue-Access", access)
            return None
        message = ("this server needs an API token: send 'Authorization: Bearer TOKEN'" if offered is None
                   else "the API token is not valid")
        return ApiError.of(Code.UNAUTHORIZED, message, headers={"WWW-Authenticate": 'Bearer realm="jobqueue"'})


@stream_request_body
class BaseAPIHandler(SharedObjects, RequestHandler):
    """Reads bodies within a size limit, answers JSON, and maps every exception to the error shape."""

    _body: bytearray
    _refused_body = False  # True once the body went over the limit and the 413 was sent
    request_size_setting = "max_request_size"  # the Settings field that caps this handler's bodies
    public = False  # True for endpoints that answer without a token (health checks)
    # The query parameters each method reads (HEAD reads GET's); any other is a 400 `unknown_parameter`, so a
    # typo (`?priorty=5`) never passes silently. None: the handler checks its query itself (/export).
    query_parameters: Mapping[str, Collection[str]] | None = {}

    def set_default_headers(self) -> None:
        super().set_default_headers()
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Content-Type-Options", "nosniff")

    def prepare(self) -> None:
        self._body = bytearray()
        if not self.public:
            refused = self.unauthorized()
            if refused is not None:
                raise refused
        limit = self.request_limit
        length = ascii_int(self.request.headers.get("Content-Length", ""), max_digits=30)
        if length is not None and length > limit:
            raise ApiError.of(Code.REQUEST_TOO_LARGE, f"the request body has {length} bytes; the limit is {limit}")
        if self.request.query_arguments and self.query_parameters is not None:
            try:
                self.check_query(self.query_parameters)
            except (ApiError, CodedError) as exc:
                self._refuse_after_body(exc)

    def check_query(self, accepted_by_method: Mapping[str, Collection[str]]) -> None:
        """Refuse a query parameter this method does not read (400 `unknown_parameter`, naming the ones it does),
        and a value that is not UTF-8 (400 `invalid_parameter`): nothing is ignored or silently replaced."""
        method = "GET" if self.request.method == "HEAD" else self.request.method or ""
        accepted = accepted_by_method.get(method, ())
        for name, values in self.request.query_arguments.items():
            if name not in accepted:
                if self.request.method not in self.allowed_methods():
                    return  # the 405 says more than a word about its parameters would
                raise ApiError.of(Code.UNKNOWN_PARAMETER, _unknown_parameter(method, self.request.path, name, accepted))
            for value in values:
                query_text(name, value)

    @property
    def request_limit(self) -> int:
        """The largest body this handler reads."""
        return getattr(self.config, self.request_size_setting)

    def data_received(self, chunk: bytes) -> None:
        if self._refused_body:
            return
        self._body += chunk
        if len(self._body) > self.request_limit:
            # A chunked body (no Content-Length) shows its size only here. Raising would make Tornado drop the
            # connection unanswered.
            self._refuse_after_body(ApiError.of(Code.REQUEST_TOO_LARGE,
                                             f"the request body is over the limit of {self.request_limit} bytes"))

    def _refuse_after_body(self, error: Exception) -> None:
        """Answer `error` once the body is in, dropping the body: the method Tornado calls then raises it. A handler
        that answers before the body is read (in prepare, or here) makes Tornado close the connection after the
        answer; this way the client reads it and may send its next request on the same connection."""
        self._refused_body = True
        self._body = bytearray()

        def refuse(*_args: Any, **_kwargs: Any) -> None:
            raise error

        setattr(self, (self.request.method or "GET").lower(), refuse)

    def get_json_body(self) -> Any:
        """The request body parsed as JSON, or a 400 that says what is wrong with it."""
        return parse_json_body(self._body)

    def get_form_body(self) -> dict[str, list[str]]:
        """The request body parsed as a form (urlencoded or multipart), or a 400 saying it cannot be."""
        arguments: dict[str, list[bytes]] = {}
        files: dict[str, list[httputil.HTTPFile]] = {}
        try:
            httputil.parse_body_arguments(
                self.request.headers.get("Content-Type", ""), bytes(self._body), arguments, files, self.request.headers
            )
        except httputil.HTTPInputError as exc:
            raise ApiError.of(Code.INVALID_FORM, f"the form body cannot be read ({exc}); send url=... as "
                           "application/x-www-form-urlencoded or a well-formed multipart/form-data") from exc
        try:
            return {k: [v.decode("utf-8") for v in vs] for k, vs in arguments.items()}
        except UnicodeDecodeError as exc:
            raise ApiError.of(Code.INVALID_FORM, f"the form body is not UTF-8 text ({exc}); send the form as "
                           "UTF-8") from exc

    def write_json(self, payload: Any, status: int = 200) -> None:
        """Send a JSON document."""
        self.set_status(status)
        self.finish(json.dumps(payload, ensure_ascii=False, separators=(",", ":")))

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        value = translate(value) or value
        if isinstance(value, HTTPError):
            return  # the access log line carries the status and the error code
        log.error("request failed", extra={"method": self.request.method, "path": self.request.path,
                                           "request_id": self._request_id}, exc_info=(typ, value, tb))

    @property
    def _request_id(self) -> str:
        if not hasattr(self, "_rid"):
            self._rid = uuid.uuid4().hex[:12]
        return self._rid

    def allowed_methods(self) -> list[str]:
        """The methods this handler answers, for the `Allow` header every 405 must carry (RFC 9110)."""
        return [m for m in self.SUPPORTED_METHODS
                if getattr(type(self), m.lower(), None) is not getattr(RequestHandler, m.lower(), None)]

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        translated = translate(exc) if exc is not None else None
        if translated is not None:
            exc, status_code = translated, translated.status_code
            self.set_status(status_code)
        if isinstance(exc, ApiError):
            send_error(self, exc)
            return
        if isinstance(exc, HTTPError) and status_code < 500:
            code = _DEFAULT_CODES.get(status_code, Code.ERROR)
            message = exc.log_message or HTTPStatus(status_code).phrase
            if status_code == 405:
                allowed = self.allowed_methods()
                self.set_header("Allow", ", ".join(allowed))
                message = f"{self.request.method} is not allowed on {self.request.path}" + (
                    f"; use {' or '.join(allowed)}" if allowed else "")
        elif status_code == 503:
            code, message = Code.UNAVAILABLE, "the service is unavailable; try again shortly"
        else:
            code = _DEFAULT_CODES.get(status_code, Code.INTERNAL_ERROR)
            message = f"internal error (request {self._request_id}); the server log has the details"
        send_error(self, ApiError(status_code, code, message))


def send_error(handler: RequestHandler, error: ApiError) -> None:
    """Answer with the contract's one error shape; every handler (the websocket's too) answers errors this way."""
    handler.error_code = error.code  # type: ignore[attr-defined]  # for the access log line
    handler.set_status(error.status_code)
    for name, value in error.headers.items():
        handler.set_header(name, value)
    handler.set_header("Content-Type", "application/json; charset=utf-8")
    handler.clear_header("Content-Disposition")
    handler.clear_header("Content-Security-Policy")
    document = {"error": {"code": error.code, "message": error.message}, **error.extra}
    text = json.dumps(document, ensure_ascii=False)
    try:
        body = text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate that got this far still makes an answer, escaped
        body = json.dumps(document).encode("ascii")
    handler.finish(body)


def _unknown_parameter(method: str, path: str, name: str, accepted: Collection[str]) -> str:
    shown = name.encode("latin-1", "replace").decode("utf-8", "replace")  # Tornado reads names as Latin-1
    message = f"{method} {path} takes no parameter {shown[:64]!r}"
    close = difflib.get_close_matches(shown, list(accepted), n=1)
    if close:
        message += f" (did you mean {close[0]!r}?)"
    return message + (f"; it takes {', '.join(sorted(accepted))}" if accepted else "; it takes none")


def translate(exc: BaseException) -> ApiError | None:
    """Map the core's coded errors to API errors, so handlers can just call the core."""
    if isinstance(exc, CodedError):
        return ApiError(exc.http_status, exc.code, exc.message, headers=exc.headers, **exc.extra)
    return None


class NotFoundHandler(BaseAPIHandler):
    """Answers every unknown path with a JSON 404."""

    def prepare(self) -> None:
        raise ApiError.of(Code.NOT_FOUND, f"no such endpoint: {self.request.path}")
