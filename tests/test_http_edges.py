"""Requests Tornado would drop or answer bare: each gets the API's JSON error, and the connection stays usable
where HTTP allows it (a too-large chunked body, a long query, big headers); HEAD on a result's body."""

from __future__ import annotations

import asyncio
import json

import pytest

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
    conn = await Connection.open(jq.port)
    await conn.send(request("GET", f"{API}/queue_tasks?url=" + "a" * 100_000))
    status, headers, body = await conn.answer()
    assert status == 414 and error_of(headers, body)["code"] == "uri_too_long"
    assert "65536" in error_of(headers, body)["message"]
    await still_serves(conn)
    await conn.send(request("GET", f"{API}/queue_tasks", "X-Padding: " + "p" * 70_000))
    status, headers, body = await conn.answer()
    assert status == 431 and error_of(headers, body)["code"] == "headers_too_large"
    await still_serves(conn)
    await conn.send(request("HEAD", f"{API}/queue_tasks?url=" + "a" * 100_000))
    status, headers, _ = await conn.answer(head_only=True)
    assert status == 414
    await still_serves(conn)  # the HEAD answer had no body, or this would read it as the next answer
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
