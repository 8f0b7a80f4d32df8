"""The HTTP server: Tornado's, made to answer in the API's JSON error shape where Tornado itself would not,
and to hold little for clients that have not shown a token yet.

Tornado answers a request it cannot parse (a header holding a control character, a bad chunk size)
with a bare `400 Bad Request` and no body, and drops a connection whose request line and headers pass
its `max_header_size` without a word. Here the bare 400 becomes the JSON error, and a request target
or header block over the API's limits gets a JSON 414 or 431: on a connection that stays usable when
the whole request head is within READ_HEADER_BYTES, else (it is read no further) on one closed after the answer.

The token is checked once the headers are in, so what a connection may cost before that is bounded: at
most READ_HEADER_BYTES of request head, at most HEAD_SECONDS from its first byte to its end (then a JSON
408 and the connection closes), and at most IDLE_SECONDS waiting for the next request (then it closes).
A body is read before the token check only by handlers that keep no body (the dashboard, static files, the
websocket; Tornado would keep it whole): over UNSTREAMED_BODY_BYTES it is refused (413) before it is read.
The API's handlers read theirs as it comes, after checking the token (handlers/base.py).
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Awaitable
from typing import Any, cast

from tornado import httputil
from tornado.httpserver import HTTPServer
from tornado.ioloop import IOLoop
from tornado.iostream import IOStream, SSLIOStream, UnsatisfiableReadError
from tornado.log import access_log

from jobqueue.errors import Code

MAX_TARGET_BYTES = 64 * 1024  # the request target (path and query): what Tornado took before, still works
MAX_HEADER_BYTES = 64 * 1024  # every header line together
# How much of a request head is read at most: past it, the head is answered 414/431 and the connection closed.
# Just above the limits, so a head a little over one of them is answered on a connection that stays usable.
READ_HEADER_BYTES = 72 * 1024
IDLE_SECONDS = 60.0  # a connection waiting for its next request (or its first) is closed after this
HEAD_SECONDS = 30.0  # from the first byte of a request head to its end, else 408 and the connection is closed
# After answering a head that was not read to its end, what the client still sends is read and dropped for a
# moment, so the answer reaches it: closing with unread data makes the kernel reset the connection at once.
LINGER_SECONDS = 2.0
LINGER_BYTES = 256 * 1024
# The largest body for a handler that does not stream it (the dashboard, static files, the websocket): Tornado
# keeps such a body whole in memory before the handler runs, so before any token check. None of them reads one.
UNSTREAMED_BODY_BYTES = 64 * 1024
# what Tornado writes for a request it cannot parse, just before it closes the connection
_BARE_400 = b"HTTP/1.1 400 Bad Request\r\n\r\n"


def _json_error(code: Code, message: str) -> tuple[httputil.HTTPHeaders, bytes]:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    headers = httputil.HTTPHeaders({
        "Content-Type": "application/json; charset=utf-8", "Content-Length": str(len(body)),
        "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})
    return headers, body


def _closing_answer(code: Code, message: str, head: bool = False) -> bytes:
    """A whole JSON error response, ending with the connection (`Connection: close`), as bytes to send."""
    status = code.status or 500
    headers, body = _json_error(code, message)
    headers["Connection"] = "close"
    lines = "".join(f"{name}: {value}\r\n" for name, value in headers.get_all())
    return f"HTTP/1.1 {status} {httputil.responses[status]}\r\n{lines}\r\n".encode("latin-1") + (b"" if head else body)


_MALFORMED = _closing_answer(
    Code.MALFORMED_REQUEST, "the request cannot be read as HTTP/1.1: a header is malformed or holds a "
    "control character, or the body's length or chunks are invalid; fix the request and send it again")


class ApiHTTPServer(HTTPServer):
    """Tornado's HTTPServer with the API's answers to requests that never reach a handler."""

    def initialize(self, *args: Any, **kwargs: Any) -> None:  # Tornado's servers are built through initialize
        """Tornado's settings with this module's limits (read now, so tests can change them before a start)."""
        kwargs.setdefault("max_header_size", READ_HEADER_BYTES)
        kwargs.setdefault("idle_connection_timeout", IDLE_SECONDS)
        self.head_seconds = HEAD_SECONDS
        self.lingering: set[asyncio.Task[None]] = set()
        super().initialize(*args, **kwargs)

    def handle_stream(self, stream: IOStream, address: tuple[Any, ...]) -> None:
        """Serve a connection, its bare 400 made the JSON error (the one write compared: a length check), its
        request heads bounded in size and time."""
        if not isinstance(stream, SSLIOStream):
            _HeadGuard(self, stream)
        super().handle_stream(stream, address)

    async def close_all_connections(self) -> None:
        """Close every connection, those answered and being closed included."""
        await super().close_all_connections()
        for task in list(self.lingering):
            task.cancel()
        if self.lingering:
            await asyncio.wait(list(self.lingering))

    def linger(self, sock: socket.socket, answer: bytes) -> None:
        """Send `answer` on a socket Tornado let go of, then close it without resetting the connection."""
        task = asyncio.ensure_future(_send_and_close(sock, answer))
        self.lingering.add(task)
        task.add_done_callback(self.lingering.discard)

    def start_request(self, server_conn: object,
                      request_conn: httputil.HTTPConnection) -> httputil.HTTPMessageDelegate:
        """Every request passes the size checks before the application sees it."""
        return _SizeChecked(super().start_request(server_conn, request_conn), request_conn)


class _SizeChecked(httputil.HTTPMessageDelegate):
    """Answers 414 or 431 once a too-large request has been read (so the connection can serve the next one), and
    413 at once (closing the connection) to a body over UNSTREAMED_BODY_BYTES for a handler that would keep it
    whole; passes every other request through untouched."""

    def __init__(self, inner: httputil.HTTPMessageDelegate, connection: httputil.HTTPConnection) -> None:
        self.inner = inner
        self.connection = connection
        self.refusal: tuple[Code, str] | None = None
        self.method = self.path = ""
        self.unstreamed: int | None = None  # body bytes so far, for a handler that keeps its body whole
        self.dropped = False  # answered 413 and closed: the rest of the request is nobody's

    def headers_received(self, start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
                         headers: httputil.HTTPHeaders) -> Awaitable[None] | None:
        assert isinstance(start_line, httputil.RequestStartLine)
        self.refusal = _refusal(start_line, headers)
        self.method = start_line.method
        self.path = start_line.path.partition("?")[0][:200]  # never the query: it may carry a token
        if self.refusal is not None:
            return None
        result = self.inner.headers_received(start_line, headers)
        # Tornado's routing delegate now holds the handler's: does that handler read its body as it comes?
        if not getattr(getattr(self.inner, "delegate", None), "stream_request_body", True):
            self.unstreamed = 0
            length = headers.get("Content-Length", "")
            if length.isdigit() and int(length) > UNSTREAMED_BODY_BYTES:
                self._drop_body()
        return result

    def data_received(self, chunk: bytes) -> Awaitable[None] | None:
        if self.refusal is not None or self.dropped:
            return None
        if self.unstreamed is not None:
            self.unstreamed += len(chunk)
            if self.unstreamed > UNSTREAMED_BODY_BYTES:  # a chunked body shows its size only here
                self._drop_body()
                return None
        return self.inner.data_received(chunk)

    def _drop_body(self) -> None:
        """Answer 413 at once and close the connection: the body is not read, let alone kept."""
        self.dropped = True
        guard = _HeadGuard.of(getattr(self.connection, "stream", None))
        _log_refusal(self.connection, self.method, self.path, Code.REQUEST_TOO_LARGE)
        if guard is None:
            self.connection.close()  # type: ignore[attr-defined]  # an HTTP1Connection; the interface has no close
            return
        guard.close_with(_closing_answer(
            Code.REQUEST_TOO_LARGE, f"the request body is over the limit of {UNSTREAMED_BODY_BYTES} bytes for "
            f"{self.path}, which reads no body", head=self.method == "HEAD"))

    def finish(self) -> None:
        if self.dropped:
            return
        if self.refusal is None:
            self.inner.finish()
            return
        code, message = self.refusal
        status = code.status or 500
        headers, body = _json_error(code, message)
        start = httputil.ResponseStartLine("HTTP/1.1", status, httputil.responses[status])
        self.connection.write_headers(start, headers, body if self.method != "HEAD" else b"")
        self.connection.finish()
        _log_refusal(self.connection, self.method, self.path, code)

    def on_connection_close(self) -> None:
        if self.refusal is None and not self.dropped:
            self.inner.on_connection_close()


def _refusal(start_line: httputil.RequestStartLine, headers: httputil.HTTPHeaders) -> tuple[Code, str] | None:
    target = len(start_line.path)
    if target > MAX_TARGET_BYTES:
        return (Code.URI_TOO_LONG, f"the request target (path and query string) has {target} bytes; the limit "
                f"is {MAX_TARGET_BYTES}: send long lists in a POST body, or page with ?cursor=")
    size = sum(len(name) + len(value) + 4 for name, value in headers.get_all())
    if size > MAX_HEADER_BYTES:
        return (Code.HEADERS_TOO_LARGE, f"the request's headers have {size} bytes; the limit is "
                f"{MAX_HEADER_BYTES}")
    return None


class _HeadGuard:
    """Makes Tornado's bare 400 the JSON error, and bounds the reading of one connection's request heads: a
    head over READ_HEADER_BYTES is answered 414 or 431 and its connection closed; one not finished HEAD_SECONDS
    after its first byte is answered 408 and closed.

    Tornado reads a head with one `read_until_regex` and, past its `max_header_size`, closes the stream (the
    read fails); the guard wraps that read, the socket reads (to see a head's first byte) and `close_fd` (to
    send the answer on the socket being closed)."""

    def __init__(self, server: ApiHTTPServer, stream: IOStream) -> None:
        self.server = server
        self.stream = stream
        self.reading = False  # a head is being read
        self.head: asyncio.Future[bytes] | None = None
        self.timer: object | None = None
        self.answer: bytes | None = None
        self._write = stream.write
        self._read_until_regex = stream.read_until_regex
        self._read_from_fd = stream.read_from_fd
        self._close_fd = stream.close_fd
        stream.head_guard = self  # type: ignore[attr-defined]
        stream.write = self.write  # type: ignore[method-assign]
        stream.read_until_regex = self.read_head  # type: ignore[method-assign]
        stream.read_from_fd = self.read_from_fd  # type: ignore[method-assign]
        stream.close_fd = self.close_fd  # type: ignore[method-assign]

    @staticmethod
    def of(stream: object) -> _HeadGuard | None:
        """The guard of a connection's stream (None once it is closed)."""
        return getattr(stream, "head_guard", None)

    def close_with(self, answer: bytes) -> None:
        """Send `answer` and close the connection, reading nothing more of it."""
        self.answer = answer
        self.stream.close()

    def write(self, data: bytes | memoryview) -> asyncio.Future[None]:
        """Tornado's writes, its bare 400 made the JSON error (the one write compared: a length check)."""
        return self._write(_MALFORMED if data == _BARE_400 else data)

    def read_head(self, regex: bytes, max_bytes: int | None = None) -> Awaitable[bytes]:
        """Tornado's read of a request head (the only read by pattern a server connection makes)."""
        self.reading, self.head = True, None
        # Tornado declares an Awaitable but returns its Future; past max_bytes, this may close the stream at once
        future = cast("asyncio.Future[bytes]", self._read_until_regex(regex, max_bytes))
        self.head = future
        future.add_done_callback(self._head_read)
        return future

    def _in_head(self) -> bool:
        return self.reading and (self.head is None or not self.head.done())

    def _head_read(self, _future: object) -> None:
        self.reading = False
        if self.timer is not None:
            IOLoop.current().remove_timeout(self.timer)
            self.timer = None

    def read_from_fd(self, buf: bytearray | memoryview) -> int | None:
        """The socket read; the first bytes of a head start its clock."""
        count = self._read_from_fd(buf)
        if count and self.timer is None and self._in_head():
            self.timer = IOLoop.current().call_later(self.server.head_seconds, self._timed_out)
        return count

    def _timed_out(self) -> None:
        self.timer = None
        if self._in_head() and not self.stream.closed():
            _log_refusal(self.stream, "", "", Code.REQUEST_TIMEOUT)
            self.close_with(_closing_answer(
                Code.REQUEST_TIMEOUT, f"the request line and headers did not all arrive within "
                f"{self.server.head_seconds:g} s of their first byte; send them at once"))

    def close_fd(self) -> None:
        """Close the socket, first answering a head that was cut off (too large) or timed out."""
        answer = self.answer
        if answer is None and self._in_head() and isinstance(self.stream.error, UnsatisfiableReadError):
            answer = self._too_large()
        # Nothing is left for the garbage collector to find: the stream, and the buffer it keeps, go once the
        # connection lets go of it (the collector runs rarely here: app.run freezes and spaces it out).
        for name in ("head_guard", "write", "read_until_regex", "read_from_fd", "close_fd"):
            delattr(self.stream, name)  # the stream refers to the guard no more
        if self.stream.error is not None:
            self.stream.error.__traceback__ = None  # its frames refer to the stream
        sock = self.stream.socket
        if answer is None or not isinstance(sock, socket.socket):
            self._close_fd()
            return
        self.stream.socket = None  # type: ignore[assignment]  # typed as always open; the socket is the linger's now
        self.server.linger(sock, answer)

    def _too_large(self) -> bytes:
        """The 414 or 431 for a head read up to READ_HEADER_BYTES without its end, judged from what was read."""
        buffered = getattr(self.stream, "_read_buffer", b"")  # Tornado's read buffer: the head so far
        head = bytes(buffered[:READ_HEADER_BYTES + 1024]).lstrip(b"\r\n")
        line, newline, _ = head.partition(b"\n")
        method, _, rest = line.partition(b" ")
        target = rest.rpartition(b" ")[0] if newline else rest
        name = method.decode("latin-1")[:20]
        path = target[:200].decode("latin-1").partition("?")[0]  # never the query: it may carry a token
        if len(target) > MAX_TARGET_BYTES:
            more = "" if newline else "more than "
            _log_refusal(self.stream, name, path, Code.URI_TOO_LONG)
            return _closing_answer(
                Code.URI_TOO_LONG, f"the request target (path and query string) has {more}{len(target)} bytes; "
                f"the limit is {MAX_TARGET_BYTES}: send long lists in a POST body, or page with ?cursor=",
                head=name == "HEAD")
        _log_refusal(self.stream, name, path, Code.HEADERS_TOO_LARGE)
        return _closing_answer(
            Code.HEADERS_TOO_LARGE, f"the request line and headers have more than {READ_HEADER_BYTES} bytes; the "
            f"limit is {MAX_HEADER_BYTES} for the headers", head=name == "HEAD")


async def _send_and_close(sock: socket.socket, answer: bytes) -> None:
    loop = asyncio.get_running_loop()
    try:
        await asyncio.wait_for(loop.sock_sendall(sock, answer), LINGER_SECONDS)
        sock.shutdown(socket.SHUT_WR)
        deadline = loop.time() + LINGER_SECONDS
        dropped = 0
        while dropped < LINGER_BYTES:
            data = await asyncio.wait_for(loop.sock_recv(sock, 16384), max(deadline - loop.time(), 0))
            if not data:
                break
            dropped += len(data)
    except (OSError, TimeoutError):
        pass  # the client went, or keeps sending: close anyway
    finally:
        sock.close()


def _log_refusal(source: IOStream | httputil.HTTPConnection, method: str, path: str, code: Code) -> None:
    """The access log's line for a request answered here, not by a handler."""
    status = code.status
    context: Any = getattr(source, "context", None)
    client = getattr(context, "remote_ip", None)
    if client is None and isinstance(source, IOStream):
        try:
            client = source.socket.getpeername()[0] if source.socket is not None else None
        except OSError:
            client = None
    access_log.warning("request", extra={"method": method or None, "path": path or None, "status": status,
                                         "client": client, "code": str(code)})
