"""The fetch workers' curl client: Tornado's CurlAsyncHTTPClient with the per-request work cut down.

Tornado's client resets every handle after each transfer and sets about forty options again for the next,
wraps each request in a defaults proxy, parses every header line in a Python callback and moves one IOLoop
timer each time libcurl asks for a timeout (most often "now"). For the fetch workers, whose requests all
look alike, this subclass instead:

- sets the options that never change once per handle (protocols, decoding, TLS checks, the address
  guard's OPENSOCKETFUNCTION) and never resets a handle, so a request sets only what differs (URL, headers,
  method, timeouts, size cap, its own sinks);
- takes `JobRequest`s, whose headers are encoded once by the caller, without the defaults proxy;
- keeps header lines as curl delivers them (a C-level list append, no Python frame) and leaves parsing
  to the caller, once, after the transfer;
- caps the body with curl's MAXFILESIZE (refused from the Content-Length before a byte is read) plus a
  byte counter on the decoded bytes, which libcurl's cap does not see; or, for a Transfer that `cuts`,
  keeps the body up to the cap and ends the transfer there as a success (webhook answers: only the
  status line matters);
- runs "call me now" timeouts as one loop callback and keeps a timer that fires no later than asked;
- builds a small JobResponse (body and headers stay on the Transfer) for each of the transfers curl
  reports done, all finished in one pass before the queue is refilled once (as Tornado does).

A Python callback that raises (a bug) is recorded on its Transfer and ends the transfer, so the caller can
tell it apart from a network error. Any other HTTPRequest goes through Tornado's own code on a handle reset
first, so this is still an AsyncHTTPClient. The address guard is on every connection of a JobRequest:
OPENSOCKETFUNCTION is set at
handle creation (and again after a stock request reset it), with no transfer attached it refuses, and a
stock request's connection is closed after it (FORBID_REUSE), so no JobRequest reuses an unguarded one.
Connections are reused between JobRequests, so all those sent through one client carry the same policy
(the Fetcher owns one client and one policy).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from io import BytesIO
from typing import Any

import pycurl
from tornado.concurrent import Future, future_set_exception_unless_cancelled, future_set_result_unless_cancelled
from tornado.curl_httpclient import CurlAsyncHTTPClient, CurlError
from tornado.httpclient import HTTPRequest, HTTPResponse
from tornado.httputil import HTTPHeaders

__all__ = ["JobRequest", "JobResponse", "LeanCurlClient", "Transfer"]

_PROTOCOLS = pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS
_TIMINGS = (("namelookup", pycurl.NAMELOOKUP_TIME), ("connect", pycurl.CONNECT_TIME),
            ("appconnect", pycurl.APPCONNECT_TIME), ("pretransfer", pycurl.PRETRANSFER_TIME),
            ("starttransfer", pycurl.STARTTRANSFER_TIME), ("total", pycurl.TOTAL_TIME),
            ("redirect", pycurl.REDIRECT_TIME))


class Transfer:
    """What curl fills in for one request: raw header lines, body chunks under a cap, refused addresses, and
    the exception of a callback that failed.

    The guard's refusals are judged against the header lines: curl connects a hop after the previous hop's
    headers and before its own, so a refusal made since the last header line (`refused_at` equal to the line
    count) with no connection made since (`reached_at`, from PREREQFUNCTION) is a hop that reached no allowed
    address. A refused address curl skipped (a private AAAA beside a public A) before it reached an allowed
    one is no failure.
    """

    __slots__ = ("allows", "blocked", "chunks", "cut", "cuts", "failure", "limit", "lines", "reached_at",
                 "refused_at", "size", "too_large")

    def __init__(self, allows: Callable[[str], bool], limit: int, cuts: bool = False) -> None:
        self.allows = allows  # the address policy's check, asked for every socket curl opens
        self.limit = limit
        self.cuts = cuts  # a body over the limit is kept up to it and the transfer ends there, not failed
        self.size = 0
        self.chunks: list[bytes] = []
        self.lines: list[bytes] = []
        self.blocked: str | None = None  # the first address refused for the latest hop that had a refusal
        self.refused_at = -1  # len(lines) when the guard last refused a socket
        self.reached_at = -1  # len(lines) when a connection was last made (or reused) for a request
        self.too_large = False
        self.cut = False
        self.failure: BaseException | None = None

    def open_socket(self, purpose: int, address: Any) -> Any:
        """OPENSOCKETFUNCTION: a socket only to an allowed address; refusals are noted for `refused`."""
        try:
            ip = address.addr[0]
            at = len(self.lines)
            if not self.allows(ip):
                if self.refused_at != at:
                    self.blocked = ip
                self.refused_at = at
                return pycurl.SOCKET_BAD
            return socket.socket(address.family, address.socktype, address.protocol)
        except Exception as exc:  # a bug (or no file descriptor left): curl must not connect unchecked
            self.failure = self.failure or exc
            return pycurl.SOCKET_BAD

    def reached(self, *_addresses: Any) -> int:
        """PREREQFUNCTION: a connection is up (made or reused) and the request is about to be sent."""
        self.reached_at = len(self.lines)
        return pycurl.PREREQFUNC_OK

    def refused(self) -> bool:
        """Whether the last hop reached no address because the guard refused one (what `blocked` means)."""
        at = len(self.lines)
        return self.refused_at == at and self.reached_at != at

    def write(self, chunk: bytes) -> int | None:
        """WRITEFUNCTION: count decoded bytes against the cap (curl's MAXFILESIZE counts them encoded)."""
        try:
            size = self.size + len(chunk)
            if size > self.limit:
                if self.cuts:
                    self.chunks.append(chunk[:self.limit - self.size])
                    self.size = self.limit
                    self.cut = True
                else:
                    self.too_large = True
                return 0  # curl ends the transfer with a write error
            self.size = size
            self.chunks.append(chunk)
            return None
        except Exception as exc:  # a bug: the transfer ends and the caller hears of it as internal_error
            self.failure = self.failure or exc
            return 0

    def take_body(self) -> bytes:
        """The body received, handed over once (the handle may keep this object until its next request)."""
        chunks, self.chunks = self.chunks, []
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class JobRequest(HTTPRequest):
    """A request whose header lines are encoded already and whose sinks are a Transfer.

    HTTPRequest.__init__ is skipped: its property conversions and defaults are work this client never
    reads. `headers` is rebuilt from the lines only if someone asks.
    """

    connect_timeout: float  # never None here, unlike an HTTPRequest's
    request_timeout: float

    def __init__(self, url: str, method: str, body: bytes | None, header_lines: list[bytes], user_agent: str | bytes,
                 connect_timeout: float, request_timeout: float, follow_redirects: bool, max_redirects: int,
                 transfer: Transfer) -> None:
        self.url = url
        self.method = method
        self._body = body  # type: ignore[assignment]  # None: no body, as HTTPRequest keeps it
        self.header_lines = header_lines
        self.user_agent = user_agent  # type: ignore[assignment]
        self.connect_timeout = connect_timeout
        self.request_timeout = request_timeout
        self.follow_redirects = follow_redirects
        self.max_redirects = max_redirects
        self.transfer = transfer
        self.start_time = time.time()

    @property
    def headers(self) -> HTTPHeaders:
        """The request headers as Tornado shows them (parsed from the encoded lines on demand)."""
        parsed = HTTPHeaders()
        for line in self.header_lines:
            name, _, value = line.decode("latin-1").partition(":")
            if value.strip():
                parsed.add(name, value.strip())
        return parsed

    @headers.setter
    def headers(self, value: Any) -> None:
        raise AttributeError("a JobRequest's headers are its encoded header_lines")


class JobResponse(HTTPResponse):
    """A finished JobRequest: status, final URL, curl's timings; body and header lines are on the Transfer."""

    request: JobRequest

    def __init__(self, request: JobRequest, code: int, effective_url: str | None, error: BaseException | None,
                 time_info: dict[str, float], request_time: float) -> None:
        self.request = request
        self.code = code
        self.reason = ""
        self.effective_url = effective_url or request.url
        self.error = error
        self._error_is_response_code = False
        self.buffer = None
        self._body = None
        self.start_time = request.start_time
        self.request_time = request_time
        self.time_info = time_info

    @property
    def headers(self) -> HTTPHeaders:
        """The last response's headers, parsed from the raw lines on demand."""
        parsed = HTTPHeaders()
        for line in self.request.transfer.lines:
            text = line.decode("latin-1").rstrip("\r\n")
            if text.startswith("HTTP/"):
                parsed = HTTPHeaders()
            elif text:
                parsed.parse_line(text)
        return parsed

    @headers.setter
    def headers(self, value: Any) -> None:
        raise AttributeError("a JobResponse's headers come from its transfer's raw lines")


class LeanCurlClient(CurlAsyncHTTPClient):
    """CurlAsyncHTTPClient for the fetch workers: JobRequests take the short path, others Tornado's."""

    def initialize(self, max_clients: int = 10, defaults: dict[str, Any] | None = None,  # type: ignore[override]
                   max_body_size: int = 104857600) -> None:
        self._soon = False  # a "now" timeout is queued as a loop callback
        self._timeout_at = 0.0
        super().initialize(max_clients=max_clients, defaults=defaults, max_body_size=max_body_size)

    def _curl_create(self) -> pycurl.Curl:
        curl = pycurl.Curl()
        curl.job = None  # (request, callback, queued at, started at) while a JobRequest runs
        curl.info = None
        self._configure(curl)
        return curl

    @staticmethod
    def _configure(curl: pycurl.Curl) -> None:
        """The options every JobRequest shares, set once per handle (and after a stock request reset it)."""
        curl.setopt(pycurl.PROTOCOLS, _PROTOCOLS)
        curl.setopt(pycurl.REDIR_PROTOCOLS, _PROTOCOLS)
        curl.setopt(pycurl.ACCEPT_ENCODING, "")  # every encoding this libcurl can decode
        curl.setopt(pycurl.NOSIGNAL, 1)  # the process has threads (the store's): no SIGALRM for DNS timeouts
        curl.setopt(pycurl.IPRESOLVE, pycurl.IPRESOLVE_WHATEVER)
        curl.setopt(pycurl.SSL_VERIFYPEER, 1)
        curl.setopt(pycurl.SSL_VERIFYHOST, 2)

        def open_socket(purpose: int, address: Any) -> Any:
            transfer = curl.transfer
            if transfer is None:
                return pycurl.SOCKET_BAD  # no request attached: refuse rather than connect unchecked
            return transfer.open_socket(purpose, address)

        def reached(*addresses: Any) -> int:
            transfer = curl.transfer
            return transfer.reached() if transfer is not None else pycurl.PREREQFUNC_OK

        curl.transfer = None
        curl.setopt(pycurl.OPENSOCKETFUNCTION, open_socket)
        curl.setopt(pycurl.PREREQFUNCTION, reached)
        curl.lean = True

    def fetch(self, request: Any, raise_error: bool = True, **kwargs: Any) -> Future[HTTPResponse]:
        """A JobRequest skips the defaults proxy and header copy; the future fails only with a CurlError."""
        if not isinstance(request, JobRequest):
            return super().fetch(request, raise_error, **kwargs)
        if self._closed:
            raise RuntimeError("fetch() called on closed AsyncHTTPClient")
        future: Future[HTTPResponse] = Future()

        def done(response: HTTPResponse) -> None:
            if response.error is not None:
                future_set_exception_unless_cancelled(future, response.error)
            else:
                future_set_result_unless_cancelled(future, response)

        entry = (request, done, self.io_loop.time())
        self._requests.append(entry)
        future.add_done_callback(lambda future: self._abandon(entry) if future.cancelled() else None)
        self._process_queue()
        self._set_timeout(0)
        return future

    def _abandon(self, entry: tuple[JobRequest, Callable[[HTTPResponse], None], float]) -> None:
        """A cancelled JobRequest (its job was cancelled, or the server stops) gives its handle back at once
        rather than when the transfer ends, which can be a whole timeout later."""
        if entry in self._requests:
            self._requests.remove(entry)
            return
        for curl in self._curls:
            if curl.job is not None and curl.job[0] is entry[0]:
                curl.job = None
                curl.transfer = None
                self._multi.remove_handle(curl)  # libcurl closes the connection: it is mid-response
                self._free_list.append(curl)
                self._process_queue()
                self._set_timeout(0)
                return

    def _process_queue(self) -> None:
        while self._free_list and self._requests:
            curl = self._free_list.pop()
            request, callback, queued = self._requests.popleft()
            if isinstance(request, JobRequest):
                self._start_job(curl, request, callback, queued)
            else:
                self._start_stock(curl, request, callback, queued)

    def _start_job(self, curl: pycurl.Curl, request: JobRequest, callback: Callable[[HTTPResponse], None],
                   queued: float) -> None:
        if not curl.lean:
            self._configure(curl)
        transfer = request.transfer
        setopt = curl.setopt
        try:
            setopt(pycurl.URL, request.url)
            setopt(pycurl.HTTPHEADER, request.header_lines)
            setopt(pycurl.USERAGENT, request.user_agent)
            # at least 1 ms: curl reads 0 as "no limit", and a hop late in a redirect chain can have less left
            setopt(pycurl.CONNECTTIMEOUT_MS, max(1, int(1000 * request.connect_timeout)))
            setopt(pycurl.TIMEOUT_MS, max(1, int(1000 * request.request_timeout)))
            setopt(pycurl.FOLLOWLOCATION, request.follow_redirects)
            setopt(pycurl.MAXREDIRS, request.max_redirects)
            setopt(pycurl.MAXFILESIZE_LARGE, 0 if transfer.cuts else transfer.limit)  # 0: no limit
            setopt(pycurl.WRITEFUNCTION, transfer.write)
            setopt(pycurl.HEADERFUNCTION, transfer.lines.append)  # raw lines, parsed once afterwards
            if request.method == "GET":
                setopt(pycurl.HTTPGET, 1)  # also clears a previous request's NOBODY or POST
            elif request.method == "HEAD":
                setopt(pycurl.NOBODY, 1)
            elif request.method == "POST":
                body = request.body or b""
                setopt(pycurl.POST, 1)
                setopt(pycurl.POSTFIELDSIZE, len(body))
                setopt(pycurl.COPYPOSTFIELDS, body)
            else:
                raise ValueError(f"a JobRequest is GET, HEAD or POST, not {request.method}")
        except Exception as exc:  # a bad option value: the request fails, the handle is made clean again
            curl.reset()
            self._configure(curl)
            self._free_list.append(curl)
            callback(HTTPResponse(request=request, code=599, error=exc))
            return
        curl.transfer = transfer
        curl.job = (request, callback, queued, self.io_loop.time())
        self._multi.add_handle(curl)

    def _start_stock(self, curl: pycurl.Curl, request: HTTPRequest, callback: Callable[[HTTPResponse], None],
                     queued: float) -> None:
        """Tornado's own setup, on a handle reset first (the stock path resets it again when done)."""
        if curl.lean:
            curl.reset()
            curl.lean = False
            curl.transfer = None
        curl.info = {"headers": HTTPHeaders(), "buffer": BytesIO(), "streaming_buffer": None,
                     "body_too_large": False, "request": request, "callback": callback, "queue_start_time": queued,
                     "curl_start_time": time.time(), "curl_start_ioloop_time": self.io_loop.time()}
        try:
            self._curl_setup_request(curl, request, curl.info["buffer"], curl.info["headers"])
            # its connection was opened without the address guard: no later JobRequest may reuse it
            curl.setopt(pycurl.FORBID_REUSE, 1)
        except Exception as exc:
            curl.reset()
            curl.info = None
            self._free_list.append(curl)
            callback(HTTPResponse(request=request, code=599, error=exc))
        else:
            self._multi.add_handle(curl)

    def _finish(self, curl: pycurl.Curl, curl_error: int | None = None, curl_message: str | None = None) -> None:
        job = curl.job
        if job is None:
            super()._finish(curl, curl_error, curl_message)
            return
        curl.job = None
        curl.transfer = None
        self._multi.remove_handle(curl)
        request, callback, queued, started = job
        getinfo = curl.getinfo
        if curl_error == pycurl.E_WRITE_ERROR and request.transfer.cut and request.transfer.failure is None:
            curl_error = None  # the body reached its cap and was cut there on purpose: the answer is complete
        if curl_error:
            error: BaseException | None = CurlError(curl_error, curl_message or "")
            code, effective_url = 599, None
        else:
            error, code, effective_url = None, getinfo(pycurl.HTTP_CODE), getinfo(pycurl.EFFECTIVE_URL)
        now = self.io_loop.time()
        time_info = {"queue": started - queued}
        for name, option in _TIMINGS:
            time_info[name] = getinfo(option)
        self._free_list.append(curl)
        try:
            callback(JobResponse(request, code, effective_url, error, time_info, now - started))
        except Exception:
            self.handle_callback_exception(callback)

    def _set_timeout(self, msecs: int) -> None:
        """libcurl's TIMERFUNCTION: "now" becomes one loop callback; a pending timer that fires no later than
        asked is kept (firing early is harmless: curl only runs what is due, and the timer is set again)."""
        loop = self.io_loop
        if msecs == 0:
            if not self._soon:
                self._soon = True
                loop.add_callback(self._on_soon)
            return
        if msecs < 0:  # curl has nothing to time
            if self._timeout is not None:
                loop.remove_timeout(self._timeout)
                self._timeout = None
            return
        deadline = loop.time() + msecs / 1000.0
        if self._timeout is not None:
            if self._timeout_at <= deadline:
                return
            loop.remove_timeout(self._timeout)
        self._timeout_at = deadline
        self._timeout = loop.add_timeout(deadline, self._on_timer)

    def _on_soon(self) -> None:
        self._soon = False
        self._drive()

    def _on_timer(self) -> None:
        self._timeout = None
        self._drive()

    def _handle_timeout(self) -> None:
        self._on_timer()

    def _drive(self) -> None:
        """Let curl run what is due, finish what completed, and ask it when to come back."""
        multi = self._multi
        if multi is None:
            return  # closed meanwhile
        while True:
            try:
                ret, _handles = multi.socket_action(pycurl.SOCKET_TIMEOUT, 0)
            except pycurl.error as exc:
                ret = exc.args[0] if isinstance(exc.args[0], int) else 0
            if ret != pycurl.E_CALL_MULTI_PERFORM:
                break
        self._finish_pending_requests()
        wait = multi.timeout()
        if wait >= 0:
            self._set_timeout(wait)
