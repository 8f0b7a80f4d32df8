"""`/events`: the websocket that streams every task state change to dashboards."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any
from urllib.parse import urlsplit

from tornado.websocket import WebSocketClosedError, WebSocketHandler

from jobqueue.errors import Code, CodedError
from jobqueue.events import HubClosed, Subscription, View
from jobqueue.models import STATUSES

from .base import ApiError, SharedObjects, _unknown_parameter, send_error, translate
from .request_text import query_text

log = logging.getLogger("jobqueue.events")
BATCH_INTERVAL = 0.1


class EventsHandler(SharedObjects, WebSocketHandler):
    """Subscribes on open, then sends as fast as the client reads (never faster).

    Every write waits until the previous one has left for the socket, so a client that stops reading
    holds at most one message in the server's write buffer. A client that keeps up gets every state of
    every job; one that stays stuck falls behind the hub's recent log and then gets each job's latest
    state, or, further behind, a `resync` (jobqueue/event_reads.py).
    """

    subscription: Subscription | None = None
    _sender: asyncio.Task[None] | None = None
    accepts_query_token = True  # browsers cannot set headers on a websocket
    # what the stream reads (the dashboard sends ?batch=1 and ?token=, the Python client ?task_id=): any other is a
    # 400 before the upgrade, as on every route, so ?taks_id= never becomes a stream of every job
    query_parameters = {"GET": ("task_id", "batch", "token")}

    async def get(self, *args: Any, **kwargs: Any) -> None:
        refused = self.unauthorized() or self.refused_parameter()
        if refused is None and self.hub.streams >= self.config.max_websockets:
            refused = ApiError.of(Code.TOO_MANY_STREAMS, "the server has as many event streams open as it allows; "
                               "try again later", headers={"Retry-After": "10"})
        if refused is not None:
            send_error(self, refused)
            return
        await super().get(*args, **kwargs)

    def refused_parameter(self) -> ApiError | None:
        """The 400 for a query parameter the stream does not read (`unknown_parameter`) or one that is not UTF-8."""
        accepted = self.query_parameters["GET"]
        for name, values in self.request.query_arguments.items():
            if name not in accepted:
                return ApiError.of(Code.UNKNOWN_PARAMETER, _unknown_parameter("GET", self.request.path, name, accepted))
            try:
                for value in values:
                    query_text(name, value)
            except CodedError as exc:
                return translate(exc)
        return None

    def check_origin(self, origin: str) -> bool:
        allowed = self.config.allowed_origins
        if "*" in allowed or origin in allowed:
            return True
        return urlsplit(origin).netloc.lower() == self.request.headers.get("Host", "").lower()

    def open(self, *args: Any) -> None:
        task_ids = self.get_query_arguments("task_id") or None
        self.subscription = self.hub.subscribe(task_ids, stream=True)
        batched = self.get_query_argument("batch", None) is not None
        self.write_message(json.dumps({"type": "hello", "server_time": time.time(), "batch": batched}))
        self._sender = asyncio.ensure_future(self._send_loop(batched))

    async def _send_loop(self, batched: bool) -> None:
        """Send what the client has not seen, one write at a time, each once the previous one drained.

        `?batch=1` (the dashboard's mode) sends at most BATCH_INTERVAL-spaced frames of the form
        {"type": "batch", "messages": [...]}, so a burst costs a browser one frame, not thousands.
        """
        subscription = self.subscription
        assert subscription is not None
        try:
            while True:
                if batched:
                    await self.write_message(await subscription.next_frame(BATCH_INTERVAL))
                    continue
                for message in await subscription.next_batch():
                    # resolves once the socket took it: a slow reader waits here, costing nobody anything
                    await self.write_message(message)
        except (WebSocketClosedError, asyncio.CancelledError):
            pass
        except HubClosed:
            self.close(1001, "the server is stopping")
        except Exception:
            log.exception("event stream to a client failed")
            self.close()

    def on_message(self, message: str | bytes) -> None:
        """A client may say what it shows: {"type": "view", "task_ids": [...], "newest": 50,
        "after_id": "...", "status": null}; from then on it is sent only what that view needs."""
        view = parse_view(message)
        if view is not None and self.subscription is not None:
            # rows new to the view are replayed by the sender, under the same one-write-at-a-time rule
            self.subscription.show(view)

    def on_close(self) -> None:
        if self.subscription is not None:
            self.subscription.close()
        if self._sender is not None:
            self._sender.cancel()


def parse_view(message: str | bytes) -> View | None:
    """Read a view message; anything malformed is ignored (the stream then stays as it was)."""
    try:
        data = json.loads(message)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("type") != "view":
        return None
    ids = data.get("task_ids", [])
    newest = data.get("newest", 0)
    after_id = data.get("after_id") or ""
    status = data.get("status")
    if (not isinstance(ids, list) or len(ids) > 1000 or not all(isinstance(i, str) for i in ids)
            or not isinstance(newest, int) or not 0 <= newest <= 1000 or not isinstance(after_id, str)
            or (status is not None and status not in STATUSES)):
        return None
    return View(frozenset(ids), newest, after_id, status)
