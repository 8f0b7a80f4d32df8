"""Background loops that hit a bug are logged and restarted, and task-state log lines say only what is true."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from tornado.websocket import websocket_connect

from jobqueue.events import EventHub
from jobqueue.models import Task
from jobqueue.peer_sync import follow_changes
from jobqueue.store import Capabilities, store_from_url
from jobqueue.store.base import ChangePage
from jobqueue.supervisor import Supervisor
from server import JobQueueServer
from tests import conftest
from tests.helpers import API, wait_for


def records(caplog: pytest.LogCaptureFixture, logger: str, level: int) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == logger and r.levelno == level]


@pytest.mark.gen_test
async def test_supervisor_logs_a_failing_loop_restarts_it_and_stops_it(caplog):
    calls = 0
    working = asyncio.Event()

    async def flaky_loop() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("a bug in the loop")
        working.set()
        await asyncio.Event().wait()  # runs forever, as a background loop does

    supervisor = Supervisor(backoff=0.01)
    supervisor.start("flaky", flaky_loop)
    await asyncio.wait_for(working.wait(), 5)
    failed = records(caplog, "jobqueue.supervisor", logging.ERROR)
    assert len(failed) == 1 and "flaky" in failed[0].getMessage()
    assert failed[0].exc_info is not None and "a bug in the loop" in str(failed[0].exc_info[1])
    assert supervisor.restarts["flaky"] == 1 and supervisor.running == ["flaky"]
    await supervisor.stop()
    assert supervisor.running == []


@pytest.mark.gen_test
async def test_supervisor_does_not_restart_a_loop_that_finished():
    calls = 0

    async def finite_loop() -> None:
        nonlocal calls
        calls += 1

    supervisor = Supervisor(backoff=0.01)
    await asyncio.wait_for(supervisor.start("once", finite_loop), 5)
    assert calls == 1 and supervisor.restarts["once"] == 0
    await supervisor.stop()


@pytest.mark.gen_test
async def test_supervisor_backs_off_while_a_loop_keeps_failing(caplog):
    started: list[float] = []

    async def always_failing() -> None:
        started.append(time.monotonic())
        raise RuntimeError("still broken")

    supervisor = Supervisor(backoff=0.02, max_backoff=0.08)
    supervisor.start("broken", always_failing)
    async def five_attempts() -> bool:
        return len(started) >= 5

    await wait_for(five_attempts, 10, "five attempts")
    await supervisor.stop()
    gaps = [b - a for a, b in itertools.pairwise(started)]
    assert gaps[2] >= 0.07 and gaps[3] >= 0.07  # 0.02, 0.04, then capped at 0.08
    assert len(records(caplog, "jobqueue.supervisor", logging.ERROR)) >= 5


class CountsFailOnce:
    """A store whose counts() raises once when armed, as a bug would; everything else is the real store."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.name = store.name
        self.armed = False

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._store, attribute)

    async def counts(self) -> dict[str, int]:
        if self.armed:
            self.armed = False
            raise RuntimeError("counts broke once")
        return await self._store.counts()


@pytest.mark.gen_test
async def test_dashboard_counts_arrive_after_the_counts_loop_failed_once(tmp_path, caplog):
    settings = conftest.test_settings(tmp_path)
    store = CountsFailOnce(store_from_url(settings.database))
    server = JobQueueServer(settings, store=store)
    await server.start()
    try:
        store.armed = True  # the first counts read for the dashboard below fails
        conn = await websocket_connect(f"ws://127.0.0.1:{server.port}{API}/events")
        end = time.monotonic() + 10
        while True:  # nothing changes meanwhile: only a loop that did not mark the failed read seen sends counts
            message = await asyncio.wait_for(conn.read_message(), max(end - time.monotonic(), 0.01))
            assert message is not None, "the server closed the stream"
            if json.loads(message)["type"] == "counts":
                break
        assert not store.armed
        failed = records(caplog, "jobqueue.supervisor", logging.ERROR)
        assert len(failed) == 1 and "dashboard-counts" in failed[0].getMessage()
        conn.close()
    finally:
        await server.stop()


class BrokenChangeStream:
    """A store whose change stream dies of an unexpected error; its change log works."""

    capabilities = Capabilities(change_stream=True)

    def __init__(self, task: Task) -> None:
        self.task = task

    async def watch(self) -> AsyncIterator[Task]:
        raise RuntimeError("the change stream broke")
        yield self.task  # makes this an async generator

    async def changes_after(self, position: Any, limit: int) -> ChangePage:
        if position is None or limit <= 0:
            return ChangePage([], position or 0)
        return ChangePage([self.task] if position == 0 else [], 1)


@pytest.mark.gen_test
async def test_peer_changes_fall_back_to_polling_when_the_change_stream_fails(caplog):
    task = Task(id="peer", url="https://example.com/", host="example.com", status="completed", attempts=1,
                created_at=time.time(), updated_at=time.time())
    hub = EventHub()
    subscription = hub.subscribe()
    follower = asyncio.ensure_future(follow_changes(BrokenChangeStream(task), hub))  # type: ignore[arg-type]
    try:
        batch = await asyncio.wait_for(subscription.next_batch(), 10)
        assert json.loads(batch[0])["task"]["id"] == "peer"
        failed = records(caplog, "jobqueue.peer_sync", logging.ERROR)
        assert len(failed) == 1 and failed[0].exc_info is not None
    finally:
        follower.cancel()
        await asyncio.wait([follower])


@pytest.mark.gen_test
async def test_task_state_lines_carry_an_error_only_when_it_is_about_that_state(caplog, jq, api, target):
    caplog.set_level(logging.INFO, logger="jobqueue")
    task = await api.submit(target.url("/flaky/supervision?fail=1"))  # one 503, then 200
    await api.wait_finished(task["id"])
    lines = [r for r in caplog.records if r.name == "jobqueue" and getattr(r, "task", None) == task["id"]]
    states = [(r.status, r.attempts, getattr(r, "error", None)) for r in lines]
    assert ("queued", 1, "http_error") in states  # the retry, scheduled because of that error
    assert ("running", 2, None) in states  # the retry running: the old error is not its own
    assert states[-1] == ("completed", 2, None)


@pytest.mark.gen_test
async def test_supervisor_stops_a_loop_that_swallowed_the_first_cancellation():
    swallowed = asyncio.Event()

    async def stubborn_loop() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            swallowed.set()  # a library bug (or 3.11's wait_for) ate the cancel; the loop carries on
        await asyncio.Event().wait()

    supervisor = Supervisor()
    supervisor.start("stubborn", stubborn_loop)
    await asyncio.sleep(0)
    await asyncio.wait_for(supervisor.stop(), 10)
    assert swallowed.is_set() and supervisor.running == []


class _IdleOutbox:
    """Just enough store for the sender's loop: nothing to relay, nothing due."""

    async def relay_outbox(self) -> None:
        return None

    async def deliveries_due(self) -> bool:
        return False


@pytest.mark.gen_test
async def test_webhook_sender_stops_when_cancelled_as_it_is_woken():
    from jobqueue.addresses import AddressPolicy
    from jobqueue.metrics import Metrics
    from jobqueue.webhooks.sender import SenderSettings, WebhookSender
    from jobqueue.webhooks.signing import WebhookSigner

    signer = WebhookSigner("whsec_" + "a2V5IGZvciB0aGUgdGVzdCwgMzIgYnl0ZXMgbG9uZyE=")
    sender = WebhookSender(_IdleOutbox(), signer, AddressPolicy(), Metrics(), SenderSettings(poll_interval=30))
    try:
        for _ in range(20):  # the race that 3.11's wait_for loses: the wake and the cancel in one turn
            task = asyncio.get_running_loop().create_task(sender.run())
            for _ in range(5):
                await asyncio.sleep(0)
            sender.wake()
            task.cancel()
            done, _ = await asyncio.wait([task], timeout=5)
            assert task in done and task.cancelled()
    finally:
        sender.fetcher.close()
