"""The guard proxy on its own, spoken to over raw sockets: what it forwards, what it refuses, and that a
refused address is never connected to."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from jobqueue.addresses import AddressPolicy
from jobqueue.render.proxy import GuardProxy, request_keys
from tests.render_site import AcceptCounter, LoopThread, Site


class ProxyRig:
    def __init__(self) -> None:
        self.loop = LoopThread()
        self.site = self.loop.run(Site().start())
        self.other = self.loop.run(AcceptCounter("127.0.0.2").start())
        self.proxy = GuardProxy(AddressPolicy.build(False, ["127.0.0.1/32"]), connect_timeout=2)
        self.loop.run(self.proxy.start())
        self.session = self.loop.run(self.proxy.open_session())

    def exchange(self, request: bytes, port: int | None = None) -> bytes:
        async def go() -> bytes:
            reader, writer = await asyncio.open_connection("127.0.0.1", port or self.session.port)
            writer.write(request)
            await writer.drain()
            data = await asyncio.wait_for(reader.read(), 10)
            writer.close()
            return data

        return self.loop.run(go())

    def close(self) -> None:
        self.loop.run(self.proxy.stop())
        self.loop.run(self.other.stop())
        self.loop.run(self.site.stop())
        self.loop.close()


@pytest.fixture
def rig() -> Iterator[ProxyRig]:
    rig = ProxyRig()
    yield rig
    rig.close()


def test_an_allowed_request_is_forwarded_once_then_the_connection_closes(rig: ProxyRig) -> None:
    url = rig.site.url("/echo")
    answer = rig.exchange(f"GET {url} HTTP/1.1\r\nHost: 127.0.0.1:{rig.site.port}\r\nProxy-Connection: keep-alive"
                          "\r\nX-Job: 7\r\n\r\n".encode())
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert b"\r\nConnection: close" in head
    assert b"x-job" in body and b"proxy-connection" not in body
    assert rig.session.blocked_requests == 0


def test_a_post_body_is_forwarded_exactly(rig: ProxyRig) -> None:
    url = rig.site.url("/echo")
    answer = rig.exchange(f"POST {url} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                          "3\r\nabc\r\n0\r\n\r\n".encode())
    assert answer.startswith(b"HTTP/1.1 405")  # the echo page takes GET only: the request arrived whole


def test_a_refused_address_gets_nothing(rig: ProxyRig) -> None:
    target = f"{rig.other.origin}/secret"
    forward = rig.exchange(f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    tunnel = rig.exchange(f"CONNECT 127.0.0.2:{rig.other.port} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    mapped = rig.exchange(f"CONNECT [::ffff:127.0.0.2]:{rig.other.port} HTTP/1.1\r\n\r\n".encode())
    for answer in (forward, tunnel, mapped):
        assert answer.startswith(b"HTTP/1.1 403"), answer
    assert rig.other.accepts == 0
    assert rig.session.blocked_requests == 3
    assert rig.session.refused(target) is not None
    assert rig.session.refused(f"https://127.0.0.2:{rig.other.port}/x") is not None
    assert rig.session.refused(rig.site.url("/")) is None


def test_the_default_port_refuses_everything(rig: ProxyRig) -> None:
    port = int(rig.proxy.default_server.rsplit(":", 1)[1])
    answer = rig.exchange(f"GET {rig.site.url('/js')} HTTP/1.1\r\n\r\n".encode(), port)
    assert answer.startswith(b"HTTP/1.1 403")
    assert rig.site.hits["/js"] == 0 and rig.proxy.stray_refusals == 1


def test_upstream_failures_are_filed_by_request(rig: ProxyRig) -> None:
    answer = rig.exchange(b"GET http://nonexistent.invalid/ HTTP/1.1\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 502")
    assert rig.session.failure("http://nonexistent.invalid/") == "dns_error"
    assert rig.session.blocked_requests == 0


def test_a_tunnel_to_an_allowed_address_relays_both_ways(rig: ProxyRig) -> None:
    answer = rig.exchange(f"CONNECT 127.0.0.1:{rig.site.port} HTTP/1.1\r\n\r\n"
                          f"GET /js HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    assert answer.startswith(b"HTTP/1.1 200 Connection established\r\n\r\nHTTP/1.1 200")
    assert b"made by javascript" in answer


def test_request_keys() -> None:
    assert request_keys("http://a.test/x?y#z") == ["http://a.test/x?y", "a.test:80"]
    assert request_keys("https://a.test/x") == ["a.test:443"]
    assert request_keys("ws://[::1]:81/") == ["[::1]:81"]
