"""A store times its own database calls where they all pass, named by the Store operation each serves."""

from __future__ import annotations

import threading

import pytest

from jobqueue.models import Result, TaskIds
from jobqueue.store.base import Lease, NewTask
from jobqueue.store.sqlite.store import SQLiteStore
from tests.store_backends import FakeClock

IDS = TaskIds()


def sqlite_store(tmp_path, latency):
    return SQLiteStore(str(tmp_path / "latency.db"), synchronous="NORMAL", latency=latency)


def mongomock_store(tmp_path, latency):
    """MongoDB through mongomock-motor, an in-memory mock, not a server."""
    from mongomock_motor import AsyncMongoMockClient

    from jobqueue.store.mongodb.store import MongoStore

    client = AsyncMongoMockClient()
    return MongoStore("mongodb://mock/jobqueue_latency", clock=FakeClock(), client_factory=lambda _url: client,
                      latency=latency)


@pytest.mark.parametrize("make", [pytest.param(sqlite_store, id="sqlite-file"),
                                  pytest.param(mongomock_store, id="mongodb-mongomock-motor-mock")])
@pytest.mark.gen_test
async def test_each_database_call_is_reported_on_the_ioloop_under_its_operations_name(tmp_path, make):
    heard = []
    store = make(tmp_path, lambda operation, seconds: heard.append((operation, seconds, threading.get_ident())))
    await store.open()
    try:
        [task] = await store.add([NewTask(IDS.new(), "https://example.com/", "example.com")])
        [claimed] = await store.claim(1, 30.0, [])
        result = Result(id=task.id, url=task.url, final_url=task.url, http_status=200, headers={},
                        content_type=None, encoding=None, encoding_source=None, size=1, truncated=False,
                        elapsed_ms=1.0, fetched_at=1.0, sha256="0" * 64, body=b"x")
        await store.complete(Lease(task.id, claimed.lease_token), result)
        await store.get(task.id)
        await store.counts()
        store.clock()  # not a database call
    finally:
        await store.close()
    names = {operation for operation, _seconds, _thread in heard}
    assert {"add", "claim", "complete", "get", "counts"} <= names
    assert not {"clock", "write", "read", "call", "submit", "run"} & names
    assert all(seconds >= 0 and thread == threading.get_ident() for _operation, seconds, thread in heard)


@pytest.mark.gen_test
async def test_the_server_holds_the_store_itself_and_shows_its_calls_on_metrics(jq, api):
    """No timing wrapper in between: what the server calls is the store, its clock a clock."""
    assert type(jq.store) is SQLiteStore
    assert isinstance(jq.store.clock(), float)
    await jq.store.counts()
    text = (await api.raw("GET", "/metrics")).body.decode()
    assert 'jobqueue_store_operation_seconds_count{operation="counts"}' in text
