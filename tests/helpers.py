"""Test helpers: a JSON API client and bounded waits with deadlines."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from jobqueue.models import FINISHED

API = "/jobqueue/api/v1.0"


class Api:
    """Calls the service over real HTTP and decodes its JSON answers."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.client = AsyncHTTPClient(force_instance=True)

    async def raw(self, method: str, path: str, body: bytes | str | None = None,
                  headers: dict[str, str] | None = None) -> Any:
        if body is None and method in ("POST", "PUT", "PATCH"):
            body = b""
        request = HTTPRequest(self.base_url + path, method=method, body=body, headers=headers,
                              allow_nonstandard_methods=True, request_timeout=30)
        return await self.client.fetch(request, raise_error=False)

    async def call(self, method: str, path: str, payload: Any = None, **kwargs: Any) -> tuple[int, Any]:
        body = json.dumps(payload) if payload is not None else kwargs.pop("body", None)
        headers = {"Content-Type": "application/json"} if payload is not None else kwargs.pop("headers", None)
        response = await self.raw(method, path, body, headers)
        assert response.headers.get("Content-Type", "").startswith("application/json"), response.body[:200]
        return response.code, json.loads(response.body)

    async def submit(self, url: str) -> dict[str, Any]:
        code, body = await self.call("POST", f"{API}/queue_tasks", {"url": url})
        assert code == 201, body
        return body["task"]

    async def submit_many(self, urls: list[str]) -> list[dict[str, Any]]:
        code, body = await self.call("POST", f"{API}/queue_tasks", {"urls": urls})
        assert code == 201, body
        return body["tasks"]

    async def task(self, task_id: str) -> dict[str, Any]:
        code, body = await self.call("GET", f"{API}/queue_tasks/{task_id}")
        assert code == 200, body
        return body["task"]

    async def wait_finished(self, task_id: str, timeout: float = 20.0) -> dict[str, Any]:
        """Poll one task until it is finished, failing the test at the deadline."""
        return await wait_for(lambda: self._finished_or_none(task_id), timeout, f"task {task_id} to finish")

    async def _finished_or_none(self, task_id: str) -> dict[str, Any] | None:
        task = await self.task(task_id)
        return task if task["status"] in FINISHED else None

    async def all_task_ids(self, limit: int = 1000) -> list[str]:
        """Walk every page of GET /queue_tasks, newest first."""
        ids: list[str] = []
        cursor = ""
        while True:
            code, page = await self.call("GET", f"{API}/queue_tasks?limit={limit}&cursor={cursor}")
            assert code == 200, page
            ids += [t["id"] for t in page["tasks"]]
            if page["next"] is None:
                return ids
            cursor = page["next"]

    async def counts(self) -> dict[str, int]:
        code, body = await self.call("GET", f"{API}/queue_tasks?limit=1")
        assert code == 200
        return body["counts"]

    def close(self) -> None:
        self.client.close()


async def wait_for(probe: Callable[[], Awaitable[Any]], timeout: float, what: str, interval: float = 0.02) -> Any:
    """Run `probe` until it returns something truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)


def drain_pty(leader: int) -> bytes:
    """Everything a child wrote to a pseudo-terminal (whose other end it held), then close it: the terminal's screen."""
    screen = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the child's end is closed and everything was read
            break
        if not chunk:
            break
        screen += chunk
    os.close(leader)
    return screen
