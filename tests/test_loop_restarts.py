"""A background loop that meets a bug raises to the supervisor, which restarts it, counts it on /metrics, and the
service goes on: a real server, a real SQLite store with one method made to raise once, a real target."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from typing import Any

import pytest
from tornado.websocket import websocket_connect

from jobqueue.models import TaskIds
from jobqueue.spec import JobSpec
from jobqueue.store import store_from_url
from jobqueue.store.base import NewTask, StoreError
from jobqueue.supervisor import Supervisor
from server import JobQueueServer
from tests import conftest
from tests.helpers import API, Api, wait_for
from tests.target import Target

SECRET = "whsec_" + base64.b64encode(b"a test key of thirty-two bytes!!").decode()


class RaisesOnce:
    """Makes one method of a real store raise once when armed, as a bug would (or, given a StoreError, as the
    database briefly unavailable would); every other call is the store's."""

    def __init__(self, store: Any, method: str, error: Exception | None = None) -> None:
        self.raised = 0
        self.armed = True
        real = getattr(store, method)

        async def once(*args: Any, **kwargs: Any) -> Any:
            if self.armed:
                self.armed = False
                self.raised += 1
                raise error or RuntimeError(f"an injected bug in {method}")
            return await real(*args, **kwargs)

        setattr(store, method, once)  # on the instance: the server calls the store's method by name


async def metrics_text(api: Api) -> str:
    response = await api.raw("GET", "/metrics")
    assert response.code == 200
    return response.body.decode()


# (the supervisor's name of the loop, the store method it calls, the settings that make it call it soon)
LOOPS = [
    pytest.param("claims", "claim", {}, id="claims"),
    pytest.param("heartbeats", "extend", {"lease_seconds": 1.5}, id="heartbeats"),  # renews every 0.5 s
    pytest.param("peer-changes", "changes_after", {}, id="peer-changes"),
    pytest.param("housekeeping", "drop_abandoned_batches", {}, id="housekeeping"),
    pytest.param("webhooks", "relay_outbox", {"webhook_secret": SECRET}, id="webhooks"),
]


@pytest.mark.parametrize(("loop", "method", "overrides"), LOOPS)
@pytest.mark.gen_test(timeout=60)
async def test_a_loop_that_raises_is_restarted_counted_on_metrics_and_jobs_still_complete(
        tmp_path, target: Target, caplog, loop: str, method: str, overrides: dict[str, Any]):
    settings = conftest.test_settings(tmp_path, **overrides)
    store = store_from_url(settings.database)
    fault = RaisesOnce(store, method)  # armed: the loop's first call raises
    server = JobQueueServer(settings, store=store)
    await server.start()
    api = Api(f"http://127.0.0.1:{server.port}")
    try:
        async def restarted() -> bool:
            return f'jobqueue_loop_restarts_total{{loop="{loop}"}} 1.0' in await metrics_text(api)

        await wait_for(restarted, 20, f"the {loop} loop's restart on /metrics")
        assert fault.raised == 1
        task = await api.submit(target.url(f"/page/after-{loop}"))
        done = await api.wait_finished(task["id"])
        assert done["status"] == "completed", done
        text = await metrics_text(api)
        assert 'jobqueue_loop_restarts_total{loop="claims"}' in text  # every loop shows, at 0 until it fails
        assert 'jobqueue_loop_restarts_total{loop="dashboard-counts"} 0.0' in text
    finally:
        api.close()
        await server.stop()
    failed = [r for r in caplog.records if r.name == "jobqueue.supervisor" and r.levelno == logging.ERROR]
    assert len(failed) == 1 and loop in failed[0].getMessage(), [r.getMessage() for r in failed]
    assert failed[0].exc_info is not None and f"an injected bug in {method}" in str(failed[0].exc_info[1])


# the loops that wait out an unavailable database themselves, and the logger each warns on
OUTAGES = [
    pytest.param("claims", "claim", "jobqueue.workers", {}, id="claims"),
    pytest.param("heartbeats", "extend", "jobqueue.workers", {"lease_seconds": 1.5}, id="heartbeats"),
    pytest.param("webhooks", "relay_outbox", "jobqueue.webhooks", {"webhook_secret": SECRET}, id="webhooks"),
]


@pytest.mark.parametrize(("loop", "method", "logger", "overrides"), OUTAGES)
@pytest.mark.gen_test(timeout=60)
async def test_a_database_briefly_unavailable_is_waited_out_by_the_loop_not_restarted(
        tmp_path, target: Target, caplog, loop: str, method: str, logger: str, overrides: dict[str, Any]):
    settings = conftest.test_settings(tmp_path, **overrides)
    store = store_from_url(settings.database)
    fault = RaisesOnce(store, method, StoreError("the database is unavailable (injected)"))
    server = JobQueueServer(settings, store=store)
    await server.start()
    api = Api(f"http://127.0.0.1:{server.port}")
    try:
        async def warned() -> bool:
            return any(r.name == logger and r.levelno == logging.WARNING and "(injected)" in r.getMessage()
                       for r in caplog.records)

        await wait_for(warned, 20, f"the {loop} loop's warning")
        task = await api.submit(target.url(f"/page/outage-{loop}"))
        done = await api.wait_finished(task["id"])
        assert done["status"] == "completed", done
        assert fault.raised == 1
        assert f'jobqueue_loop_restarts_total{{loop="{loop}"}} 0.0' in await metrics_text(api)
    finally:
        api.close()
        await server.stop()
    assert not [r for r in caplog.records if r.name == "jobqueue.supervisor" and r.levelno >= logging.ERROR]


@pytest.mark.gen_test(timeout=60)
async def test_clients_listening_when_the_change_follower_restarts_are_told_to_reload(tmp_path):
    settings = conftest.test_settings(tmp_path)
    store = store_from_url(settings.database)
    fault = RaisesOnce(store, "changes_after")
    fault.armed = False
    server = JobQueueServer(settings, store=store)
    await server.start()
    other = store_from_url(settings.database)  # another process's store on the same file
    await other.open()
    conn = await websocket_connect(f"ws://127.0.0.1:{server.port}{API}/events")
    try:
        fault.armed = True  # the follower's next read of the log raises
        await other.add([NewTask(TaskIds().new(), "http://127.0.0.1:9/peer", "127.0.0.1", JobSpec())])
        end = time.monotonic() + 20
        while True:  # changes made meanwhile were read by nobody: the client is told so
            try:
                message = await asyncio.wait_for(conn.read_message(), max(end - time.monotonic(), 0.01))
            except TimeoutError:
                raise AssertionError("no resync after the follower's restart") from None
            assert message is not None, "the server closed the stream"
            if json.loads(message)["type"] == "resync":
                break
        assert fault.raised == 1 and server.background.restarts["peer-changes"] == 1
    finally:
        conn.close()
        await other.close()
        await server.stop()


@pytest.mark.gen_test(timeout=30)
async def test_finishing_a_loop_that_waits_out_its_backoff_does_not_wait_for_it():
    failed = asyncio.Event()
    calls = 0

    async def fails_once() -> None:
        nonlocal calls
        calls += 1
        failed.set()
        raise RuntimeError("a bug")

    supervisor = Supervisor(backoff=60.0)  # the claim loop's stop must not wait this long
    supervisor.start("claims", fails_once)
    await asyncio.wait_for(failed.wait(), 5)
    await asyncio.sleep(0)  # the guard has logged the failure and is waiting out its backoff
    await asyncio.wait_for(supervisor.finish("claims"), 5)
    assert supervisor.running == [] and calls == 1 and supervisor.restarts["claims"] == 0
