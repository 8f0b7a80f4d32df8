"""Requests Tornado would drop or answer bare: each gets the API's JSON error, and the connection stays usable
where HTTP allows it (a too-large chunked body, a long query, big headers); HEAD on a result's body."""

from __future__ import annotations

import asyncio
import json

import pytest

from handlers.http_server import READ_HEADER_BYTES
from tests.helpers import API


class Connection:
    """One keep-alive HTTP/1.1 connection on a raw socket, so a test sees exactly what the server sends."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=4 * 1024 * 1024)
        return cls(reader, writer)

    async def send(self, head: str, body: bytes = b"") -> None:
        self.writer.write(head.encode("latin-1") + body)
        await self.writer.drain()

    async def answer(self, head_only: bool = False) -> tuple[int, dict[str, str], bytes]:
        """The next response: status, headers (lower-case names) and body (none for a HEAD request)."""
        raw = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 20)
        status_line, *lines = raw.decode("latin-1").split("\r\n")[:-2]
        headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
        length = 0 if head_only else int(headers.get("content-length", "0"))
        body = await asyncio.wait_for(self.reader.readexactly(length), 20)
        return int(status_line.split()[1]), headers, body

    async def closed(self) -> bool:
        """True when the server closed the connection (nothing more to read)."""
        return await asyncio.wait_for(self.reader.read(1), 20) == b""

    def close(self) -> None:
        self.writer.close()


def error_of(headers: dict[str, str], body: bytes) -> dict[str, str]:
    assert headers["content-type"].startswith("application/json"), headers
    return json.loads(body)["error"]


def request(method: str, path: str, *headers: str, length: int | None = None) -> str:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *headers]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    return "\r\n".join(lines) + "\r\n\r\n"


async def still_serves(conn: Connection) -> None:
    await conn.send(request("GET", "/healthz"))
    status, _headers, body = await conn.answer()
    assert status == 200 and json.loads(body)["status"] == "ok"


@pytest.mark.gen_test(timeout=60)
async def test_a_chunked_body_over_the_limit_gets_a_json_413_and_the_connection_lives_on(make_server):
    server = await make_server(max_request_size=64 * 1024)
    conn = await Connection.open(server.port)
    chunk = b"x" * 16384
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(12)) + b"0\r\n\r\n"  # 192 KiB
    await conn.send(request("POST", f"{API}/queue_tasks", "Content-Type: application/json",
                            "Transfer-Encoding: chunked"), body)
    status, headers, answer = await conn.answer()
    assert status == 413 and error_of(headers, answer)["code"] == "request_too_large"
    assert "65536" in error_of(headers, answer)["message"]
    await still_serves(conn)
    assert sum((await server.store.counts()).values()) == 0
    conn.close()


@pytest.mark.gen_test(timeout=60)
async def test_a_request_target_or_headers_over_64_kib_get_json_414_and_431(jq):
    """A head a little over a limit (within the 72 KiB read) is answered on a connection that stays usable."""
    conn = await Connection.open(jq.port)
    await conn.send(request("GET", f"{API}/queue_tasks?url=" + "a" * 66_000))
    status, headers, body = await conn.answer()
    assert status == 414 and error_of(headers, body)["code"] == "uri_too_long"
    assert "65536" in error_of(headers, body)["message"]
    await still_serves(conn)
    await conn.send(request("GET", f"{API}/queue_tasks", "X-Padding: " + "p" * 66_000))
    status, headers, body = await conn.answer()
    assert status == 431 and error_of(headers, body)["code"] == "headers_too_large"
    await still_serves(conn)
    await conn.send(request("HEAD", f"{API}/queue_tasks?url=" + "a" * 66_000))
    status, headers, _ = await conn.answer(head_only=True)
    assert status == 414
    await still_serves(conn)  # the HEAD answer had no body, or this would read it as the next answer
    conn.close()


@pytest.mark.gen_test(timeout=60)
async def test_a_request_head_over_the_read_limit_is_answered_and_its_connection_closed(jq):
    """Past READ_HEADER_BYTES the server reads no further: a JSON 414 or 431, then the connection closes."""
    cases = (("GET", f"{API}/queue_tasks?url=" + "a" * 200_000, (), 414, "uri_too_long"),
             ("GET", f"{API}/queue_tasks", ("X-Padding: " + "p" * 200_000,), 431, "headers_too_large"),
             ("GET", f"{API}/queue_tasks", tuple(f"X-Pad-{i}: " + "p" * 1000 for i in range(200)), 431,
              "headers_too_large"),
             ("POST", f"{API}/queue_tasks?" + "b" * 60_000, ("X-Padding: " + "p" * 15_000,), 431,
              "headers_too_large"))
    for method, path, extra, code, name in cases:
        conn = await Connection.open(jq.port)
        await conn.send(request(method, path, *extra))
        status, headers, body = await conn.answer()
        assert (status, error_of(headers, body)["code"]) == (code, name), body
        assert headers["connection"] == "close" and await conn.closed()
        conn.close()
    conn = await Connection.open(jq.port)
    await conn.send(request("HEAD", f"{API}/queue_tasks?url=" + "a" * 200_000))
    status, headers, _ = await conn.answer(head_only=True)
    assert status == 414 and headers["content-type"].startswith("application/json")
    assert await conn.closed()  # and nothing after the head: a HEAD answer has no body
    conn.close()
    conn = await Connection.open(jq.port)
    await still_serves(conn)
    conn.close()


@pytest.mark.gen_test(timeout=60)
async def test_an_unfinished_head_is_answered_once_the_read_limit_is_reached(jq):
    """A head that never ends is not read on (the server held up to 1 MiB of it per connection): once past the
    read limit, the 431 comes though the client is still sending and never ends its head."""
    conn = await Connection.open(jq.port)
    await conn.send("GET /healthz HTTP/1.1\r\nHost: x\r\n")
    line = "X-Pad: " + "a" * 990 + "\r\n"
    for _ in range(200):  # 200 KB, well under the 1 MiB the server read before, but over 72 KiB
        await conn.send(line)
    status, headers, body = await conn.answer()
    assert status == 431 and error_of(headers, body)["code"] == "headers_too_large"
    assert str(READ_HEADER_BYTES) in error_of(headers, body)["message"]
    assert await conn.closed()
    conn.close()


@pytest.mark.gen_test(timeout=60)
async def test_a_request_tornado_cannot_parse_gets_the_json_error_shape(jq):
    for bad_header in ("Content-Type: \x01;;;==", "X-Ctl: a\x7fb", "Bad Header Name: x"):
        conn = await Connection.open(jq.port)
        await conn.send(request("POST", f"{API}/queue_tasks", bad_header, length=5), b"url=x")
        status, headers, body = await conn.answer()
        assert status == 400 and error_of(headers, body)["code"] == "malformed_request", bad_header
        assert headers["connection"] == "close" and await conn.closed()
        conn.close()
    conn = await Connection.open(jq.port)
    await still_serves(conn)
    conn.close()


@pytest.mark.gen_test(timeout=60)
async def test_head_of_a_result_body_sends_get_s_headers_without_the_body(jq, api, target):
    task = await api.wait_finished((await api.submit(target.url("/utf8")))["id"])
    assert task["status"] == "completed"
    conn = await Connection.open(jq.port)
    path = f"{API}/results/{task['id']}/body?download=1"
    await conn.send(request("GET", path))
    get_status, get_headers, body = await conn.answer()
    await conn.send(request("HEAD", path))
    head_status, head_headers, _ = await conn.answer(head_only=True)
    assert get_status == head_status == 200 and body
    for name in ("content-type", "content-length", "content-security-policy", "content-disposition", "etag",
                 "x-content-type-options"):
        assert head_headers[name] == get_headers[name], name
    for missing, code in ((f"{API}/results/nope/body", 404), (f"{API}/results/nope/body?colour=red", 400)):
        await conn.send(request("HEAD", missing))
        status, headers, _ = await conn.answer(head_only=True)
        assert status == code and headers["content-type"].startswith("application/json")
    await still_serves(conn)  # no HEAD answer carried a body
    conn.close()


@pytest.mark.gen_test(timeout=60)
async def test_a_body_for_a_handler_that_reads_none_is_refused_before_it_is_read(jq):
    """The dashboard, static files and the websocket keep a body whole (before any token check): over 64 KiB,
    a 413 comes at once, without waiting for the body, and the connection closes."""
    for path in ("/", "/static/app.js", f"{API}/events"):
        conn = await Connection.open(jq.port)
        await conn.send(request("POST", path, length=50_000_000))  # and no body: the answer does not wait for it
        status, headers, body = await conn.answer()
        assert status == 413 and error_of(headers, body)["code"] == "request_too_large", (path, body)
        assert headers["connection"] == "close" and await conn.closed()
        conn.close()
    conn = await Connection.open(jq.port)
    await conn.send(request("PUT", "/", "Transfer-Encoding: chunked"), b"10000\r\n" + b"x" * 0x10000 + b"\r\n"
                    + b"10\r\n" + b"x" * 16 + b"\r\n")  # 64 KiB and 16 bytes, and no end
    status, headers, body = await conn.answer()
    assert status == 413 and error_of(headers, body)["code"] == "request_too_large"
    assert await conn.closed()
    conn.close()
    conn = await Connection.open(jq.port)
    await conn.send(request("GET", "/", length=5), b"hello")  # a small one is read, and ignored, as before
    status, headers, body = await conn.answer()
    assert status == 200 and headers["content-type"].startswith("text/html")
    await still_serves(conn)
    conn.close()
