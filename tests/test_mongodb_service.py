"""The service on the MongoDB store when a reply is lost, a step after a finish fails, another process writes the
same body meanwhile, or the store is gone: what clients and the log are told.

The real server (HTTP, workers, housekeeping) runs on mongomock-motor, an in-memory mock of MongoDB, not
a server; tests/mongo_faults.py makes the failures happen at exact points.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import pytest
from pymongo.errors import AutoReconnect

from jobqueue.models import Result, TaskIds
from jobqueue.spec import JobSpec
from jobqueue.store.base import Lease, NewTask, StoreError
from jobqueue.store.mongodb.bodies import PART_SIZE
from jobqueue.store.mongodb.schema import new_job_doc
from tests.helpers import API, Api, wait_for
from tests.mongo_faults import Faults

IDS = TaskIds()
BIG = os.urandom(PART_SIZE + 4096)  # incompressible: stored in two parts


@pytest.fixture
def mongo_server(io_loop, tmp_path):
    """Start the service on a fresh mongomock database; yields (server, the MongoStore, an API client)."""
    from mongomock_motor import AsyncMongoMockClient

    from jobqueue.store.mongodb.store import MongoStore
    from server import JobQueueServer
    from tests.conftest import test_settings

    started: list[Any] = []

    async def start(**overrides: Any) -> tuple[Any, Any, Api]:
        client = AsyncMongoMockClient()
        store = MongoStore("mongodb://mock/jobqueue_service", client_factory=lambda _url: client)
        server = JobQueueServer(test_settings(tmp_path, **overrides), store=store)
        await server.start()
        api = Api(f"http://127.0.0.1:{server.port}")
        started.append((server, api))
        return server, store, api

    yield start
    for server, api in started:
        api.close()
        io_loop.run_sync(server.stop)


def told(caplog: Any, task_id: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if task_id in r.getMessage()]


@pytest.mark.gen_test(timeout=60)
async def test_a_completion_whose_reply_and_check_were_lost_is_counted_and_continues_its_schedule(
        mongo_server, target, caplog):
    _server, store, api = await mongo_server()
    faults = Faults(store)
    lost = {"reply": 1, "check": 1}

    async def reply_lost(real, query, update, *args, **kwargs):
        done = await real(query, update, *args, **kwargs)
        if lost["reply"] and update.get("$set", {}).get("status") == "completed":
            lost["reply"] -= 1
            raise AutoReconnect("connection closed after the completion was applied (simulated)")
        return done

    async def check_lost(real, query, *args, **kwargs):
        if lost["check"] and "result.body_ref" in query:
            lost["check"] -= 1
            raise AutoReconnect("connection closed before the check read (simulated)")
        return await real(query, *args, **kwargs)

    faults.on("jobs", "find_one_and_update", reply_lost)
    faults.on("jobs", "find_one", check_lost)
    caplog.set_level(logging.INFO, logger="jobqueue")
    task = (await api.call("POST", f"{API}/queue_tasks", {"url": target.url("/utf8"), "every": 60}))[1]["task"]
    assert (await api.wait_finished(task["id"]))["status"] == "completed"
    assert lost == {"reply": 0, "check": 0}

    async def next_run_queued() -> bool:
        return (await api.counts())["queued"] == 1

    await wait_for(next_run_queued, 10, "the schedule's next run")  # was never: reported as a lost lease
    assert (await api.counts()) == {"queued": 1, "running": 0, "completed": 1, "failed": 0, "cancelled": 0}
    assert not [m for m in told(caplog, task["id"]) if "lease lost" in m]


@pytest.mark.gen_test(timeout=60)
async def test_a_failure_after_a_recorded_completion_is_not_logged_as_it_will_run_again(mongo_server, target, caplog):
    _server, store, api = await mongo_server()

    async def schedule_unreachable(*_args: Any, **_kwargs: Any) -> None:
        raise StoreError("MongoDB at mock failed: connection closed (simulated); try again shortly")

    store._finish_run = schedule_unreachable
    caplog.set_level(logging.INFO, logger="jobqueue")
    task = (await api.call("POST", f"{API}/queue_tasks", {"url": target.url("/utf8"), "every": 60}))[1]["task"]
    assert (await api.wait_finished(task["id"]))["status"] == "completed"

    async def reported() -> list[str]:
        return [m for m in told(caplog, task["id"]) if "outcome is recorded" in m or "run again" in m]

    [said] = await wait_for(reported, 10, "the worker's report of the completion")
    assert "run again" not in said and "the maintenance round queues it" in said  # was "it will run again"


@pytest.mark.gen_test(timeout=60)
async def test_retrying_a_job_keeps_the_body_another_process_stored_again_meanwhile(mongo_server):
    _server, store, api = await mongo_server()
    first, second = await running_outside(store), await running_outside(store)
    assert (await store.complete(first, page(first.task_id))).status == "completed"
    faults = Faults(store)
    copied: list[bool] = []

    async def copy_meanwhile(real, query, *args, **kwargs):
        gone = await real(query, *args, **kwargs)
        if "rev" in query and not copied:  # the head's deletion: another process completes the same body now
            copied.append(True)
            assert (await store.complete(second, page(second.task_id))).status == "completed"
        return gone

    faults.on("bodies", "find_one_and_delete", copy_meanwhile)
    faults.on("bodies", "delete_one", copy_meanwhile)
    code, body = await api.call("POST", f"{API}/queue_tasks/{first.task_id}/retry")
    assert code == 200, body
    response = await api.raw("GET", f"{API}/results/{second.task_id}/body")
    assert copied and response.code == 200 and response.body == BIG, response.body[:300]  # was 409 no_result


@pytest.mark.gen_test(timeout=60)
async def test_database_unavailable_on_mongodb_says_when_to_try_again(mongo_server):
    _server, store, api = await mongo_server()
    await store.close()  # the database goes away under the running server
    response = await api.raw("GET", f"{API}/queue_tasks")
    assert response.code == 503 and b"database_unavailable" in response.body
    assert response.headers.get("Retry-After") == "5"  # was absent: SQLite's lock waits said, MongoDB's not
    response = await api.raw("GET", "/healthz")
    assert response.code == 503 and response.headers.get("Retry-After") == "5"


@pytest.mark.gen_test(timeout=60)
async def test_a_transient_mongodb_failure_says_when_to_try_again(mongo_server):
    _server, store, api = await mongo_server()

    async def unreachable(*_args: Any, **_kwargs: Any) -> None:
        raise AutoReconnect("connection refused (simulated)")

    Faults(store).on("counters", "find_one", unreachable)
    response = await api.raw("GET", f"{API}/queue_tasks")
    assert response.code == 503 and b"database_unavailable" in response.body
    assert response.headers.get("Retry-After") == "5"


async def running_outside(store: Any) -> Lease:
    """A job running under a lease this test holds: inserted as another process's claim would leave it."""
    doc = new_job_doc(NewTask(IDS.new(), "https://example.com/big", "example.com", JobSpec()), store.clock())
    token = IDS.new()
    doc.update(status="running", lease_token=token, available_at=store.clock() + 3600)
    await store.db.jobs.insert_one(doc)
    return Lease(doc["_id"], token)


def page(task_id: str) -> Result:
    return Result(id=task_id, url="https://example.com/big", final_url="https://example.com/big", http_status=200,
                  headers={}, content_type="application/octet-stream", encoding=None, encoding_source=None,
                  size=len(BIG), truncated=False, elapsed_ms=1.0, fetched_at=1.0, sha256="0" * 64, body=BIG)
