"""A site on 127.0.0.1 that counts how many requests it is serving at once, for the tests of limits that must
hold across processes (--per-host, --webhook-concurrency), and that can hold requests at a gate until the test
opens it, so an order of events needs no timing.

- `GET /slow/<key>?delay=S` and `POST /hook/<key>?delay=S`: answer 200 after S seconds (the site's own
  slowness, not test synchronisation), counted while in flight.
- `GET /gate/<name>`: answers once the test calls `open(name)`.
Every request's path is appended to `order` when it arrives.
"""

from __future__ import annotations

import asyncio
import socket
from collections import defaultdict

import tornado.web
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets


class OverlapState:
    """What the site saw: arrival order, and the most requests it served at once."""

    def __init__(self) -> None:
        self.order: list[str] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.answered = 0
        self.gates: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)


class _Counted(tornado.web.RequestHandler):
    def initialize(self, state: OverlapState) -> None:
        self.state = state

    async def _serve(self) -> None:
        state = self.state
        state.order.append(self.request.path)
        state.in_flight += 1
        state.most_in_flight = max(state.most_in_flight, state.in_flight)
        try:
            await asyncio.sleep(float(self.get_query_argument("delay", "0.2")))
        finally:
            state.in_flight -= 1
        state.answered += 1
        self.finish("ok")

    async def get(self, _key: str) -> None:
        await self._serve()

    async def post(self, _key: str) -> None:
        await self._serve()


class _Gate(tornado.web.RequestHandler):
    def initialize(self, state: OverlapState) -> None:
        self.state = state

    async def get(self, name: str) -> None:
        self.state.order.append(self.request.path)
        await self.state.gates[name].wait()
        self.finish("through")


class OverlapSite:
    """Start inside a running IOLoop; `url(path)`; `stop()`."""

    def __init__(self) -> None:
        self.state = OverlapState()
        sockets = bind_sockets(0, "127.0.0.1", family=socket.AF_INET)
        self.port = sockets[0].getsockname()[1]
        routes = [(r"/slow/(\w+)", _Counted), (r"/hook/(\w+)", _Counted), (r"/gate/(\w+)", _Gate)]
        self.server = HTTPServer(tornado.web.Application([(p, h, {"state": self.state}) for p, h in routes]))
        self.server.add_sockets(sockets)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def open(self, gate: str) -> None:
        """Let the requests waiting at this gate (and later ones) through."""
        self.state.gates[gate].set()

    def stop(self) -> None:
        for gate in self.state.gates.values():
            gate.set()
        self.server.stop()
