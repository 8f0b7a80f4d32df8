"""One HTTP exchange with the server over Tornado: auth, JSON, the error shape, and 429/503 waited out."""

from __future__ import annotations

import asyncio
import email.utils
import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest, HTTPResponse
from tornado.iostream import StreamClosedError

from jobqueue import __version__

from .errors import APIError, JobQueueError, Unreachable

API = "/jobqueue/api/v1.0"
USER_AGENT = f"jobqueue-client/{__version__}"
MAX_RETRY_AFTER = 30.0  # one wait never exceeds this, whatever Retry-After says
Query = Mapping[str, str | int | Sequence[str] | None]


def query_string(query: Query | None) -> str:
    """`?a=1&tag=x&tag=y` from a mapping (None values left out, sequences repeated), or ''."""
    pairs: list[tuple[str, str]] = []
    for name, value in (query or {}).items():
        if value is None:
            continue
        values = [value] if isinstance(value, str | int) else list(value)
        pairs += [(name, str(v)) for v in values]
    return "?" + urlencode(pairs) if pairs else ""


def retry_after(response: HTTPResponse) -> float | None:
    """Seconds the server asked us to wait (delta-seconds or an HTTP date), or None."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        when = email.utils.parsedate_to_datetime(value) if value else None
        return max(0.0, when.timestamp() - time.time()) if when is not None else None


def unreachable(server: str, exc: BaseException) -> Unreachable:
    """The sentence for a request that got no HTTP answer."""
    reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return Unreachable("unreachable", f"cannot reach the jobqueue server at {server} ({reason}); is it running "
                       "(`jobqueue serve`), and is --server / JOBQUEUE_URL right?")


def api_error(server: str, response: HTTPResponse, streamed: bytes | None = None) -> JobQueueError:
    """An APIError from an error answer (its body as read, or as a streaming callback kept it): the API's
    own code and message, or a sentence for a stranger."""
    try:
        body = json.loads(response.body if streamed is None else streamed)
        error = body["error"]
        code, message = str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        return JobQueueError("not_jobqueue", f"{server} answered HTTP {response.code} without a jobqueue error; "
                        "is --server / JOBQUEUE_URL the jobqueue server's address?", response.code)
    if response.code == 401:
        message += "; pass the server's token with --token or JOBQUEUE_API_TOKEN"
    return APIError(code, message, response.code, body)


class Transport:
    """Sends requests to one server with one token; made lazily on the running loop."""

    def __init__(self, server: str, token: str | None, timeout: float, max_wait: float) -> None:
        self.server = server.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.max_wait = max_wait  # total seconds one call may spend waiting out 429/503
        self._client: AsyncHTTPClient | None = None

    @property
    def client(self) -> AsyncHTTPClient:
        """The HTTP client, bound to the loop of the first request."""
        if self._client is None:
            self._client = AsyncHTTPClient(force_instance=True)
        return self._client

    def headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """User-Agent and Authorization, plus what the call adds."""
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        headers.update(extra or {})
        return headers

    async def fetch(self, method: str, path: str, *, query: Query | None = None, body: bytes | None = None,
                    headers: Mapping[str, str] | None = None, request_timeout: float | None = None,
                    streaming_callback: Callable[[bytes], None] | None = None,
                    header_callback: Callable[[str], None] | None = None) -> HTTPResponse:
        """One request; 429 and 503 with Retry-After are retried for up to max_wait seconds in all."""
        url = self.server + (path if path.startswith("/") else f"{API}/{path}") + query_string(query)
        if body is None and method in ("POST", "PUT", "PATCH"):
            body = b""
        give_up = time.monotonic() + self.max_wait
        while True:
            request = HTTPRequest(url, method=method, body=body, headers=self.headers(headers),
                                  connect_timeout=min(self.timeout, 10.0),
                                  request_timeout=self.timeout if request_timeout is None else request_timeout,
                                  streaming_callback=streaming_callback, header_callback=header_callback,
                                  allow_nonstandard_methods=True)
            try:
                response = await self.client.fetch(request, raise_error=False)
            except (OSError, StreamClosedError, HTTPClientError) as exc:
                raise unreachable(self.server, exc) from exc
            wait = retry_after(response) if response.code in (429, 503) else None
            if wait is None or time.monotonic() + min(wait, MAX_RETRY_AFTER) > give_up:
                return response
            await asyncio.sleep(min(wait, MAX_RETRY_AFTER))

    async def call(self, method: str, path: str, *, query: Query | None = None, payload: Any = None,
                   text: str | None = None, headers: Mapping[str, str] | None = None) -> Any:
        """A JSON call: the decoded answer, or APIError carrying the API's code."""
        extra = dict(headers or {})
        body = None
        if payload is not None:
            body = json.dumps(payload).encode()
            extra["Content-Type"] = "application/json"
        elif text is not None:
            body = text.encode()
            extra["Content-Type"] = "text/plain; charset=utf-8"
        response = await self.fetch(method, path, query=query, body=body, headers=extra)
        if response.code >= 400:
            raise api_error(self.server, response)
        try:
            return json.loads(response.body)
        except ValueError:
            raise JobQueueError("not_jobqueue", f"{self.server} answered without JSON; is --server / JOBQUEUE_URL the "
                           "jobqueue server's address?", response.code) from None

    def close(self) -> None:
        """Close the HTTP client's connections."""
        if self._client is not None:
            self._client.close()
            self._client = None
