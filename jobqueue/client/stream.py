"""The live stream as an async iterator: reconnects with backoff and says when to resync, as the dashboard does."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.iostream import StreamClosedError
from tornado.websocket import WebSocketClientConnection, websocket_connect

from .errors import APIError
from .http import API, Transport, query_string
from .models import Event

FIRST_DELAY = 0.5
MAX_DELAY = 15.0


async def events(transport: Transport, task_ids: Iterable[str] | None = None,
                 view: Mapping[str, Any] | None = None, max_failures: int | None = None) -> AsyncIterator[Event]:
    """Yield every event; after each (re)connection first a `resync` event, since messages may have been
    missed while down (re-read what you show over REST then, as the dashboard does on `hello`).

    `view` is sent after each connection (`{"task_ids": [...], "newest": 0}` asks for counts and batch
    messages only). A 401/403 ends the stream with APIError; other failures reconnect after 0.5 s,
    doubling up to 15 s, forever unless `max_failures` connections in a row fail.
    """
    ids = list(task_ids or [])
    url = transport.server.replace("http", "ws", 1) + f"{API}/events" + query_string({"task_id": ids})
    delay = FIRST_DELAY
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
                        delay, failures = FIRST_DELAY, 0
                        if view is not None:
                            await socket.write_message(json.dumps({"type": "view", **view}))
                        yield Event("resync", raw=data)
                    else:
                        yield Event.from_json(data)
        except HTTPClientError as exc:
            if exc.code in (401, 403):
                raise APIError("unauthorized" if exc.code == 401 else "forbidden",
                               f"the event stream refused the token (HTTP {exc.code}); pass the server's token "
                               "with --token or JOBQUEUE_API_TOKEN", exc.code) from exc
        except (OSError, StreamClosedError):
            pass
        finally:
            if socket is not None:
                socket.close()
        failures += 1
        if max_failures is not None and failures >= max_failures:
            return
        await asyncio.sleep(delay)
        delay = min(delay * 2, MAX_DELAY)


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
