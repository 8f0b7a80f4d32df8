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

    from jobqueue.store.mongodb.store import MongoStore
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
        assert payload.pop("rendering")["available"] in (True, False)
        assert payload == {"status": "ok", "database": "mongodb"}
        got, payload = await api.call("GET", f"{API}/results")
        assert {r["id"] for r in payload["results"]} == {t["id"] for t in tasks}
    finally:
        api.close()
        await server.stop()


@pytest.mark.gen_test(timeout=30)
async def test_two_processes_on_mongodb_without_change_streams_fall_back_to_polling(tmp_path, target):
    """Two servers on one mongomock-motor database (a mock with no change streams): B's work reaches A's stream."""
    import json

    from mongomock_motor import AsyncMongoMockClient
    from tornado.websocket import websocket_connect

    from jobqueue.store.mongodb.store import MongoStore
    from server import JobQueueServer
    from tests.conftest import test_settings
    from tests.helpers import Api

    client = AsyncMongoMockClient()
    servers = []
    for _ in range(2):
        store = MongoStore("mongodb://mock/shared", client_factory=lambda _url: client)
        server = JobQueueServer(test_settings(tmp_path), store=store)
        await server.start()
        servers.append(server)
    a, b = servers
    api_a, api_b = Api(f"http://127.0.0.1:{a.port}"), Api(f"http://127.0.0.1:{b.port}")
    stream = await websocket_connect(f"ws://127.0.0.1:{a.port}{API}/events")
    try:
        assert json.loads(await stream.read_message())["type"] == "hello"
        submitted = await api_b.submit_many([target.url(f"/page/{i}") for i in range(20)])
        wanted = {t["id"] for t in submitted}
        while wanted:
            event = json.loads(await asyncio.wait_for(stream.read_message(), 15))
            if event["type"] == "task" and event["task"]["status"] == "completed":
                wanted.discard(event["task"]["id"])
        assert sorted(await api_a.all_task_ids()) == sorted(t["id"] for t in submitted)
        await a.store.close()
        got, payload = await api_a.call("GET", "/healthz")
        assert got == 503 and payload["database"] == "mongodb"
    finally:
        stream.close()
        api_a.close()
        api_b.close()
        for server in servers:
            await server.stop()


@pytest.mark.gen_test(timeout=30)
async def test_workers_back_off_while_the_database_fails_and_resume(make_server, target):
    """Claims that fail (database gone) are retried with backoff; work resumes when it answers."""
    from jobqueue.store.base import StoreError
    from tests.helpers import Api

    server = await make_server()
    store = server.store
    real_claim = store.claim
    failures = {"left": 2}

    async def flaky_claim(*args, **kwargs):
        if failures["left"] > 0:
            failures["left"] -= 1
            raise StoreError("database is down (simulated)")
        return await real_claim(*args, **kwargs)

    store.claim = flaky_claim
    api = Api(f"http://127.0.0.1:{server.port}")
    task = await api.submit(target.url("/utf8"))
    done = await api.wait_finished(task["id"], timeout=20)
    assert done["status"] == "completed" and failures["left"] == 0
    api.close()


@pytest.mark.gen_test(timeout=30)
async def test_an_absurd_status_line_fails_once_on_mongodb_leaving_no_body(tmp_path, target):
    """`HTTP/1.1 99999999999999999999999 OK` is a protocol_error, not an integer BSON cannot hold (issue #15)."""
    from mongomock_motor import AsyncMongoMockClient

    from jobqueue.store.mongodb.store import MongoStore
    from server import JobQueueServer
    from tests.conftest import test_settings
    from tests.helpers import Api

    client = AsyncMongoMockClient()
    store = MongoStore("mongodb://mock/jobqueue", client_factory=lambda _url: client)
    server = JobQueueServer(test_settings(tmp_path, max_attempts=1), store=store)
    await server.start()
    api = Api(f"http://127.0.0.1:{server.port}")
    try:
        task = await api.submit(target.url("/raw/status-huge"))
        done = await api.wait_finished(task["id"])
        assert done["status"] == "failed" and done["error"]["code"] == "protocol_error" and done["attempts"] == 1
        assert await store.db.bodies.count_documents({}) == 0
        got, payload = await api.call("GET", "/healthz")
        assert got == 200 and payload["status"] == "ok"
    finally:
        api.close()
        await server.stop()
