"""Readers that ask for an export and never read lose it after the stall deadline, and their places are free
again: four such sockets used to make every later export a 429 for as long as they stayed open."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from handlers.export import MAX_EXPORTS, ExportHandler
from tests.helpers import API, wait_for
from tests.test_export import filled_server

JOBS, BODY = 1000, 20480  # about 27 MB of JSON Lines: far more than the socket buffers of a reader hold


def stalled_reader(port: int) -> socket.socket:
    """A real socket that asks for an export and never reads a byte of it (a small receive window)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(f"GET {API}/export?format=jsonl HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    sock.setblocking(False)
    return sock


async def read_to_end(sock: socket.socket) -> bytes:
    """What the server sent before it closed the connection."""
    loop = asyncio.get_running_loop()
    received = bytearray()
    while True:
        try:
            chunk = await loop.sock_recv(sock, 1 << 20)
        except ConnectionResetError:
            break
        if not chunk:
            break
        received += chunk
    return bytes(received)


async def _true(value: bool) -> bool:
    return value


@pytest.mark.gen_test(timeout=120)
async def test_stalled_readers_lose_their_exports_and_give_their_places_back(make_server, tmp_path, monkeypatch):
    monkeypatch.setattr(ExportHandler, "stall_seconds", 1.0)
    server, api = await filled_server(make_server, tmp_path, JOBS, BODY)
    stalled = [stalled_reader(server.port) for _ in range(MAX_EXPORTS)]
    try:
        await wait_for(lambda: _true(ExportHandler.running == MAX_EXPORTS), 20, "the stalled exports to start")

        async def whole_export() -> Any:
            response = await api.raw("GET", f"{API}/export?format=jsonl")
            return response if response.code != 429 else None

        response = await wait_for(whole_export, 30, "an export to be served while the stalled readers stay")
        assert response.code == 200 and len(response.body.splitlines()) == JOBS
        await wait_for(lambda: _true(ExportHandler.running == 0), 20, "every export place to be free")
        for sock in stalled:  # each got an export cut short: no terminating chunk, the connection closed
            cut = await asyncio.wait_for(read_to_end(sock), 30)
            assert cut.startswith(b"HTTP/1.1 200") and not cut.endswith(b"\r\n0\r\n\r\n")
            assert len(cut) < len(response.body)
    finally:
        for sock in stalled:
            sock.close()
        api.close()


@pytest.mark.gen_test(timeout=120)
async def test_a_slow_reader_that_keeps_reading_gets_the_whole_export(make_server, tmp_path, monkeypatch):
    """Progress, not speed: a reader taking the export in small sips, each within the deadline, is not cut."""
    monkeypatch.setattr(ExportHandler, "stall_seconds", 1.0)
    server, api = await filled_server(make_server, tmp_path, 200, BODY)
    sock = stalled_reader(server.port)
    loop = asyncio.get_running_loop()
    received = bytearray()
    try:
        while not received.endswith(b"\r\n0\r\n\r\n"):
            chunk = await asyncio.wait_for(loop.sock_recv(sock, 16384), 30)
            assert chunk, "the server closed the connection of a reader that kept reading"
            received += chunk
            await asyncio.sleep(0.005)  # the reader's own slowness, not a synchronisation
        assert received.startswith(b"HTTP/1.1 200") and received.count(b'"body_base64"') == 200
    finally:
        sock.close()
        api.close()
