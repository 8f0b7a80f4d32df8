"""Connections that cost the server without sending requests are bounded in time: a request head must be
complete HEAD_SECONDS after its first byte (else a JSON 408 and the connection closes), and a connection
waiting for a request is closed after IDLE_SECONDS. Both are shortened here; the defaults are 30 s and 60 s."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from handlers import http_server
from tests.helpers import API
from tests.test_http_edges import Connection, error_of, request, still_serves


@pytest.fixture
def short_head(monkeypatch):
    monkeypatch.setattr(http_server, "HEAD_SECONDS", 0.5)


@pytest.fixture
def short_idle(monkeypatch):
    monkeypatch.setattr(http_server, "IDLE_SECONDS", 0.5)


def test_the_defaults_are_a_minute_idle_and_half_a_minute_for_a_head():
    server = http_server.ApiHTTPServer(lambda request: None)
    assert server.conn_params.header_timeout == 60.0 and server.head_seconds == 30.0
    assert server.conn_params.max_header_size == 72 * 1024


@pytest.mark.gen_test(timeout=60)
async def test_a_head_not_finished_in_time_gets_a_json_408_and_the_connection_closes(make_server, short_head):
    server = await make_server()
    conn = await Connection.open(server.port)
    await conn.send("GET /healthz HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
    status, headers, body = await conn.answer()
    assert status == 408 and error_of(headers, body)["code"] == "request_timeout"
    assert headers["connection"] == "close" and await conn.closed()
    conn.close()


@pytest.mark.gen_test(timeout=60)
async def test_a_head_sent_a_byte_at_a_time_still_times_out(make_server, short_head):
    """Bytes that keep coming do not keep a head alive: its time runs from its first byte."""
    server = await make_server()
    conn = await Connection.open(server.port)

    async def trickle() -> None:
        await conn.send("GET /healthz HTTP/1.1\r\n")
        with contextlib.suppress(OSError):
            while True:
                await conn.send("X")
                await asyncio.sleep(0.05)

    sending = asyncio.ensure_future(trickle())
    try:
        status, headers, body = await conn.answer()
        assert status == 408 and error_of(headers, body)["code"] == "request_timeout"
    finally:
        sending.cancel()
        with contextlib.suppress(asyncio.CancelledError, OSError):
            await sending
    conn.close()


@pytest.mark.gen_test(timeout=60)
async def test_the_head_clock_stops_once_the_head_is_in(make_server, short_head):
    """A body sent slowly after a complete head is not cut off by the head's time, and the next request on the
    connection gets a fresh clock."""
    server = await make_server()
    conn = await Connection.open(server.port)
    body = b'{"url": "http://127.0.0.1:9/"}'
    await conn.send(request("POST", f"{API}/queue_tasks", "Content-Type: application/json", length=len(body)))
    for piece in (body[:10], body[10:20], body[20:]):
        await asyncio.sleep(0.4)  # 1.2 s in all, past the head's 0.5 s
        await conn.send("", piece)
    status, _headers, answer = await conn.answer()
    assert status == 201, answer
    for _ in range(3):
        await asyncio.sleep(0.3)
        await still_serves(conn)
    conn.close()


@pytest.mark.gen_test(timeout=60)
async def test_an_idle_connection_is_closed(make_server, short_idle):
    server = await make_server()
    silent = await Connection.open(server.port)  # never sends a byte
    served = await Connection.open(server.port)
    await still_serves(served)  # then waits
    assert await silent.closed() and await served.closed()
    silent.close()
    served.close()
