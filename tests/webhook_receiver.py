"""A webhook receiver on 127.0.0.1 for the tests: scripted answers per path, every request recorded."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from dataclasses import dataclass, field
from typing import Any

import tornado.web
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

HANG = -1  # an answer that never comes (until the receiver stops)


@dataclass
class Received:
    """One request as the receiver saw it."""

    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class ReceiverState:
    script: dict[str, list[int]] = field(default_factory=dict)  # path -> statuses to answer, in turn
    delay: float = 0.0  # seconds before every answer
    received: list[Received] = field(default_factory=list)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)


class _Hook(tornado.web.RequestHandler):
    def initialize(self, state: ReceiverState) -> None:
        self.state = state

    async def post(self, name: str) -> None:
        state = self.state
        state.received.append(Received(name, {k.lower(): v for k, v in self.request.headers.get_all()},
                                       self.request.body, time.monotonic()))
        queue = state.script.get(name)
        status = queue.pop(0) if queue else 200
        if status == HANG:
            await state.stopping.wait()
            return
        if state.delay:
            await asyncio.sleep(state.delay)  # the receiver's own slowness, not test synchronisation
        self.set_status(status)
        self.finish("ok")


class Receiver:
    """Start with `Receiver()` inside a running IOLoop; `url(name)` is an endpoint; `stop()` closes it."""

    def __init__(self) -> None:
        self.state = ReceiverState()
        sockets = bind_sockets(0, "127.0.0.1", family=socket.AF_INET)
        self.port = sockets[0].getsockname()[1]
        self.server = HTTPServer(tornado.web.Application([(r"/hook/(\w+)", _Hook, {"state": self.state})]))
        self.server.add_sockets(sockets)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/hook/{name}"

    def answer(self, name: str, *statuses: int) -> None:
        """Script the next answers of one endpoint (then 200s)."""
        self.state.script[name] = list(statuses)

    def got(self, name: str) -> list[Received]:
        return [r for r in self.state.received if r.path == name]

    def stop(self) -> None:
        self.state.stopping.set()
        self.server.stop()
