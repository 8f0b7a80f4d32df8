"""The fetch workers' curl client (jobqueue/curl_driver.py) and what the Fetcher keeps of a response:
raw header blocks as sent, caps on decoded bytes, reused handles that carry nothing over, the guard."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest
from tornado.httpclient import HTTPRequest
from tornado.ioloop import IOLoop

from jobqueue.addresses import AddressPolicy
from jobqueue.curl_driver import JobRequest, LeanCurlClient, Transfer
from jobqueue.errors import FetchError
from jobqueue.fetcher import RAW_HEADERS_MAX, Fetcher, FetchSettings
from jobqueue.spec import FetchOptions

FINAL = (b"HTTP/1.1 200 OK\r\n"
         b"X-odd-CaSe:  spaced value \r\n"
         b"Set-Cookie: a=1; Path=/\r\n"
         b"set-cookie: b=2\r\n"
         b"Content-Type: text/plain\r\n"
         b"Content-Length: 2\r\n"
         b"\r\n")
REPLIES = {
    b"/final": FINAL + b"ok",
    b"/hop": b"HTTP/1.1 302 Found\r\nLocation: /final\r\nX-Hop: 1\r\nContent-Length: 0\r\n\r\n",
    b"/continue": b"HTTP/1.1 100 Continue\r\nX-Interim: 1\r\n\r\n" + FINAL + b"ok",
    b"/huge-head": (b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-Pad-%d: %s\r\n" % (i, b"p" * 40) for i in range(2000))
                    + b"Content-Length: 2\r\n\r\nok"),
}


class RawSite:
    """A TCP listener on 127.0.0.1 answering each request line's path with exact bytes (keep-alive)."""

    def __init__(self) -> None:
        self.server: asyncio.Server | None = None
        self.port = 0
        self.writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> RawSite:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                path = head.split(b" ", 2)[1]
                writer.write(REPLIES.get(path, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.writers.discard(writer)
            writer.close()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in list(self.writers):
            writer.close()
        await self.server.wait_closed()


@pytest.fixture
def raw_site(io_loop: IOLoop) -> Iterator[RawSite]:
    site = io_loop.run_sync(lambda: RawSite().start())
    yield site
    io_loop.run_sync(site.stop)


def fetcher(allow_private: bool = True, clients: int = 4) -> Fetcher:
    return Fetcher(FetchSettings(max_clients=clients), AddressPolicy.build(allow_private))


@pytest.mark.gen_test
async def test_raw_headers_are_the_final_block_as_sent(raw_site):
    f = fetcher()
    try:
        direct = await f.fetch(raw_site.url("/final"))
        followed = await f.fetch(raw_site.url("/hop"))
        interim = await f.fetch(raw_site.url("/continue"))
        hop_by_hop = await f.fetch(raw_site.url("/hop"), FetchOptions(headers=(("X-Key", "k"),)))
    finally:
        f.close()
    for response in (direct, followed, interim, hop_by_hop):
        assert response.raw_headers == FINAL  # odd casing, spacing and both Set-Cookie lines kept
        assert response.body == b"ok"
        assert response.headers["set-cookie"] == "a=1; Path=/, b=2"
        assert response.headers["x-odd-case"] == "spaced value"
    assert followed.redirects == [{"url": raw_site.url("/hop"), "status": 302}]
    assert hop_by_hop.redirects == followed.redirects


@pytest.mark.gen_test
async def test_raw_headers_are_capped(raw_site):
    f = fetcher()
    try:
        response = await f.fetch(raw_site.url("/huge-head"))
    finally:
        f.close()
    assert len(response.raw_headers) == RAW_HEADERS_MAX
    assert REPLIES[b"/huge-head"].startswith(response.raw_headers)
    assert len(response.headers) == 2001 and response.body == b"ok"


@pytest.mark.gen_test
async def test_the_cap_counts_decoded_bytes(target):
    """/gzip is a few hundred bytes on the wire and about 20 KB decoded: curl's MAXFILESIZE sees the first."""
    f = fetcher()
    try:
        whole = await f.fetch(target.url("/gzip"))
        assert len(whole.body) > 10_000 and whole.raw_headers.lower().count(b"content-encoding: gzip") == 1
        with pytest.raises(FetchError) as caught:
            await f.fetch(target.url("/gzip"), FetchOptions(max_bytes=5000))
        assert caught.value.code == "too_large"
        with pytest.raises(FetchError) as caught:
            await f.fetch(target.url("/over-cap"), FetchOptions(max_bytes=5000))
        assert caught.value.code == "too_large"
    finally:
        f.close()


@pytest.mark.gen_test
async def test_a_reused_handle_carries_nothing_from_the_last_request(target):
    """One handle, never reset between requests: each sets its own method, body and headers."""
    f = fetcher(clients=1)
    try:
        posted = await f.fetch(target.url("/echo"), FetchOptions(method="POST", body="payload",
                                                                 headers=(("X-Only", "first"),)))
        head = await f.fetch(target.url("/echo"), FetchOptions(method="HEAD"))
        got = await f.fetch(target.url("/echo"))
        posted_again = await f.fetch(target.url("/echo"), FetchOptions(method="POST"))
    finally:
        f.close()
    first = json.loads(posted.body)
    assert first["method"] == "POST" and first["body"] == "payload" and first["headers"]["X-Only"] == "first"
    assert head.headers["x-method"] == "HEAD" and head.body == b""
    plain = json.loads(got.body)
    assert plain["method"] == "GET" and plain["body"] == "" and "X-Only" not in plain["headers"]
    assert "Expect" not in plain["headers"] and "Pragma" not in plain["headers"]
    assert json.loads(posted_again.body)["body"] == ""


@pytest.mark.gen_test
async def test_stock_requests_still_work_and_the_guard_comes_back_after_them(target):
    client = LeanCurlClient(force_instance=True, max_clients=1)
    refuse = Transfer(lambda ip: False, 1000)
    try:
        stock = await client.fetch(HTTPRequest(target.url("/utf8")))
        assert stock.code == 200 and b"caf" in stock.body and stock.headers["Content-Type"].startswith("text/html")
        request = JobRequest(target.url("/utf8"), "GET", None, [], "test", 5, 5, True, 5, refuse)
        with pytest.raises(Exception):  # noqa: B017 - any curl error: the point is that no socket was opened
            await client.fetch(request)
        assert refuse.blocked == "127.0.0.1" and refuse.chunks == []
        allowed = Transfer(lambda ip: True, 100_000)
        ok = await client.fetch(JobRequest(target.url("/utf8"), "GET", None, [], "test", 5, 5, True, 5, allowed))
        assert ok.code == 200 and b"caf" in allowed.take_body()
    finally:
        client.close()


@pytest.mark.gen_test
async def test_private_addresses_are_refused_on_every_fetch(target):
    f = fetcher(allow_private=False, clients=1)
    try:
        for _ in range(3):
            with pytest.raises(FetchError) as caught:
                await f.fetch(target.url("/utf8"))
            assert caught.value.code == "blocked"
    finally:
        f.close()
    assert target.state.hits["/utf8"] == 0
