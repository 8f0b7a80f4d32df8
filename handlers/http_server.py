"""The HTTP server: Tornado's, made to answer in the API's JSON error shape where Tornado itself would not.

Tornado answers a request it cannot parse (a header holding a control character, a bad chunk size)
with a bare `400 Bad Request` and no body, and drops a connection whose request line and headers pass
its `max_header_size` without a word. Here the bare 400 becomes the JSON error, and a request target
or header block over the API's limits gets a JSON 414 or 431 on a connection that stays usable. The
server reads up to READ_HEADER_BYTES of headers to be able to say so; past that, Tornado closes the
connection as before.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable
from typing import Any

from tornado import httputil
from tornado.httpserver import HTTPServer
from tornado.iostream import IOStream
from tornado.log import access_log

MAX_TARGET_BYTES = 64 * 1024  # the request target (path and query): what Tornado took before, still works
MAX_HEADER_BYTES = 64 * 1024  # every header line together
READ_HEADER_BYTES = 1024 * 1024  # read this much of a request head to answer it, rather than drop the connection
# what Tornado writes for a request it cannot parse, just before it closes the connection
_BARE_400 = b"HTTP/1.1 400 Bad Request\r\n\r\n"


def _json_error(status: int, code: str, message: str) -> tuple[httputil.HTTPHeaders, bytes]:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    headers = httputil.HTTPHeaders({
        "Content-Type": "application/json; charset=utf-8", "Content-Length": str(len(body)),
        "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})
    return headers, body


def _malformed_answer() -> bytes:
    headers, body = _json_error(
        400, "malformed_request", "the request cannot be read as HTTP/1.1: a header is malformed or holds a "
        "control character, or the body's length or chunks are invalid; fix the request and send it again")
    headers["Connection"] = "close"
    lines = "".join(f"{name}: {value}\r\n" for name, value in headers.get_all())
    return f"HTTP/1.1 400 Bad Request\r\n{lines}\r\n".encode("latin-1") + body


_MALFORMED = _malformed_answer()


class ApiHTTPServer(HTTPServer):
    """Tornado's HTTPServer with the API's answers to requests that never reach a handler."""

    def initialize(self, *args: Any, **kwargs: Any) -> None:  # Tornado's servers are built through initialize
        kwargs.setdefault("max_header_size", READ_HEADER_BYTES)
        super().initialize(*args, **kwargs)

    def handle_stream(self, stream: IOStream, address: tuple[Any, ...]) -> None:
        """Serve a connection, its bare 400 made the JSON error (the one write compared: a length check)."""
        write = stream.write

        def write_json_400(data: bytes | memoryview) -> Awaitable[None]:
            return write(_MALFORMED if data == _BARE_400 else data)

        stream.write = write_json_400  # type: ignore[method-assign]
        super().handle_stream(stream, address)

    def start_request(self, server_conn: object,
                      request_conn: httputil.HTTPConnection) -> httputil.HTTPMessageDelegate:
        """Every request passes the size checks before the application sees it."""
        return _SizeChecked(super().start_request(server_conn, request_conn), request_conn)


class _SizeChecked(httputil.HTTPMessageDelegate):
    """Answers 414 or 431 once a too-large request has been read (so the connection can serve the next one);
    passes every other request through untouched."""

    def __init__(self, inner: httputil.HTTPMessageDelegate, connection: httputil.HTTPConnection) -> None:
        self.inner = inner
        self.connection = connection
        self.refusal: tuple[int, str, str] | None = None
        self.method = self.path = ""

    def headers_received(self, start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
                         headers: httputil.HTTPHeaders) -> Awaitable[None] | None:
        assert isinstance(start_line, httputil.RequestStartLine)
        self.refusal = _refusal(start_line, headers)
        if self.refusal is None:
            return self.inner.headers_received(start_line, headers)
        self.method = start_line.method
        self.path = start_line.path.partition("?")[0][:200]  # never the query: it may carry a token
        return None

    def data_received(self, chunk: bytes) -> Awaitable[None] | None:
        return self.inner.data_received(chunk) if self.refusal is None else None

    def finish(self) -> None:
        if self.refusal is None:
            self.inner.finish()
            return
        status, code, message = self.refusal
        headers, body = _json_error(status, code, message)
        start = httputil.ResponseStartLine("HTTP/1.1", status, httputil.responses[status])
        self.connection.write_headers(start, headers, body if self.method != "HEAD" else b"")
        self.connection.finish()
        context: Any = getattr(self.connection, "context", None)
        access_log.warning("request", extra={"method": self.method, "path": self.path, "status": status,
                                             "client": getattr(context, "remote_ip", None), "code": code})

    def on_connection_close(self) -> None:
        if self.refusal is None:
            self.inner.on_connection_close()


def _refusal(start_line: httputil.RequestStartLine, headers: httputil.HTTPHeaders) -> tuple[int, str, str] | None:
    target = len(start_line.path)
    if target > MAX_TARGET_BYTES:
        return (414, "uri_too_long", f"the request target (path and query string) has {target} bytes; the limit "
                f"is {MAX_TARGET_BYTES}: send long lists in a POST body, or page with ?cursor=")
    size = sum(len(name) + len(value) + 4 for name, value in headers.get_all())
    if size > MAX_HEADER_BYTES:
        return (431, "headers_too_large", f"the request's headers have {size} bytes; the limit is "
                f"{MAX_HEADER_BYTES}")
    return None
