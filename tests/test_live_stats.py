"""Live statistics for the dashboard's charts: counted from accepted changes, bounded, sent on the websocket."""

from __future__ import annotations

import json

import pytest
from tornado.websocket import websocket_connect

from jobqueue.events import EventHub
from jobqueue.live_stats import LiveStats
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
        stats.record(finished(f"a{i}", "a.example", "completed", 200, 0.04, T0 - 30 + i * 0.1))
    for i in range(10):
        stats.record(finished(f"b{i}", "b.example", "completed", 503, 0.4, T0 - 5))
        stats.record(finished(f"c{i}", "b.example", "failed", None, 2.5, T0 - 5))
    stats.record(finished("q", "a.example", "queued", None, 0.0, T0))  # not finished: ignored
    snap = stats.snapshot()
    last = snap["last_minute"]
    assert last["finished"] == 110 and last["failed"] == 10 and last["http_errors"] == 10
    assert last["error_rate"] == round(20 / 110, 4) and last["finished_per_s"] == round(110 / 60, 2)
    assert last["p50_ms"] == 50 and last["p95_ms"] == 3000  # bucket bounds of 40 ms and 2.5 s
    hosts = {h["host"]: h for h in snap["hosts"]}
    assert hosts["a.example"]["finished"] == 90 and hosts["a.example"]["error_rate"] == 0
    assert hosts["b.example"]["error_rate"] == 1.0 and snap["hosts"][0]["host"] == "a.example"
    assert sum(p["finished"] for p in snap["per_minute"]) == 110
    now[0] = T0 + 3700  # an hour later everything has left the window
    later = stats.snapshot()
    assert later["last_minute"]["finished"] == 0 and later["per_minute"] == [] and later["hosts"] == []


def test_the_hub_counts_each_state_once_even_when_a_peer_repeats_it():
    stats = LiveStats(clock=lambda: T0)
    hub = EventHub(observe=stats.record)
    task = finished("x", "a.example", "completed", 200, 0.1, T0)
    hub.publish(task)
    hub.publish(task)  # the same change seen again through the peer feed
    assert stats.snapshot()["last_minute"]["finished"] == 1


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

