"""Every webhook attempt ends in a recorded outcome, whatever went wrong, and an answer is judged by its
status line: a delivery is never left pending to be claimed again each time its lease runs out, and a
large 2xx answer is a delivery like any other."""

from __future__ import annotations

import socket
import sqlite3
import time
from typing import Any

import pytest
import tornado.iostream
import tornado.web
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from jobqueue.webhooks.sender import EXCERPT_CHARS
from jobqueue.webhooks.signing import WebhookSigner
from tests.helpers import API, Api, wait_for
from tests.test_webhooks import SECRET, deliveries, settled

FAST = "0.05,0.05,0.05"  # three retries: four attempts in all
BIG = 20 * 1024 * 1024


class _LargeAnswer(tornado.web.RequestHandler):
    """Answers `status` with 20 MB: at once with a Content-Length, or streamed in chunks without one; or
    with a short "ok" (`small`)."""

    def initialize(self, got: list[str]) -> None:
        self.got = got

    async def post(self, status: str, how: str) -> None:
        self.got.append(f"{status}/{how}")
        self.set_status(int(status))
        self.set_header("Content-Type", "text/plain")
        try:
            if how == "small":
                await self.finish("ok")
                return
            if how == "whole":
                self.write(b"ERROR  " + b"x" * (BIG - 7))
                await self.finish()
                return
            chunk = b"y" * 65536
            for _ in range(BIG // len(chunk)):
                self.write(chunk)
                await self.flush()
            await self.finish()
        except tornado.iostream.StreamClosedError:
            return  # the sender read what it keeps and hung up


class LargeReceiver:
    """A receiver on 127.0.0.1 whose every answer is 20 MB long."""

    def __init__(self) -> None:
        self.got: list[str] = []
        sockets = bind_sockets(0, "127.0.0.1", family=socket.AF_INET)
        self.port = sockets[0].getsockname()[1]
        self.server = HTTPServer(tornado.web.Application([(r"/(\d+)/(\w+)", _LargeAnswer, {"got": self.got})]))
        self.server.add_sockets(sockets)

    def url(self, status: int, how: str) -> str:
        return f"http://127.0.0.1:{self.port}/{status}/{how}"


@pytest.fixture
def large(io_loop):
    receiver = io_loop.run_sync(lambda: _async(LargeReceiver))
    yield receiver
    receiver.server.stop()


async def _async(factory):
    return factory()


async def start(make_server: Any, **overrides: Any) -> tuple[Any, Api]:
    server = await make_server(webhook_secret=SECRET, webhook_retry_delays=FAST, **overrides)
    return server, Api(f"http://127.0.0.1:{server.port}")


async def submit(api: Api, url: str, hook: str) -> str:
    code, body = await api.call("POST", f"{API}/queue_tasks", {"url": url, "webhook": hook})
    assert code == 201, body
    return body["task"]["id"]


async def delivery(api: Api, delivery_id: str) -> dict[str, Any]:
    code, body = await api.call("GET", f"{API}/webhook_deliveries/{delivery_id}")
    assert code == 200, body
    return body["delivery"]


async def ended(api: Api, delivery_id: str, timeout: float = 10.0) -> dict[str, Any]:
    """The delivery once it is no longer pending (well before any lease of 15 s could run out)."""
    async def probe() -> dict[str, Any] | None:
        found = await delivery(api, delivery_id)
        return found if found["status"] != "pending" else None
    return await wait_for(probe, timeout, f"delivery {delivery_id} to end")


@pytest.mark.gen_test(timeout=60)
async def test_a_stored_unencoded_webhook_url_fails_at_once_as_invalid_url(make_server, target, large, tmp_path):
    """A delivery an older release stored with a non-ASCII URL: one attempt, `invalid_url`, failed."""
    _server, api = await start(make_server)
    try:
        [sent] = await settled(api, await submit(api, target.url("/utf8"), large.url(202, "small")))
        with sqlite3.connect(tmp_path / "jobqueue.db") as conn:
            conn.execute(
                "INSERT INTO webhook_deliveries (id, event, url, endpoint, task_id, payload, status, created_at,"
                " updated_at, next_attempt_at) SELECT 'msg_unencoded', event, ?, endpoint, task_id, payload,"
                " 'pending', ?, ?, ? FROM webhook_deliveries WHERE id = ?",
                (f"http://127.0.0.1:{large.port}/202/Müller", time.time(), time.time(), time.time(), sent["id"]))
        failed = await ended(api, "msg_unencoded")
        assert failed["status"] == "failed" and failed["attempts"] == 1, failed
        assert failed["last_error"].startswith("invalid_url") and "Müller" in failed["last_error"], failed
    finally:
        api.close()


@pytest.mark.gen_test(timeout=60)
async def test_a_bug_in_an_attempt_is_recorded_and_retried_then_given_up(make_server, target, large, monkeypatch):
    def broken(self: WebhookSigner, *args: Any) -> dict[str, str]:
        raise RuntimeError("a bug while signing")

    monkeypatch.setattr(WebhookSigner, "headers", broken)
    _server, api = await start(make_server)
    try:
        task_id = await submit(api, target.url("/utf8"), large.url(202, "small"))
        [failed] = await settled(api, task_id, "failed")
        assert failed["attempts"] == 4, failed  # the retry policy: three delays, then given up
        assert failed["last_error"].startswith("internal_error") and "a bug while signing" in failed["last_error"]
        assert large.got == []
    finally:
        api.close()


@pytest.mark.gen_test(timeout=90)
async def test_a_2xx_answer_with_a_large_body_is_delivered_once(make_server, target, large):
    _server, api = await start(make_server)
    try:
        for how in ("whole", "chunked"):  # a Content-Length over the cap, and a body that only streams past it
            task_id = await submit(api, target.url("/utf8"), large.url(200, how))
            [done] = await settled(api, task_id)
            assert done["attempts"] == 1 and done["last_http_status"] == 200 and done["last_error"] is None, done
            assert large.got.count(f"200/{how}") == 1
    finally:
        api.close()


@pytest.mark.gen_test(timeout=90)
async def test_a_failing_answer_with_a_large_body_keeps_a_short_excerpt(make_server, target, large):
    _server, api = await start(make_server)
    try:
        task_id = await submit(api, target.url("/utf8"), large.url(500, "whole"))
        [failed] = await settled(api, task_id, "failed")
        assert failed["attempts"] == 4 and failed["last_http_status"] == 500, failed
        assert failed["last_error"].startswith("the receiver answered HTTP 500: ERROR xxx"), failed
        assert len(failed["last_error"]) <= len("the receiver answered HTTP 500: ") + EXCERPT_CHARS + 1
        assert (await deliveries(api, status="failed"))[0]["id"] == failed["id"]
    finally:
        api.close()
