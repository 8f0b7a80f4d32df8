"""The live stream as an async iterator: reconnects with backoff and says when to resync, as the dashboard does."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.iostream import StreamClosedError
from tornado.websocket import WebSocketClientConnection, websocket_connect

from jobqueue.backoff import delay as backoff_delay

from .errors import APIError, JobQueueError
from .http import API, Query, Transport, api_error, query_string, retry_after
from .models import Event

FIRST_DELAY = 0.5
MAX_DELAY = 15.0


async def events(transport: Transport, task_ids: Iterable[str] | None = None,
                 view: Mapping[str, Any] | None = None, max_failures: int | None = None, *,
                 query: Query | None = None) -> AsyncIterator[Event]:
    """Yield every event; after each (re)connection first a `resync` event, since messages may have been
    missed while down (re-read what you show over REST then, as the dashboard does on `hello`).

    `view` is sent after each connection (`{"task_ids": [...], "newest": 0}` asks for counts and batch
    messages only); `query` adds query parameters as they are. An answer retrying cannot change (a 4xx other
    than 429: a wrong token, a parameter the server refuses) ends the stream with the server's APIError; a
    connection that fails, a 429 or a 5xx reconnects after 0.5 s (or the server's Retry-After), doubling up
    to 15 s, forever unless `max_failures` connections in a row fail.
    """
    ids = list(task_ids or [])
    url = transport.server.replace("http", "ws", 1) + f"{API}/events" + query_string({**(query or {}), "task_id": ids})
    base, waits = FIRST_DELAY, 0  # the next wait is backoff_delay(waits, base, MAX_DELAY); Retry-After raises base
    failures = 0
    while True:
        socket: WebSocketClientConnection | None = None
        try:
            request = HTTPRequest(url, headers=transport.headers(), connect_timeout=10.0, request_timeout=10.0)
            socket = await websocket_connect(request, max_message_size=64 * 1024 * 1024)
            while True:
                message = await socket.read_message()
                if message is None:
                    break
                for data in _messages(message):
                    if data.get("type") == "hello":
                        base, waits, failures = FIRST_DELAY, 0, 0
                        if view is not None:
                            await socket.write_message(json.dumps({"type": "view", **view}))
                        yield Event("resync", raw=data)
                    else:
                        yield Event.from_json(data)
        except HTTPClientError as exc:
            if exc.response is not None and 400 <= exc.code < 500 and exc.code != 429:
                raise _refusal(transport.server, exc) from exc
            wait = retry_after(exc.response) if exc.response is not None else None
            if wait is not None:
                base, waits = max(backoff_delay(waits, base, MAX_DELAY), min(wait, MAX_DELAY)), 0
        except (OSError, StreamClosedError):
            pass
        finally:
            if socket is not None:
                socket.close()
        failures += 1
        if max_failures is not None and failures >= max_failures:
            return
        await asyncio.sleep(backoff_delay(waits, base, MAX_DELAY))
        waits += 1


def _refusal(server: str, exc: HTTPClientError) -> JobQueueError:
    """Why the server will not open the stream, with its own code and message when it gave them."""
    assert exc.response is not None
    error = api_error(server, exc.response)
    if isinstance(error, APIError) or exc.code not in (401, 403):
        return error
    return APIError("unauthorized" if exc.code == 401 else "forbidden",
                    f"the event stream refused the token (HTTP {exc.code}); pass the server's token "
                    "with --token or JOBQUEUE_API_TOKEN", exc.code)


def _messages(message: str | bytes) -> list[dict[str, Any]]:
    """The messages in one frame: `{"type": "batch", "messages": [...]}` frames are unpacked."""
    try:
        data = json.loads(message)
    except ValueError:
        return []
    if not isinstance(data, dict):
        return []
    if data.get("type") == "batch" and isinstance(data.get("messages"), list):
        return [m for m in data["messages"] if isinstance(m, dict)]
    return [data]
