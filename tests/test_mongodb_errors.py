"""What users see when the database is missing or goes away."""

from __future__ import annotations

import asyncio
import os
import socket
import sys

import pytest

from tests.helpers import API

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.gen_test(timeout=30)
async def test_unreachable_mongodb_at_start_is_one_clear_sentence():
    url = f"mongodb://127.0.0.1:{closed_port()}/jobqueue?serverSelectionTimeoutMS=300"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, os.path.join(ROOT, "server.py"), "--port", "0", "--database", url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=ROOT)
    _out, err = await asyncio.wait_for(proc.communicate(), 20)
    text = err.decode()
    assert proc.returncode == 2
    assert "cannot reach MongoDB at 127.0.0.1" in text and "mongod is running" in text
    assert "Traceback" not in text


@pytest.mark.gen_test
async def test_healthz_is_503_when_the_database_does_not_answer(jq, api):
    got, payload = await api.call("GET", "/healthz")
    assert got == 200
    await jq.store.close()  # the database goes away under the running server
    got, payload = await api.call("GET", "/healthz")
    assert got == 503 and payload["status"] == "unavailable" and payload["database"] == "sqlite"
    got, payload = await api.call("GET", f"{API}/queue_tasks")
    assert got == 503 and payload["error"]["code"] == "database_unavailable"
    got, payload = await api.call("POST", f"{API}/queue_tasks", {"url": "https://example.com/"})
    assert got == 503 and "try again" in payload["error"]["message"]


@pytest.mark.gen_test(timeout=30)
async def test_whole_service_on_mongodb_through_mongomock_motor(tmp_path, target):
    """The service end to end on the MongoDB backend, with mongomock-motor standing in for a server."""
    from mongomock_motor import AsyncMongoMockClient

    from jobqueue.store.mongodb import MongoStore
    from server import JobQueueServer
    from tests.conftest import test_settings
    from tests.helpers import Api
    from tests.target import FIVE_MIB, UTF8_TEXT

    client = AsyncMongoMockClient()
    store = MongoStore("mongodb://mock/jobqueue", client_factory=lambda _url: client)
    server = JobQueueServer(test_settings(tmp_path), store=store)
    await server.start()
    api = Api(f"http://127.0.0.1:{server.port}")
    try:
        tasks = await api.submit_many([target.url("/utf8"), target.url("/big"), target.url("/status/404")])
        finals = [await api.wait_finished(t["id"]) for t in tasks]
        assert [t["status"] for t in finals] == ["completed"] * 3
        assert [t["http_status"] for t in finals] == [200, 200, 404]
        got, payload = await api.call("GET", f"{API}/results/{tasks[0]['id']}")
        assert got == 200 and UTF8_TEXT in payload["result"]["body"]
        raw = await api.raw("GET", f"{API}/results/{tasks[1]['id']}/body")
        assert raw.body == FIVE_MIB
        got, payload = await api.call("GET", "/healthz")
        assert payload == {"status": "ok", "database": "mongodb"}
        got, payload = await api.call("GET", f"{API}/results")
        assert {r["id"] for r in payload["results"]} == {t["id"] for t in tasks}
    finally:
        api.close()
        await server.stop()
