"""Fetch one URL with Tornado's curl client: keep-alive, size cap, redirects, address guard.

Plain jobs let curl follow redirects (fastest). A job with headers or a fetch profile follows them here,
one request per hop, because libcurl keeps sending custom headers (an API key, say) to whatever host a
redirect names; here they stop at the first hop that leaves the original scheme, host and port.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

from tornado.curl_httpclient import CurlError
from tornado.httpclient import HTTPResponse
from tornado.httputil import HTTPHeaders

from jobqueue import __version__
from jobqueue.addresses import AddressPolicy
from jobqueue.curl_driver import JobRequest, LeanCurlClient, Transfer
from jobqueue.errors import FetchError
from jobqueue.profiles import FetchProfiles, Profile
from jobqueue.redirect_urls import REDIRECT_STATUSES, next_url, origin
from jobqueue.spec import DEFAULT_FETCH, FetchOptions

__all__ = ["DEFAULT_USER_AGENT", "FetchError", "FetchResponse", "FetchSettings", "Fetcher"]

log = logging.getLogger("jobqueue.fetcher")

ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
DEFAULT_USER_AGENT = f"jobqueue/{__version__} (+https://github.com/jobqueue/jobqueue)"

# curl's error numbers (curl/curl.h) mapped to the API's stable error codes.
_CURL_CODES = {
    5: "dns_error",  # couldn't resolve proxy
    6: "dns_error",
    7: "connection_error",
    28: "timeout",
    35: "tls_error",
    47: "too_many_redirects",
    51: "tls_error",
    52: "connection_error",  # empty reply
    55: "connection_error",  # send error
    56: "connection_error",  # receive error
    58: "tls_error",
    60: "tls_error",
    61: "decode_error",  # bad content encoding
    63: "too_large",  # content-length over MAXFILESIZE
    # CURLE_UNSUPPORTED_PROTOCOL: submitted schemes are already checked, so at fetch time it means an
    # HTTP/0.9 reply or a status line curl cannot read; a redirect to another scheme is told apart below.
    1: "protocol_error",
    3: "invalid_url",
    8: "protocol_error",
    16: "protocol_error",
    18: "connection_error",  # partial file
    92: "protocol_error",
}
_STATUS_LINE = re.compile(r"HTTP/\S+[ \t]+([0-9]{3})(?:[ \t]|$)")
RAW_HEADERS_MAX = 64 * 1024  # FetchResponse.raw_headers keeps at most this much of the header block


@dataclass(frozen=True)
class FetchSettings:
    """How the fetcher behaves; built once from the server's options."""

    connect_timeout: float = 10.0
    total_timeout: float = 30.0
    max_body_size: int = 10 * 1024 * 1024
    max_redirects: int = 10
    user_agent: str = DEFAULT_USER_AGENT
    max_clients: int = 32
    cut_long_bodies: bool = False  # a body over max_body_size is kept cut there (`truncated`), not too_large


@dataclass
class FetchResponse:
    """What one attempt brought back, before it is stored."""

    url: str
    final_url: str
    http_status: int
    headers: dict[str, str]
    body: bytes
    elapsed_ms: float
    fetched_at: float
    redirects: list[dict[str, Any]]
    timings: dict[str, float]
    raw_headers: bytes = b""  # the final response's status line and header lines as received, CRLFs and all
    truncated: bool = False  # the body is cut at the cap (only with FetchSettings.cut_long_bodies)

    @property
    def sha256(self) -> str:
        """Digest of the stored body, so users can compare fetches."""
        return hashlib.sha256(self.body).hexdigest()


def _blocks(lines: list[bytes]) -> list[list[bytes]]:
    """Header lines as curl delivered them, one list per response (interim 1xx, redirects, the final one)."""
    blocks: list[list[bytes]] = []
    for line in lines:
        if line.startswith(b"HTTP/"):
            blocks.append([line])
        elif blocks:
            blocks[-1].append(line)
    return blocks


def _status_of(block: list[bytes]) -> int:
    """The status code of one response's status line; anything but 100-599 is a protocol error."""
    first = block[0].decode("latin-1").rstrip("\r\n")
    match = _STATUS_LINE.match(first)
    status = int(match.group(1)) if match else 0
    if not 100 <= status <= 599:
        raise FetchError("protocol_error", f"the server sent an invalid status line: {first[:100]!r}")
    return status


def _parse_block(block: list[bytes]) -> tuple[int, dict[str, str]]:
    status = _status_of(block)
    headers: dict[str, str] = {}
    for line in block[1:]:
        name, sep, value = line.decode("latin-1").partition(":")
        if not sep:
            continue
        key = name.strip().lower()
        value = value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return status, headers


def _raw_block(block: list[bytes]) -> bytes:
    """The response's header block as received, through its blank line (trailers after the body are not part
    of it), at most RAW_HEADERS_MAX bytes."""
    end = len(block)
    for i, line in enumerate(block):
        if i and not line.strip():
            end = i + 1
            break
    return b"".join(block[:end])[:RAW_HEADERS_MAX]


class Fetcher:
    """One shared curl client; `fetch` never raises anything but FetchError, and `fetch_soon` hands `done`
    nothing else: a request that cannot be sent or a bug ends the attempt at once with a true error code
    (`invalid_url`, `invalid_header`, `invalid_body`, `internal_error`), never by leaving the job hanging."""

    def __init__(self, settings: FetchSettings, policy: AddressPolicy, profiles: FetchProfiles | None = None) -> None:
        self.settings = settings
        self.policy = policy
        self.profiles = profiles
        self._client = LeanCurlClient(force_instance=True, max_clients=settings.max_clients)
        self._closed = False

    def close(self) -> None:
        """Close the client's connections (once: a server stopped twice closes its fetchers once)."""
        if not self._closed:
            self._closed = True
            self._client.close()

    async def fetch(self, url: str, options: FetchOptions = DEFAULT_FETCH) -> FetchResponse:
        """Fetch `url` as a job's options say; raise FetchError with a stable code on failure."""
        started = time.monotonic()
        fetched_at = time.time()
        deadline = started + (options.timeout or self.settings.total_timeout)
        try:
            profile = self._profile(options, url)
            if options.follow_redirects and (options.headers or profile is not None):
                hop = await self._follow(url, options, profile, deadline)
            else:
                hop = await self._send(url, options.method, _body(options.method, options.body),
                                       self._headers(options, profile), options, deadline, options.follow_redirects)
            return _response(url, hop, started, fetched_at)
        except Exception as exc:
            raise fetch_error(exc, url) from exc

    async def _follow(self, url: str, options: FetchOptions, profile: Profile | None, deadline: float) -> _Hop:
        """Follow redirects here rather than in curl, so a job's and a profile's headers never leave the
        origin they were meant for: from the first hop to another scheme, host or port on, only Accept, the
        User-Agent and (with a body still sent) Content-Type go along. Every hop goes through `_send`, so the
        address guard checks each; `timings` are the last hop's."""
        start = origin(url)
        method, body = options.method, _body(options.method, options.body)
        left = False  # once a hop leaves the origin, no later hop gets the headers back
        redirects: list[dict[str, Any]] = []
        current = url
        while True:
            left = left or origin(current) != start
            if profile is not None and (left or not profile.allows(urlsplit(current).hostname or "")):
                profile = None
            headers = self._bare_headers(options, body is not None) if left else self._headers(options, profile)
            hop = await self._send(current, method, body, headers, options, deadline, follow=False)
            location = hop.headers.get("location")
            if hop.status not in REDIRECT_STATUSES or not location:
                hop.redirects = redirects
                return hop
            if len(redirects) >= self.settings.max_redirects:
                raise FetchError("too_many_redirects", f"more than {self.settings.max_redirects} redirects "
                                 f"(the last from {current[:200]})")
            redirects.append({"url": current, "status": hop.status})
            current = next_url(current, location)
            if (hop.status == 303 and method != "HEAD") or (hop.status in (301, 302) and method == "POST"):
                method, body = "GET", None

    async def _send(self, url: str, method: str, body: str | None, headers: list[bytes], options: FetchOptions,
                    deadline: float, follow: bool) -> _Hop:
        """One request through the shared client and the address guard; curl follows redirects if `follow`."""
        request = self._request(url, method, body, headers, options, deadline, follow)
        try:
            response = await self._client.fetch(request)
        except CurlError as exc:
            return _hop(request, None, exc)
        return _hop(request, response, None)

    @staticmethod
    def fetches_soon(options: FetchOptions) -> bool:
        """Whether `fetch_soon` can run this job: not when it names a profile, or sends its own headers
        through redirects (those hops are followed one by one in `fetch`)."""
        return options.profile is None and not (options.follow_redirects and options.headers)

    def fetch_soon(self, url: str, options: FetchOptions,
                   done: Callable[[FetchResponse | Exception], None]) -> asyncio.Future[Any]:
        """Start a job's fetch without a coroutine, for the workers' most common path (it saves each job an
        asyncio task), and call `done` with the response or the error (a FetchError, or a bug's exception)
        unless the returned future is cancelled first. Only for jobs `fetches_soon` accepts."""
        started = time.monotonic()
        fetched_at = time.time()
        request: JobRequest | None = None
        try:
            request = self._request(url, options.method, _body(options.method, options.body),
                                    self._headers(options, None), options,
                                    started + (options.timeout or self.settings.total_timeout),
                                    options.follow_redirects)
            future = self._client.fetch(request)
        except Exception as exc:  # a request that cannot be sent, or a bug: the job hears of it as any error
            future = asyncio.get_running_loop().create_future()
            future.set_exception(exc)

        def finished(future: asyncio.Future[HTTPResponse]) -> None:
            if future.cancelled():
                return
            try:
                error = future.exception()
                if error is not None and not isinstance(error, CurlError):
                    raise error  # _request's FetchError, or a bug's (in setopt, say)
                assert request is not None
                hop = _hop(request, None if error is not None else future.result(), error)
                response = _response(url, hop, started, fetched_at)
            except Exception as exc:  # either way the job must hear of it, as a FetchError
                done(fetch_error(exc, url))
                return
            done(response)

        future.add_done_callback(finished)
        return future

    def _request(self, url: str, method: str, body: str | None, headers: list[bytes], options: FetchOptions,
                 deadline: float, follow: bool) -> JobRequest:
        settings = self.settings
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise FetchError("timeout", f"the fetch took longer than its {options.timeout or settings.total_timeout}"
                             " seconds, redirects included")
        max_bytes = min(options.max_bytes or settings.max_body_size, settings.max_body_size)
        if not url.isascii():  # curl takes ASCII only; percent-encoding it is the submission's work
            raise FetchError("invalid_url", f"the URL {url[:200]!r} has characters other than ASCII, which cannot "
                             "be sent; submit it again (URLs are percent-encoded when submitted)")
        try:
            encoded = body.encode() if body is not None else None
        except UnicodeEncodeError as exc:
            raise FetchError("invalid_body", f"the request body cannot be sent as UTF-8: {exc}") from None
        user_agent = options.user_agent or settings.user_agent
        try:
            agent = user_agent.encode("latin-1")
        except UnicodeEncodeError:
            raise FetchError("invalid_header", f"the User-Agent {user_agent[:100]!r} has characters beyond "
                             "Latin-1, which an HTTP header cannot carry") from None
        return JobRequest(
            url, method, encoded, headers, agent,
            connect_timeout=min(settings.connect_timeout, remaining), request_timeout=remaining,
            follow_redirects=follow, max_redirects=settings.max_redirects,
            transfer=Transfer(self.policy.allows, max_bytes, settings.cut_long_bodies))

    def _profile(self, options: FetchOptions, url: str) -> Profile | None:
        """The job's profile as the file says now: gone, or no longer listing the job's host, fails the job."""
        if options.profile is None:
            return None
        found = self.profiles.get(options.profile) if self.profiles is not None else None
        if found is None:
            raise FetchError("unknown_profile", f"the fetch profile {options.profile!r} is no longer in "
                             "--fetch-profiles; add it back (and send SIGHUP) or retry the job without it")
        host = urlsplit(url).hostname or ""
        if not found.allows(host):
            raise FetchError("profile_not_allowed", f"the fetch profile {options.profile!r} no longer lists the "
                             f"host {host} in --fetch-profiles; add it back (and send SIGHUP) or retry the job "
                             "without the profile")
        return found

    def _headers(self, options: FetchOptions, profile: Profile | None) -> list[bytes]:
        """The request headers: Accept, then the profile's, then the job's own (a job's value wins)."""
        if profile is None and not options.headers:
            return _PLAIN_HEADERS
        headers = HTTPHeaders({"Accept": ACCEPT})
        if profile is not None:
            for name, value in profile.headers:
                headers[name] = value
        for name, value in options.headers:
            headers[name] = value
        return _encode(headers)

    def _bare_headers(self, options: FetchOptions, with_body: bool) -> list[bytes]:
        """What goes to another origin: Accept (the job's, if it set one) and, while the body is sent, its
        Content-Type; never another job or profile header."""
        keep = {"accept"} | ({"content-type"} if with_body else set())
        headers = HTTPHeaders({"Accept": ACCEPT})
        for name, value in options.headers:
            if name.lower() in keep:
                headers[name] = value
        return _encode(headers)


def _encode(headers: HTTPHeaders) -> list[bytes]:
    """Header lines as curl sends them, with libcurl's automatic Expect and Pragma turned off as Tornado does;
    a value with CR or LF, or beyond Latin-1, is refused (`invalid_header`) rather than split or mangled."""
    for name, blank in (("Expect", ""), ("Pragma", "")):
        if name not in headers:
            headers[name] = blank
    lines = []
    for name, value in headers.get_all():
        try:
            line = f"{name}: {value}".encode("latin-1")
        except UnicodeEncodeError:
            raise FetchError("invalid_header", f"the header {name[:64]!r} has characters beyond Latin-1, which an "
                             "HTTP header cannot carry") from None
        if b"\r" in line or b"\n" in line:
            raise FetchError("invalid_header", f"illegal characters in a header (CR or LF): {line[:100]!r}")
        lines.append(line)
    return lines


_PLAIN_HEADERS = _encode(HTTPHeaders({"Accept": ACCEPT}))  # a job without headers or profile sends these


@dataclass
class _Hop:
    """One request's outcome: the final response after any redirects curl followed itself."""

    url: str
    status: int
    headers: dict[str, str]
    body: bytes
    redirects: list[dict[str, Any]]
    timings: dict[str, float]
    raw_headers: bytes = b""
    truncated: bool = False


def fetch_error(exc: BaseException, url: str) -> FetchError:
    """The FetchError an attempt ends with: itself, or `internal_error` for anything else (a bug, logged
    here with its traceback), so no error can leave a job running until its lease runs out."""
    if isinstance(exc, FetchError):
        return exc
    log.error("fetching %s failed unexpectedly", url[:200], exc_info=exc)
    return FetchError("internal_error", f"the fetch failed unexpectedly ({type(exc).__name__}: {str(exc)[:300]}); "
                      "this is a bug: the server log has the details")


def _hop(request: JobRequest, response: HTTPResponse | None, error: CurlError | None) -> _Hop:
    """What one finished request brought back, or the FetchError that says why it failed."""
    transfer = request.transfer
    max_bytes = transfer.limit
    if transfer.failure is not None:
        raise fetch_error(transfer.failure, request.url)  # a callback's bug ended the transfer
    if error is not None and transfer.refused():
        raise FetchError(
            "blocked",
            f"refused to connect to {transfer.blocked}: not a public address "
            "(start the server with --allow-private-addresses to allow it)",
        )
    if transfer.too_large:
        raise FetchError("too_large", f"the body is larger than the limit of {max_bytes} bytes")
    if error is not None:
        code = _CURL_CODES.get(error.errno, "fetch_error")
        if error.errno == 1 and (error.message or "").startswith("Protocol "):
            code = "unsupported_scheme"  # a redirect to ftp:, file: and the like
        if code == "too_large":
            raise FetchError(code, f"the body is larger than the limit of {max_bytes} bytes")
        raise FetchError(code, f"{error.message} (curl error {error.errno})")
    assert response is not None
    blocks = _blocks(transfer.lines)
    responses = [b for b in blocks if not 100 <= _status_of(b) <= 199]
    if not responses:
        raise FetchError("protocol_error", "the server sent no HTTP response")
    redirects = []
    current = request.url
    for block in responses[:-1]:
        status, headers_seen = _parse_block(block)
        redirects.append({"url": current, "status": status})
        current = urljoin(current, headers_seen.get("location", current))
    final = responses[-1]
    status, final_headers = _parse_block(final)
    return _Hop(url=response.effective_url or current, status=status, headers=final_headers,
                body=transfer.take_body(), redirects=redirects,
                timings={k: round(v * 1000, 3) for k, v in response.time_info.items()},
                raw_headers=_raw_block(final), truncated=transfer.cut)


def _response(url: str, hop: _Hop, started: float, fetched_at: float) -> FetchResponse:
    """The job's response from its last hop, timed from the job's start."""
    return FetchResponse(url=url, final_url=hop.url, http_status=hop.status, headers=hop.headers, body=hop.body,
                         elapsed_ms=round((time.monotonic() - started) * 1000, 3), fetched_at=fetched_at,
                         redirects=hop.redirects, timings=hop.timings, raw_headers=hop.raw_headers,
                         truncated=hop.truncated)


def _body(method: str, body: str | None) -> str | None:
    """The request body tornado expects: a string for POST (empty if none), nothing otherwise."""
    return (body or "") if method == "POST" else None
