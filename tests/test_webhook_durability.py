"""`kill -9` between a job's completion and its webhook's delivery: the delivery still arrives after restart."""

from __future__ import annotations

import asyncio
import signal

import pytest

from tests.helpers import API, wait_for
from tests.test_durability import start_server
from tests.test_webhooks import SECRET, _async
from tests.webhook_receiver import HANG, Receiver

N_JOBS = 20


@pytest.mark.slow
@pytest.mark.gen_test(timeout=120)
async def test_deliveries_outlive_a_sigkill_and_arrive_after_restart(tmp_path, target, io_loop):
    receiver = await _async(Receiver)
    receiver.answer("k", *[HANG] * N_JOBS)  # nothing is acknowledged before the crash
    db = str(tmp_path / "hooks.db")
    hooks = ("--webhook-secret", SECRET, "--webhook-retry-delays", "0.05", "--webhook-timeout", "1")
    proc, api = await start_server(db, *hooks)
    try:
        tasks = []
        for i in range(N_JOBS):
            code, body = await api.call("POST", f"{API}/queue_tasks", {"url": target.url(f"/page/{i}"),
                                                                         "webhook": receiver.url("k")})
            assert code == 201, body
            tasks.append(body["task"]["id"])

        async def all_done_and_sending() -> bool:
            return (await api.counts())["completed"] == N_JOBS and len(receiver.got("k")) >= 1

        await wait_for(all_done_and_sending, 30, "every job done and a delivery in flight")
        proc.send_signal(signal.SIGKILL)
        assert await asyncio.wait_for(proc.wait(), 15) == -signal.SIGKILL
        api.close()
        before = len(receiver.got("k"))
        in_flight = {r.headers["webhook-id"] for r in receiver.got("k")}
        assert len(in_flight) <= 4  # the per-endpoint limit held; the rest were never attempted
        receiver.answer("k")  # 200 from now on
        proc, api = await start_server(db, *hooks)

        async def every_task_told() -> bool:
            answered = {r.json["data"]["task"]["id"] for r in receiver.got("k")[before:]}
            return answered == set(tasks)

        await wait_for(every_task_told, 40, "a delivery of every task after the restart", interval=0.1)
        resent = {r.headers["webhook-id"] for r in receiver.got("k")[before:]}
        assert in_flight <= resent  # the interrupted ones were sent again under the same id
    finally:
        api.close()
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), 15)
        receiver.stop()
