"""Store contract for the live statistics' shared slots: every process adds to them, every process reads the sums."""

from __future__ import annotations

import asyncio

import pytest

from jobqueue.live_stats import BOUNDS_MS, BUCKETS, HOUR, MINUTE, SECONDS, SERVICE, LiveStats, StatsSlot, windows
from jobqueue.models import Task
from jobqueue.shared_stats import SharedStats
from jobqueue.store.base import StoreError
from jobqueue.store.sqlite.stats import BUCKET_COLUMNS

T0 = 1_800_000_000  # a multiple of an hour, so slots line up with it


def slot(width: int, start: int, host: str = SERVICE, finished: int = 1, failed: int = 0, http_errors: int = 0,
         max_ms: float = 0.0, bucket: int | None = None) -> StatsSlot:
    buckets = [0] * BUCKETS
    if bucket is not None:
        buckets[bucket] = finished
    return StatsSlot(width, start, host, finished, failed, http_errors, max_ms, buckets)


def finished(task_id: str, host: str, status: str, http_status: int | None, at: float) -> Task:
    return Task(id=task_id, url=f"https://{host}/", host=host, status=status, attempts=1, created_at=at - 10,
                updated_at=at, started_at=at - 1, finished_at=at, http_status=http_status)


@pytest.mark.gen_test
async def test_slots_added_by_several_stores_at_once_hold_the_sums(open_store):
    stores = [await open_store() for _ in range(3)]
    adds = [[slot(MINUTE, T0, finished=1, failed=i % 2, max_ms=10.0 * i, bucket=3),
             slot(MINUTE, T0, "a.example", finished=1, http_errors=1, bucket=5)] for i in range(30)]
    await asyncio.gather(*(stores[i % 3].add_stats(add) for i, add in enumerate(adds)))
    for store in stores:  # every store on the database reads the same sums
        [series] = await store.stats_series(MINUTE, T0, MINUTE)
        assert (series.start, series.finished, series.failed, series.max_ms) == (T0, 30, 15, 290.0)
        assert series.buckets[3] == 30 and sum(series.buckets) == 30
        hosts, seen = await store.stats_hosts(T0, 20)
        assert seen == 1 and [(h.host, h.finished, h.http_errors, h.buckets[5]) for h in hosts] == [
            ("a.example", 30, 30, 30)]


@pytest.mark.gen_test
async def test_series_are_summed_per_slot_and_start_at_since(open_store):
    store = await open_store()
    await store.add_stats([slot(MINUTE, T0 + m * MINUTE, finished=m + 1) for m in range(120)])
    await store.add_stats([slot(SECONDS, T0 + s * SECONDS, finished=2) for s in range(12)])
    minutes = await store.stats_series(MINUTE, T0 + 60 * MINUTE, MINUTE)
    assert [s.start for s in minutes] == [T0 + m * MINUTE for m in range(60, 120)]
    assert [s.finished for s in minutes] == list(range(61, 121))
    hours = await store.stats_series(MINUTE, T0, HOUR)
    assert [(s.start, s.width, s.finished) for s in hours] == [
        (T0, HOUR, sum(range(1, 61))), (T0 + HOUR, HOUR, sum(range(61, 121)))]
    tens = await store.stats_series(SECONDS, T0 + 60, SECONDS)
    assert [s.finished for s in tens] == [2] * 6  # the service's minutes are apart from its 10 s slots
    assert await store.stats_series(MINUTE, T0 + 3 * HOUR, MINUTE) == []


@pytest.mark.gen_test
async def test_the_busiest_hosts_first_and_how_many_finished_any(open_store):
    store = await open_store()
    await store.add_stats([slot(MINUTE, T0 + m * MINUTE, f"h{n}.example", finished=n)
                           for n in range(25) for m in range(2)])  # h0 finished none: not counted
    await store.add_stats([slot(MINUTE, T0 - MINUTE, "old.example", finished=1000)])  # before `since`
    hosts, seen = await store.stats_hosts(T0, 3)
    assert seen == 24
    assert [(h.host, h.finished) for h in hosts] == [("h24.example", 48), ("h23.example", 46), ("h22.example", 44)]
    assert (await store.stats_hosts(T0 + HOUR, 3)) == ([], 0)


@pytest.mark.gen_test
async def test_purge_deletes_old_slots_of_one_kind_only(open_store):
    store = await open_store()
    await store.add_stats([slot(MINUTE, T0 + m * MINUTE) for m in range(10)]
                          + [slot(MINUTE, T0 + m * MINUTE, "a.example") for m in range(10)])
    assert await store.purge_stats(MINUTE, True, T0 + 4 * MINUTE) == 4
    assert [h.finished for h in (await store.stats_hosts(T0, 5))[0]] == [6]
    assert len(await store.stats_series(MINUTE, T0, MINUTE)) == 10  # the service's minutes stay
    assert await store.purge_stats(MINUTE, False, T0 + 4 * MINUTE) == 4
    assert (await store.stats_series(MINUTE, T0, MINUTE))[0].start == T0 + 4 * MINUTE


@pytest.mark.gen_test
async def test_two_processes_counts_make_one_figure(open_store, clock):
    """What LiveStats counts in two processes, flushed to one database, is what either reads back."""
    clock.now = T0 + 30.0
    stores = [await open_store(), await open_store()]
    shared = [SharedStats(store, LiveStats(clock), clock) for store in stores]
    for i in range(10):
        proc = shared[i % 2]
        proc.live.record(finished(f"t{i}", "a.example" if i < 8 else "b.example", "completed",
                                  404 if i == 0 else 200, T0 + 20 + i))
        proc.live.fetched(finished(f"t{i}", "a.example", "running", None, T0), 0.2)
    shared[1].live.record(finished("x", "a.example", "failed", None, T0 + 29))
    shared[1].live.record(finished("q", "a.example", "queued", None, T0 + 29))  # not finished: not counted
    clock.now = T0 + 40.0
    for proc in shared:
        await proc.flush()
    first, second = await shared[0].snapshot(), await shared[1].snapshot()
    assert first == second
    assert sum(m["finished"] for m in first["per_minute"]) == 11
    last = first["last_minute"]
    assert (last["finished"], last["failed"], last["http_errors"], last["p95_ms"]) == (11, 1, 1, 200)
    assert [(h["host"], h["finished"]) for h in first["hosts"]] == [("a.example", 9), ("b.example", 2)]
    assert first["hosts_seen"] == 2 and sum(h["finished"] for h in first["per_hour"]) == 11


@pytest.mark.gen_test
async def test_counts_a_failed_flush_kept_are_added_by_the_next(open_store, clock):
    clock.now = T0 + 5.0
    store = await open_store()
    live = LiveStats(clock)
    shared = SharedStats(store, live, clock)
    live.record(finished("a", "a.example", "completed", 200, T0 + 1))
    await store.close()
    with pytest.raises(StoreError):
        await shared.flush()
    assert await shared.snapshot() is None
    store = await open_store()
    shared.store = store
    live.record(finished("b", "a.example", "completed", 200, T0 + 2))
    snapshot = await shared.snapshot()
    assert snapshot is not None and snapshot["last_minute"]["finished"] == 2


def test_the_sqlite_columns_are_the_buckets():
    """Migration 10's columns are fixed: other bounds need a migration of their own."""
    assert BUCKET_COLUMNS == (*(f"le{b}" for b in BOUNDS_MS), "more") and len(BUCKET_COLUMNS) == BUCKETS


def test_windows_cover_the_last_minute_hour_and_day():
    at = windows(T0 + 3 * HOUR + 125.5)
    assert at["last_minute"] == T0 + 3 * HOUR + 70  # 10 s slots: the current one and the 5 before it
    assert at["hour"] == T0 + 2 * HOUR + 180  # the current minute and the 59 before it
    assert at["day"] == T0 - 20 * HOUR  # the current hour and the 23 before it


@pytest.mark.gen_test
async def test_every_stats_operation_on_a_closed_store_raises_store_error(open_store):
    """StoreError is what the flush and the reads wait out; anything else would stop their loops."""
    store = await open_store()
    await store.close()
    calls = {"add_stats": lambda: store.add_stats([slot(MINUTE, T0)]),
             "stats_series": lambda: store.stats_series(MINUTE, T0, MINUTE),
             "stats_hosts": lambda: store.stats_hosts(T0, 20),
             "purge_stats": lambda: store.purge_stats(MINUTE, True, T0)}
    wrong = {}
    for name, call in calls.items():
        try:
            await call()
        except StoreError:
            continue
        except Exception as exc:
            wrong[name] = repr(exc)
            continue
        wrong[name] = "no error"
    assert wrong == {}
