"""The webhook measure: fetching with a slow receiver (1 s per request) against fetching without webhooks.

Every job sends `task.completed` to one receiver on 127.0.0.1 that takes a second to answer. Fetching
must not slow down (webhooks have their own connections and a per-endpoint limit), and once the
receiver speeds up every delivery must arrive: nothing lost.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import tempfile
import time
from typing import Any

import tornado.web
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from bench.harness import Client, Server

SECRET = "whsec_" + base64.b64encode(b"bench webhook key, 32 bytes long").decode()


class _Receiver(tornado.web.RequestHandler):
    def initialize(self, seen: dict[str, int], delay: list[float], everyone: tuple[int, asyncio.Event]) -> None:
        self.seen, self.delay, self.everyone = seen, delay, everyone

    async def post(self) -> None:
        task_id = json.loads(self.request.body)["data"]["task"]["id"]
        if self.delay[0]:
            await asyncio.sleep(self.delay[0])
        self.seen[task_id] = self.seen.get(task_id, 0) + 1
        if len(self.seen) >= self.everyone[0]:
            self.everyone[1].set()
        self.set_status(204)


async def measure_webhooks(submit_all: Any, wait_completed: Any, target: Any, n: int) -> dict[str, Any]:
    """Jobs/s with every job notifying a receiver that answers in 1 s; then every delivery is accounted for."""
    seen: dict[str, int] = {}
    delay = [1.0]
    everyone = (n, asyncio.Event())
    sockets = bind_sockets(0, "127.0.0.1", family=socket.AF_INET)
    receiver = HTTPServer(tornado.web.Application([(r"/hook", _Receiver, {"seen": seen, "delay": delay,
                                                                          "everyone": everyone})]))
    receiver.add_sockets(sockets)
    hook = f"http://127.0.0.1:{sockets[0].getsockname()[1]}/hook"
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(os.path.join(tmp, "bench.db"), "--webhook-secret", SECRET, "--webhook-url", hook,
                        "--webhook-retry-delays", "1").start()
        client = Client(server.base)
        try:
            started = time.perf_counter()
            ids = await submit_all(client, target, n)
            await wait_completed(client, n)
            elapsed = time.perf_counter() - started
            delivered_while_fetching = len(seen)
            delay[0] = 0.0  # the receiver recovers: everything pending must now arrive
            try:
                await asyncio.wait_for(everyone[1].wait(), 300)
            except TimeoutError:
                pass  # reported below as lost deliveries
            drained = time.perf_counter() - started - elapsed
        finally:
            client.close()
            server.stop()
            receiver.stop()
    missing = len(set(ids) - set(seen))
    return {"jobs": n, "seconds": round(elapsed, 2), "jobs_per_s": round(n / elapsed),
            "delivered_while_fetching": delivered_while_fetching, "drain_seconds_after": round(drained, 2),
            "lost_deliveries": missing, "sent_twice": sum(1 for c in seen.values() if c > 1)}
