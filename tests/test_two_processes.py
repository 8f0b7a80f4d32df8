"""Two server processes on one SQLite file: each job fetched once, listed by both, seen live by both."""

from __future__ import annotations

import asyncio
import json
import signal
import time

import pytest
from tornado.websocket import websocket_connect

from tests.helpers import API, wait_for
from tests.test_durability import start_server

N_JOBS = 1000


@pytest.mark.slow
@pytest.mark.gen_test(timeout=120)
async def test_two_processes_share_one_sqlite_file(tmp_path, target):
    db = str(tmp_path / "shared.db")
    # a 10 s lease: the 1 s one of the crash tests can run out on a loaded machine and refetch a page,
    # which is at-least-once working as meant, not two processes claiming the same job
    longer = ("--lease-seconds", "10")
    (proc_a, api_a), (proc_b, api_b) = await start_server(db, *longer), await start_server(db, *longer)
    try:
        ws_port = api_a.base_url.rsplit(":", 1)[1]
        dashboard = await websocket_connect(f"ws://127.0.0.1:{ws_port}{API}/events")
        assert json.loads(await dashboard.read_message())["type"] == "hello"
        half = N_JOBS // 2
        urls = [target.url(f"/page/{i}") for i in range(N_JOBS)]
        ids = [t["id"] for t in await api_b.submit_many(urls[:half])]  # submitted to B only
        ids += [t["id"] for t in await api_a.submit_many(urls[half:])]

        async def all_done() -> bool:
            return (await api_a.counts())["completed"] == N_JOBS

        await wait_for(all_done, 90, "every job to complete")
        # each job was fetched exactly once across both processes
        assert sum(n for path, n in target.state.hits.items() if path.startswith("/page/")) == N_JOBS
        assert all(n == 1 for path, n in target.state.hits.items() if path.startswith("/page/"))
        for api in (api_a, api_b):
            assert sorted(await api.all_task_ids(limit=300)) == sorted(ids)
        # the dashboard connected to A saw every job that B submitted complete, those B ran included
        wanted = set(ids[:half])
        end = time.monotonic() + 30
        while wanted:
            try:
                raw = await asyncio.wait_for(dashboard.read_message(), max(end - time.monotonic(), 0.01))
            except TimeoutError:
                raise AssertionError(f"{len(wanted)} of B's {half} jobs never reached A's dashboard") from None
            event = json.loads(raw)
            if event["type"] == "task" and event["task"]["status"] == "completed":
                wanted.discard(event["task"]["id"])
        dashboard.close()
    finally:
        for proc, api in ((proc_a, api_a), (proc_b, api_b)):
            api.close()
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), 15)
