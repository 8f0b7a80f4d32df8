"""Retention on MongoDB takes what expired jobs leave behind: their emptied batches, finished webhook
deliveries and relayed url.changed records (pending deliveries and records not relayed yet stay).

The store tests run on mongomock-motor (an in-memory mock of MongoDB, not a server) and on a real
MongoDB when JOBQUEUE_TEST_MONGODB_URL is set; the service test runs the real server on mongomock.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from jobqueue.history.retention import DAY, RetentionPolicy, apply_retention
from jobqueue.models import Result, TaskIds
from jobqueue.store.base import Lease, NewTask
from tests.helpers import API, Api, wait_for
from tests.store_backends import BACKENDS, FakeClock

IDS = TaskIds()
MONGODB = [p for p in BACKENDS if p.values[0] != "sqlite"]


def result(task_id: str, url: str) -> Result:
    return Result(id=task_id, url=url, final_url=url, http_status=200, headers={}, content_type="text/plain",
                  encoding="utf-8", encoding_source="header", size=4, truncated=False, elapsed_ms=1.0,
                  fetched_at=1.0, sha256="0" * 64, body=b"page")


async def finished_batch(store: Any, url: str) -> str:
    """A sealed batch of one job, completed."""
    batch_id = IDS.new()
    await store.create_batch(batch_id, 1, (), 60.0)
    [task] = await store.add([NewTask(IDS.new(), url, "example.com", batch_id=batch_id)])
    await store.seal_batch(batch_id, None)
    [claimed] = await store.claim(1, 30.0, [])
    assert claimed.id == task.id
    await store.complete(Lease(task.id, claimed.lease_token), result(task.id, url))
    return batch_id


def delivery(status: str, at: float) -> dict[str, Any]:
    return {"_id": f"msg_{IDS.new()}", "event": "task.completed", "url": "https://hooks.example/h",
            "endpoint": "https://hooks.example", "task_id": None, "batch_id": None, "payload": b"{}",
            "status": status, "attempts": 1, "created_at": at, "updated_at": at, "next_attempt_at": None,
            "lease_token": None, "last_http_status": None, "last_error": None, "delivered_at": None}


def url_change(seq: int, at: float, relayed: bool) -> dict[str, Any]:
    return {"_id": seq, "task_id": IDS.new(), "previous_id": IDS.new(), "schedule_id": IDS.new(), "created_at": at,
            **({} if relayed else {"unhooked": True})}


async def leave_behind(store: Any, at: float) -> None:
    await store.db.webhook_deliveries.insert_many([delivery(s, at) for s in ("delivered", "failed", "pending")])
    await store.db.url_changes.insert_many([url_change(1, at, True), url_change(2, at, False)])


async def ids(store: Any, name: str) -> list[Any]:
    return sorted(d["_id"] for d in await store.db[name].find({}, {"_id": 1}).to_list(None))


@pytest.mark.gen_test
@pytest.mark.parametrize("open_store", MONGODB, indirect=True)
async def test_retention_takes_emptied_batches_finished_deliveries_and_relayed_changes(open_store, clock):
    store = await open_store()
    emptied = await finished_batch(store, "https://example.com/a")
    spared = await finished_batch(store, "https://example.com/b")  # its job is the newest of its URL: kept
    await leave_behind(store, clock())
    clock.advance(2 * DAY)
    [newer] = await store.add([NewTask(IDS.new(), "https://example.com/a", "example.com")])  # /a's newest result
    [claimed] = await store.claim(1, 30.0, [])
    await store.complete(Lease(newer.id, claimed.lease_token), result(newer.id, "https://example.com/a"))
    await store.db.webhook_deliveries.insert_one(delivery("delivered", clock()))
    await store.db.url_changes.insert_one(url_change(3, clock(), True))
    await apply_retention(store, RetentionPolicy(days=1, keep_per_url=1), clock())
    assert await store.get_batch(emptied) is None and await store.get_batch(spared) is not None
    left = await store.db.webhook_deliveries.find({}, {"status": 1, "created_at": 1}).to_list(None)
    assert sorted((d["status"], d["created_at"] == clock()) for d in left) == [("delivered", True),
                                                                              ("pending", False)]
    assert await ids(store, "url_changes") == [2, 3]  # the one not relayed yet stays, whatever its age


@pytest.mark.gen_test(timeout=60)
async def test_the_service_on_mongodb_purges_them_in_its_housekeeping_round(tmp_path):
    from mongomock_motor import AsyncMongoMockClient

    from jobqueue.store.mongodb.store import MongoStore
    from server import JobQueueServer
    from tests.conftest import test_settings

    client = AsyncMongoMockClient()
    earlier = MongoStore("mongodb://mock/jobqueue_retention", clock=FakeClock(time.time() - 3 * DAY),
                         client_factory=lambda _url: client)
    await earlier.open()
    batch_id = await finished_batch(earlier, "https://example.com/old")
    await leave_behind(earlier, earlier.clock())
    await earlier.close()
    store = MongoStore("mongodb://mock/jobqueue_retention", client_factory=lambda _url: client)
    server = JobQueueServer(test_settings(tmp_path, retention_days=1.0), store=store)
    await server.start()
    api = Api(f"http://127.0.0.1:{server.port}")
    try:
        async def purged() -> bool:
            return (await ids(store, "url_changes") == [2]
                    and [d["status"] for d in await store.db.webhook_deliveries.find().to_list(None)] == ["pending"])

        await wait_for(purged, 20, "retention to delete finished deliveries and relayed url.changed records")
        code, body = await api.call("GET", f"{API}/batches/{batch_id}")
        assert code == 404, body
    finally:
        api.close()
        await server.stop()
