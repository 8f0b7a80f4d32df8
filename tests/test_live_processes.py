"""Live updates with `--processes=2`: every websocket client that keeps up sees every job's states in order,
whichever process made them; one that falls behind is told to resync, never left in silence."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from tornado.websocket import WebSocketClientConnection, websocket_connect

from tests.helpers import API
from tests.test_processes import Service, start
from tests.test_slow_clients import never_reading_client

FINAL = ("completed", "failed", "cancelled")


async def one_stream_per_process(service: Service) -> dict[int, WebSocketClientConnection]:
    """A websocket on each of the two processes (the kernel picks the process of each connection)."""
    streams: dict[int, WebSocketClientConnection] = {}
    spare = []
    for _ in range(60):
        conn = await websocket_connect(f"ws://127.0.0.1:{service.port}{API}/events")
        assert json.loads(await conn.read_message())["type"] == "hello"
        index = int(conn.headers["X-Jobqueue-Process"])
        if index in streams:
            spare.append(conn)
        else:
            streams[index] = conn
        if len(streams) == 2:
            break
    for conn in spare:
        conn.close()
    assert sorted(streams) == [1, 2], "no websocket reached one of the processes"
    return streams


class Reader:
    """Reads a stream as fast as it comes: every task's statuses in order, and whether a resync came."""

    def __init__(self, conn: WebSocketClientConnection) -> None:
        self.conn = conn
        self.statuses: dict[str, list[str]] = {}
        self.deleted: set[str] = set()
        self.resyncs = 0
        self.task = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        while True:
            raw = await self.conn.read_message()
            if raw is None:
                return
            event = json.loads(raw)
            if event["type"] == "task":
                self.statuses.setdefault(event["task"]["id"], []).append(event["task"]["status"])
            elif event["type"] == "task.deleted":
                self.deleted.add(event["task_id"])
            elif event["type"] == "resync":
                self.resyncs += 1

    def finished(self, task_id: str) -> bool:
        seen = self.statuses.get(task_id)
        return bool(seen) and seen[-1] in FINAL

    async def until_finished(self, ids: list[str], timeout: float, who: str) -> None:
        end = time.monotonic() + timeout
        while not all(self.finished(i) for i in ids):
            if self.task.done():
                self.task.result()
                raise AssertionError(f"{who}'s stream ended")
            if time.monotonic() > end:
                missing = [i for i in ids if not self.finished(i)]
                raise AssertionError(f"{who} never got the final state of {len(missing)} of {len(ids)} jobs "
                                     f"(resyncs: {self.resyncs}); e.g. {self.statuses.get(missing[0])}")
            await asyncio.sleep(0.05)

    async def until_deleted(self, ids: set[str], timeout: float, who: str) -> None:
        end = time.monotonic() + timeout
        while not ids <= self.deleted:
            if self.task.done():
                self.task.result()
                raise AssertionError(f"{who}'s stream ended")
            if time.monotonic() > end:
                raise AssertionError(f"{who} was never told of the deletion of {len(ids - self.deleted)} of "
                                     f"{len(ids)} jobs (resyncs: {self.resyncs})")
            await asyncio.sleep(0.05)

    def close(self) -> None:
        self.task.cancel()
        self.conn.close()


async def all_tasks(service: Service) -> list[dict[str, Any]]:
    """Every job, over REST."""
    found: list[dict[str, Any]] = []
    cursor = ""
    while True:
        code, page = await service.api.call("GET", f"{API}/queue_tasks?limit=1000&cursor={cursor}")
        assert code == 200, page
        found += page["tasks"]
        if page["next"] is None:
            return found
        cursor = page["next"]


async def stopped(service: Service) -> None:
    assert await service.stop() == 0
    assert "Traceback" not in service.log()


@pytest.mark.gen_test(timeout=60)
async def test_a_client_sees_queued_running_completed_of_jobs_the_other_process_ran(tmp_path, target):
    service = await start(tmp_path, "--processes", "2")
    readers: dict[int, Reader] = {}
    try:
        readers = {index: Reader(conn) for index, conn in (await one_stream_per_process(service)).items()}
        # 16 jobs the target holds 0.5 s each, for 8 workers in two processes: both run some
        ids = [t["id"] for t in await service.api.submit_many(
            [target.url(f"/page/held{i}?delay=0.5") for i in range(16)])]
        for index, reader in readers.items():
            await reader.until_finished(ids, 30, f"the client of process {index}")

        async def logged() -> dict[str, int] | None:
            found = {i: p for i, p in service.completed_by().items() if i in ids}
            return found if len(found) == len(ids) else None

        deadline = time.monotonic() + 10
        while (ran := await logged()) is None:
            assert time.monotonic() < deadline, "every completion to be logged"
            await asyncio.sleep(0.05)
        assert set(ran.values()) == {1, 2}, "one process ran every job"
        for index, reader in readers.items():
            assert reader.resyncs == 0
            wrong = {i: reader.statuses[i] for i in ids if reader.statuses[i] != ["queued", "running", "completed"]}
            assert wrong == {}, (f"the client of process {index} saw these jobs (run by process "
                                 f"{ {i: ran[i] for i in wrong} }) otherwise: {wrong}")
    finally:
        for reader in readers.values():
            reader.close()
        await stopped(service)


@pytest.mark.slow
@pytest.mark.gen_test(timeout=90)
async def test_stalled_clients_and_one_big_post_cost_no_reader_a_state(tmp_path, target):
    service = await start(tmp_path, "--processes", "2", "--workers", "16", "--per-host", "16")
    stalled: list[Any] = []
    readers: dict[int, Reader] = {}
    try:
        stalled = [await never_reading_client(service.port) for _ in range(40)]
        readers = {index: Reader(conn) for index, conn in (await one_stream_per_process(service)).items()}
        # One insert of 1,100 jobs (a batch: one write), all stamped at one instant. 1,000 are due in ten minutes:
        # they stay queued, stamped at that instant, as jobs do for long on a loaded machine. The other 100 run
        # now, a fifth of them answering 503 once and retried.
        later = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 600))
        due = [{"url": target.url(f"/flaky/big{i}?fail=1") if i % 5 == 0 else target.url(f"/page/big{i}")}
               for i in range(100)]
        waiting = [{"url": target.url(f"/page/later{i}"), "not_before": later} for i in range(1000)]
        code, body = await service.api.call("POST", f"{API}/batches", {"jobs": due + waiting})
        assert code == 201, body
        listed = await all_tasks(service)
        ids = [t["id"] for t in listed]
        running = [t["id"] for t in listed if "/later" not in t["url"]]
        assert len(ids) == 1100 and len(running) == 100
        for index, reader in readers.items():
            await reader.until_finished(running, 30, f"the client of process {index}")
        for index, reader in readers.items():  # it kept up: it was never told to resync, and saw every state
            assert reader.resyncs == 0
            missed = [i for i in ids if reader.statuses.get(i, [""])[0] != "queued"]
            assert missed == [], f"process {index}'s client missed the queued state of {len(missed)} jobs"
            retried = [i for i in running if len(reader.statuses[i]) > 3]
            assert all(reader.statuses[i] == ["queued", "running", "queued", "running", "completed"] for i in retried)
            assert len(retried) == 20
    finally:
        for sock in stalled:
            sock.close()
        for reader in readers.values():
            reader.close()
        await stopped(service)


@pytest.mark.gen_test(timeout=90)
async def test_a_client_of_each_process_sees_a_deletion_whichever_process_made_it(tmp_path, target):
    service = await start(tmp_path, "--processes", "2")
    readers: dict[int, Reader] = {}
    try:
        readers = {index: Reader(conn) for index, conn in (await one_stream_per_process(service)).items()}
        one_by_one = [t["id"] for t in await service.api.submit_many([target.url(f"/page/del{i}") for i in range(40)])]
        code, body = await service.api.call("POST", f"{API}/queue_tasks", {
            "urls": [target.url(f"/page/bulk{i}") for i in range(30)], "tags": ["bulk"]})
        assert code == 201, body
        in_bulk = [t["id"] for t in body["tasks"]]
        for index, reader in readers.items():
            await reader.until_finished(one_by_one + in_bulk, 30, f"the client of process {index}")
        # each purge is a new connection, which either process may take: go on until both have purged some
        purged_by: dict[int, list[str]] = {1: [], 2: []}
        for task_id in one_by_one:
            response = await service.api.raw("DELETE", f"{API}/queue_tasks/{task_id}?purge=true")
            assert response.code == 200, response.body
            purged_by[int(response.headers["X-Jobqueue-Process"])].append(task_id)
            if min(len(ids) for ids in purged_by.values()) >= 3:
                break
        assert all(purged_by.values()), f"one process answered every purge: {purged_by}"
        code, body = await service.api.call("POST", f"{API}/queue_tasks/bulk",
                                            {"action": "delete", "filter": {"tag": "bulk"}})
        assert (code, body["changed"]) == (200, len(in_bulk)), body
        gone = {*purged_by[1], *purged_by[2], *in_bulk}
        for index, reader in readers.items():
            await reader.until_deleted(gone, 15, f"the client of process {index}")
            assert reader.resyncs == 0
            assert not reader.deleted - gone, "a job that was not deleted was announced as deleted"
    finally:
        for reader in readers.values():
            reader.close()
        await stopped(service)
