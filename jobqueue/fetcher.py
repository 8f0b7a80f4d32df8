"""Fetch one URL with Tornado's curl client: keep-alive, size cap, redirects, address guard."""

from __future__ import annotations

import hashlib
import re
import socket
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin

import pycurl
from tornado.curl_httpclient import CurlAsyncHTTPClient, CurlError
from tornado.httpclient import HTTPRequest
from tornado.httputil import HTTPHeaders

from jobqueue import __version__
from jobqueue.addresses import AddressPolicy
from jobqueue.errors import FetchError
from jobqueue.profiles import FetchProfiles
from jobqueue.spec import DEFAULT_FETCH, FetchOptions

__all__ = ["DEFAULT_USER_AGENT", "FetchError", "FetchResponse", "FetchSettings", "Fetcher"]

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


@dataclass(frozen=True)
class FetchSettings:
    """How the fetcher behaves; built once from the server's options."""

    connect_timeout: float = 10.0
    total_timeout: float = 30.0
    max_body_size: int = 10 * 1024 * 1024
    max_redirects: int = 10
    user_agent: str = DEFAULT_USER_AGENT
    max_clients: int = 32


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

    @property
    def sha256(self) -> str:
        """Digest of the stored body, so users can compare fetches."""
        return hashlib.sha256(self.body).hexdigest()


@dataclass
class _Attempt:
    """State curl's callbacks fill in while one request runs."""

    policy: AddressPolicy
    max_body_size: int
    body: bytearray = field(default_factory=bytearray)
    blocks: list[list[str]] = field(default_factory=list)
    blocked: str | None = None
    too_large: bool = False

    def open_socket(self, purpose: int, address: Any) -> Any:
        ip = address.addr[0]
        if not self.policy.allows(ip):
            self.blocked = self.blocked or ip
            return pycurl.SOCKET_BAD
        return socket.socket(address.family, address.socktype, address.protocol)

    def write(self, chunk: bytes) -> int | None:
        if self.blocked is not None:
            return 0
        if len(self.body) + len(chunk) > self.max_body_size:
            self.too_large = True
            return 0
        self.body += chunk
        return None

    def header(self, line: bytes) -> int | None:
        if self.blocked is not None:
            return 0  # fail closed: another address of this name was refused
        text = line.decode("latin-1").rstrip("\r\n")
        if text.startswith("HTTP/"):
            self.blocks.append([text])
        elif text and self.blocks:
            self.blocks[-1].append(text)
        return None


def _status_of(block: list[str]) -> int:
    """The status code of one response's status line; anything but 100-599 is a protocol error."""
    match = _STATUS_LINE.match(block[0])
    status = int(match.group(1)) if match else 0
    if not 100 <= status <= 599:
        raise FetchError("protocol_error", f"the server sent an invalid status line: {block[0][:100]!r}")
    return status


def _parse_block(lines: list[str]) -> tuple[int, dict[str, str]]:
    status = _status_of(lines)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            continue
        key = name.strip().lower()
        value = value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return status, headers


class Fetcher:
    """One shared curl client; `fetch` never raises anything but FetchError."""

    def __init__(self, settings: FetchSettings, policy: AddressPolicy, profiles: FetchProfiles | None = None) -> None:
        self.settings = settings
        self.policy = policy
        self.profiles = profiles
        self._client = CurlAsyncHTTPClient(force_instance=True, max_clients=settings.max_clients)

    def close(self) -> None:
        """Close the client's connections."""
        self._client.close()

    async def fetch(self, url: str, options: FetchOptions = DEFAULT_FETCH) -> FetchResponse:
        """Fetch `url` as a job's options say; raise FetchError with a stable code on failure."""
        settings = self.settings
        max_bytes = min(options.max_bytes or settings.max_body_size, settings.max_body_size)
        attempt = _Attempt(self.policy, max_bytes)

        def prepare(curl: pycurl.Curl) -> None:
            curl.setopt(pycurl.OPENSOCKETFUNCTION, attempt.open_socket)
            curl.setopt(pycurl.WRITEFUNCTION, attempt.write)
            curl.setopt(pycurl.HEADERFUNCTION, attempt.header)
            curl.setopt(pycurl.ACCEPT_ENCODING, "")  # every encoding this libcurl can decode
            curl.setopt(pycurl.MAXFILESIZE_LARGE, max_bytes)

        # libcurl drops custom Authorization and Cookie headers when a redirect leaves the host
        request = HTTPRequest(
            url,
            method=options.method,
            body=(options.body or "") if options.method == "POST" else None,
            connect_timeout=min(settings.connect_timeout, options.timeout or settings.connect_timeout),
            request_timeout=options.timeout or settings.total_timeout,
            follow_redirects=options.follow_redirects,
            max_redirects=settings.max_redirects,
            user_agent=options.user_agent or settings.user_agent,
            headers=self._headers(options),
            prepare_curl_callback=prepare,
            allow_ipv6=True,
        )
        started = time.monotonic()
        fetched_at = time.time()
        error: CurlError | None = None
        try:
            response = await self._client.fetch(request, raise_error=False)
        except CurlError as exc:
            error = exc
        elapsed_ms = round((time.monotonic() - started) * 1000, 3)
        if attempt.blocked is not None:
            raise FetchError(
                "blocked",
                f"refused to connect to {attempt.blocked}: not a public address "
                "(start the server with --allow-private-addresses to allow it)",
            )
        if attempt.too_large:
            raise FetchError("too_large", f"the body is larger than the limit of {max_bytes} bytes")
        if error is not None:
            code = _CURL_CODES.get(error.errno, "fetch_error")
            if error.errno == 1 and (error.message or "").startswith("Protocol "):
                code = "unsupported_scheme"  # a redirect to ftp:, file: and the like
            if code == "too_large":
                raise FetchError(code, f"the body is larger than the limit of {max_bytes} bytes")
            raise FetchError(code, f"{error.message} (curl error {error.errno})")
        responses = [b for b in attempt.blocks if not 100 <= _status_of(b) <= 199]
        if not responses:
            raise FetchError("protocol_error", "the server sent no HTTP response")
        redirects = []
        current = url
        for block in responses[:-1]:
            status, headers = _parse_block(block)
            redirects.append({"url": current, "status": status})
            current = urljoin(current, headers.get("location", current))
        status, headers = _parse_block(responses[-1])
        return FetchResponse(
            url=url,
            final_url=response.effective_url or current,
            http_status=status,
            headers=headers,
            body=bytes(attempt.body),
            elapsed_ms=elapsed_ms,
            fetched_at=fetched_at,
            redirects=redirects,
            timings={k: round(v * 1000, 3) for k, v in (response.time_info or {}).items()},
        )

    def _headers(self, options: FetchOptions) -> HTTPHeaders:
        """The request headers: Accept, then the profile's, then the job's own (a job's value wins)."""
        headers = HTTPHeaders({"Accept": ACCEPT})
        if options.profile is not None:
            found = self.profiles.headers(options.profile) if self.profiles is not None else None
            if found is None:
                raise FetchError("unknown_profile", f"the fetch profile {options.profile!r} is no longer in "
                                 "--fetch-profiles; add it back (and send SIGHUP) or retry the job without it")
            for name, value in found:
                headers[name] = value
        for name, value in options.headers:
            headers[name] = value
        return headers
