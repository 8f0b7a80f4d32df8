"""Live statistics for the dashboard: each process counts its own changes and fetches; sent on the websocket."""

from __future__ import annotations

import json

import pytest
from tornado.websocket import websocket_connect

from jobqueue.live_stats import HOSTS_PER_MINUTE, MINUTE, SECONDS, SERVICE, LiveStats, stats_message, total
from jobqueue.models import Task
from tests.helpers import API

T0 = 1_800_000_000.0


def finished(task_id: str, host: str, status: str, http_status: int | None, seconds: float, at: float) -> Task:
    return Task(id=task_id, url=f"https://{host}/", host=host, status=status, attempts=1, created_at=at - 10,
                updated_at=at, started_at=at - seconds, finished_at=at, http_status=http_status)


def test_figures_per_minute_per_host_and_for_the_last_minute():
    now = [T0]
    stats = LiveStats(clock=lambda: now[0])
    for i in range(90):
        task = finished(f"a{i}", "a.example", "completed", 200, 0.04, T0 - 30 + i * 0.1)
        stats.record(task)
        stats.fetched(task, 0.04)
    for i in range(10):
        for task, seconds in ((finished(f"b{i}", "b.example", "completed", 503, 0.4, T0 - 5), 0.4),
                              (finished(f"c{i}", "b.example", "failed", None, 2.5, T0 - 5), 2.5)):
            stats.record(task)
            stats.fetched(task, seconds)
    stats.record(finished("q", "a.example", "queued", None, 0.0, T0))  # not finished: ignored
    slots = stats.take()
    assert stats.take() == []  # taken once
    last = total([s for s in slots if s.width == SECONDS])
    minutes = [s for s in slots if s.width == MINUTE and s.host == SERVICE]
    hosts = []
    for name in ("a.example", "b.example"):  # each host's minutes summed, as the store's read does
        hosts.append(total([s for s in slots if s.host == name]))
        hosts[-1].host = name
    snap = stats_message(T0, [last], minutes, [total(minutes)], hosts, len(hosts))
    last = snap["last_minute"]
    assert last["finished"] == 110 and last["failed"] == 10 and last["http_errors"] == 10
    # at T0 the newest 10 s slot just began: the window is the 5 slots before it, 50 s
    assert last["error_rate"] == round(20 / 110, 4) and last["finished_per_s"] == round(110 / 50, 2)
    assert last["p50_ms"] == 50 and last["p95_ms"] == 2500  # a bucket's bound, or the slowest fetch if lower
    by_host = {h["host"]: h for h in snap["hosts"]}
    assert by_host["a.example"]["finished"] == 90 and by_host["a.example"]["error_rate"] == 0
    assert by_host["b.example"]["error_rate"] == 1.0 and snap["hosts"][0]["host"] == "a.example"
    assert sum(p["finished"] for p in snap["per_minute"]) == 110 == snap["per_hour"][0]["finished"]


def test_counts_the_store_did_not_take_wait_unless_too_old_to_show():
    now = [T0]
    stats = LiveStats(clock=lambda: now[0])
    stats.record(finished("a", "a.example", "completed", 200, 0.1, T0))
    slots = stats.take()
    now[0] = T0 + 200  # the 10 s slot left the last minute (and its 2 minutes kept), the minutes did not
    stats.give_back(slots)
    assert sorted((s.width, s.host) for s in stats.take()) == [(MINUTE, SERVICE), (MINUTE, "a.example")]


def test_hosts_per_minute_are_bounded_but_the_service_counts_every_job():
    stats = LiveStats(clock=lambda: T0)
    for i in range(HOSTS_PER_MINUTE + 10):
        stats.record(finished(f"t{i}", f"h{i}.example", "completed", 200, 0.1, T0 + 1))
    stats.record(finished("again", "h0.example", "completed", 200, 0.1, T0 + 2))  # a host already counted
    slots = stats.take()
    hosts = {s.host: s.finished for s in slots if s.host != SERVICE}
    assert len(hosts) == HOSTS_PER_MINUTE and hosts["h0.example"] == 2 and stats.dropped == 10
    assert [s.finished for s in slots if s.host == SERVICE] == [HOSTS_PER_MINUTE + 11] * 2
    stats.record(finished("next", "new.example", "completed", 200, 0.1, T0 + 61))  # a new minute, a new count
    assert [s.host for s in stats.take() if s.host != SERVICE] == ["new.example"]


def test_only_this_processs_changes_are_counted(jq):
    """A peer's change reaches the hub (live updates) but is counted by the peer, not here: no double count."""
    task = finished("x", "a.example", "completed", 200, 0.1, T0)
    jq.hub.publish(task)  # as the peer feed does
    assert jq.stats.take() == []
    jq.publish(task)  # as this process's workers and API do
    assert sum(s.finished for s in jq.stats.take() if s.width == MINUTE and s.host == SERVICE) == 1


@pytest.mark.gen_test(timeout=30)
async def test_dashboards_get_stats_messages(jq, api, target):
    stream = await websocket_connect(f"ws://127.0.0.1:{jq.port}{API}/events")
    tasks = await api.submit_many([target.url(f"/page/{i}") for i in range(5)])
    for task in tasks:
        await api.wait_finished(task["id"])
    while True:  # bounded by the test's timeout: the loop sends every 5 s
        message = json.loads(await stream.read_message())
        if message["type"] == "stats":
            break
    assert message["last_minute"]["finished"] == 5 and message["hosts"][0]["host"] == "127.0.0.1"
    stream.close()

