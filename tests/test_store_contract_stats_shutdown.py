"""A flush of the live statistics cancelled at shutdown counts once: the write it handed to the store goes on,
so its counts are not given back for the last flush to add a second time."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from typing import Any

import pytest

from jobqueue.live_stats import MINUTE, LiveStats, StatsSlot
from jobqueue.models import Task
from jobqueue.shared_stats import SharedStats
from jobqueue.store.base import StoreError
from jobqueue.store.sqlite.store import SQLiteStore

T0 = 1_800_000_000


def finished(n: int) -> Task:
    at = T0 + 20 + n
    return Task(id=f"t{n}", url="https://a.example/", host="a.example", status="completed", attempts=1,
                created_at=at - 10, updated_at=at, started_at=at - 1, finished_at=at, http_status=200)


class SlowReply:
    """A store whose add_stats commits, then waits for `reply` before answering: a flush cancelled meanwhile has
    handed its counts over, as one waiting on SQLite's writer thread or a MongoDB reply has. `fail` makes the
    answer a StoreError instead (the store took none)."""

    def __init__(self, store: Any, fail: bool = False) -> None:
        self.store = store
        self.fail = fail
        self.committed = asyncio.Event()
        self.reply = asyncio.Event()
        self.answered = asyncio.Event()

    async def add_stats(self, slots: list[StatsSlot]) -> None:
        try:
            if not self.fail:
                await self.store.add_stats(slots)
            self.committed.set()
            await self.reply.wait()
            if self.fail:
                raise StoreError("the database is unavailable")
        finally:
            self.answered.set()


async def cancelled_flush(shared: SharedStats, slow: SlowReply) -> None:
    """Start a flush, cancel it once its write is under way (as background.stop() does), and let the write end."""
    flushing = asyncio.ensure_future(shared.flush())
    await asyncio.wait_for(slow.committed.wait(), 10)
    flushing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await flushing
    slow.reply.set()


async def finished_total(store: Any) -> int:
    return sum(s.finished for s in await store.stats_series(MINUTE, T0 - 3600, MINUTE))


@pytest.mark.gen_test
async def test_a_flush_cancelled_after_its_write_began_is_counted_once(open_store, clock):
    clock.now = T0 + 40.0
    store = await open_store()
    live = LiveStats(clock)
    slow = SlowReply(store)
    shared = SharedStats(slow, live, clock)  # type: ignore[arg-type]
    for n in range(10):
        live.record(finished(n))
    await cancelled_flush(shared, slow)
    await asyncio.wait_for(slow.answered.wait(), 10)
    await shared.flush()  # the stopping process's last flush
    assert await finished_total(store) == 10


@pytest.mark.gen_test
async def test_a_write_that_fails_after_its_flush_was_cancelled_gives_its_counts_back(open_store, clock):
    clock.now = T0 + 40.0
    store = await open_store()
    live = LiveStats(clock)
    slow = SlowReply(store, fail=True)
    shared = SharedStats(slow, live, clock)  # type: ignore[arg-type]
    for n in range(10):
        live.record(finished(n))
    await cancelled_flush(shared, slow)
    await asyncio.wait_for(slow.answered.wait(), 10)
    shared.store = store
    await shared.flush()
    assert await finished_total(store) == 10


@pytest.mark.gen_test
async def test_settle_waits_for_a_write_left_under_way_and_gives_up_after_its_timeout(open_store, clock):
    clock.now = T0 + 40.0
    store = await open_store()
    live = LiveStats(clock)
    slow = SlowReply(store)
    shared = SharedStats(slow, live, clock)  # type: ignore[arg-type]
    live.record(finished(1))
    flushing = asyncio.ensure_future(shared.flush())
    await asyncio.wait_for(slow.committed.wait(), 10)
    flushing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await flushing
    await shared.settle(timeout=0.05)  # bounded: the reply never comes
    assert not slow.answered.is_set()
    settling = asyncio.ensure_future(shared.settle(timeout=30))
    await asyncio.sleep(0)
    assert not settling.done()
    slow.reply.set()
    await asyncio.wait_for(settling, 10)
    assert slow.answered.is_set()


@pytest.mark.gen_test
async def test_sqlite_a_flush_cancelled_while_queued_to_the_writer_thread_counts_once(tmp_path):
    """The reviewer's case on a real SQLite file: the cancel lands while the write waits for the writer thread."""
    path = os.path.join(str(tmp_path), "stats.db")
    store = SQLiteStore(path, synchronous="NORMAL")
    await store.open()
    live = LiveStats()
    shared = SharedStats(store, live)
    now = live.clock()
    for n in range(10):
        live.record(dataclasses.replace(finished(n), finished_at=now, updated_at=now))
    flushing = asyncio.ensure_future(shared.flush())
    await asyncio.sleep(0)  # its write is queued to the writer thread
    flushing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await flushing
    await shared.flush()  # the last flush of a stopping process
    await store.close()  # commits whatever is queued
    store = SQLiteStore(path, synchronous="NORMAL")
    await store.open()
    try:
        series = await store.stats_series(MINUTE, int(now) - 3600, MINUTE)
        assert sum(s.finished for s in series) == 10
    finally:
        await store.close()
