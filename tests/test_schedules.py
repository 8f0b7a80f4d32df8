"""Recurring fetches: the next run is written with the finish of the last, never twice for one due time."""

from __future__ import annotations

import os
import sqlite3

import pytest

from jobqueue.errors import BadRequest, NotFound
from jobqueue.models import TaskError
from jobqueue.spec import JobSpec, SpecLimits, parse_spec
from jobqueue.store.base import Lease
from tests.helpers import API, Api
from tests.test_storage import LEASE, new, result_for

EVERY = 60.0
URL = "https://example.com/watched"


def needs_schedules(store) -> None:
    if not hasattr(store, "list_schedules"):
        pytest.skip(f"the {store.name} store has no recurring fetches (list_schedules) yet: "
                    "jobqueue/store/mongodb_history.py is not mixed into MongoStore")


async def finish_next(store, body: bytes | None = b"same", fail: bool = False):
    """Claim the one due run and complete (or fail) it; the run as claimed."""
    [run] = await store.claim(1, LEASE, [])
    lease = Lease(run.id, run.lease_token)
    if fail:
        assert await store.fail(lease, TaskError("http_error", "HTTP 500"), 500)
    else:
        assert await store.complete(lease, result_for(run.id, run.url, body))
    return run


def runs_by_due(tmp_path) -> list[tuple]:
    conn = sqlite3.connect(os.path.join(str(tmp_path), "contract.db"))
    rows = conn.execute("SELECT due_at, COUNT(*) FROM jobs WHERE schedule_id IS NOT NULL GROUP BY due_at"
                        " ORDER BY due_at").fetchall()
    conn.close()
    return rows


def test_every_is_checked_against_min_every():
    assert parse_spec({"every": 60}, SpecLimits()).every == 60.0
    assert parse_spec({"every": 1.5}, SpecLimits(min_every=1)).every == 1.5
    for bad in (59, 0, -5, "60", True, 10**9):
        with pytest.raises(BadRequest) as info:
            parse_spec({"every": bad}, SpecLimits())
        assert info.value.code == "invalid_field" and "every: must be a number of seconds from 60" in info.value.message


@pytest.mark.gen_test
async def test_each_finished_run_queues_the_next_on_the_grid_with_the_same_spec(open_store, clock):
    store = await open_store()
    needs_schedules(store)
    [first] = await store.add([new(URL, JobSpec(every=EVERY, priority=3, tags=("watch",)))])
    assert first.schedule_id == first.id and first.to_json()["every"] == EVERY
    clock.advance(5)
    await finish_next(store)
    [following] = (await store.list_schedules(10, None)).items
    nxt = await store.get(following.next_task_id)
    assert (nxt.status, nxt.schedule_id, nxt.priority, nxt.tags) == ("queued", first.id, 3, ("watch",))
    assert nxt.every == EVERY
    assert nxt.available_at == first.available_at + EVERY  # due on the grid, not 60 s after the finish
    assert (await store.counts())["queued"] == 1 and following.runs == 1 and following.last_task_id == first.id
    assert await store.claim(1, LEASE, []) == []  # not due yet
    clock.advance(EVERY * 3.5)  # the service was down: the run queued before catches up, alone
    await finish_next(store, fail=True)  # a failed run goes on too
    later = await store.get((await store.get_schedule(first.id)).next_task_id)
    assert later.available_at == first.available_at + 4 * EVERY  # the first due time after the finish
    assert await store.claim(1, LEASE, []) == []  # the missed due times are skipped, not replayed
    clock.advance(EVERY)
    [due] = await store.claim(1, LEASE, [])
    await store.cancel(due.id)  # a cancelled run skips its due time; the schedule goes on
    assert (await store.get_schedule(first.id)).next_run_at == first.available_at + 5 * EVERY


@pytest.mark.parametrize("ending", ["completed", "failed", "cancelled"])
@pytest.mark.gen_test
async def test_after_downtime_one_run_catches_up_and_the_next_is_due_after_it(open_store, clock, ending):
    """The run queued before the service went down runs once it is back; the one it queues is not due yet,
    however the run ended and whatever part of a period it finished in."""
    store = await open_store()
    needs_schedules(store)
    [first] = await store.add([new(URL, JobSpec(every=EVERY))])
    await finish_next(store)
    stale = await store.get((await store.get_schedule(first.id)).next_task_id)
    clock.advance(30 * EVERY + 7)  # down for 30 periods and a bit
    [caught_up] = await store.claim(5, LEASE, [])
    assert caught_up.id == stale.id
    clock.advance(EVERY * 0.9)  # a slow run: it finishes near the end of a period
    lease = Lease(caught_up.id, caught_up.lease_token)
    if ending == "completed":
        assert await store.complete(lease, result_for(caught_up.id, URL, b"same"))
    elif ending == "failed":
        assert await store.fail(lease, TaskError("http_error", "HTTP 500"), 500)
    else:
        await store.cancel(caught_up.id)
    schedule = await store.get_schedule(first.id)
    following = await store.get(schedule.next_task_id)
    assert following.status == "queued" and schedule.next_run_at == following.available_at
    assert clock() < following.available_at <= clock() + EVERY  # the first due time after the finish
    assert (following.available_at - first.available_at) % EVERY == 0  # on the grid
    assert await store.claim(5, LEASE, []) == []  # nothing else catches up
    assert (await store.counts())["queued"] == 1


@pytest.mark.gen_test
async def test_an_older_run_retried_queues_nothing_the_schedule_goes_on_from_its_current_run(open_store, clock):
    store = await open_store()
    needs_schedules(store)
    [first] = await store.add([new(URL, JobSpec(every=EVERY))])
    await finish_next(store)
    clock.advance(EVERY + 1)
    [current] = await store.claim(1, LEASE, [])  # the second run is running
    await store.retry(first.id)
    clock.advance(4)  # the retried first run finishes while the second still runs
    [again] = await store.claim(1, LEASE, [])
    assert again.id == first.id
    assert await store.complete(Lease(again.id, again.lease_token), result_for(again.id, URL, b"same"))
    assert (await store.counts())["queued"] == 0  # no second chain: the running run queues the next
    assert await store.complete(Lease(current.id, current.lease_token), result_for(current.id, URL, b"same"))
    assert (await store.counts())["queued"] == 1
    schedule = await store.get_schedule(first.id)
    assert (await store.get(schedule.next_task_id)).available_at == first.available_at + 2 * EVERY


@pytest.mark.gen_test
async def test_a_changed_body_is_recorded_and_reported_with_the_previous_run(open_store, clock):
    store = await open_store()
    needs_schedules(store)
    heard = []
    store.url_changed = lambda task, previous: heard.append((task.id, previous))
    await store.add([new(URL, JobSpec(every=EVERY))])
    one = await finish_next(store, b"version 1")
    clock.advance(EVERY)
    two = await finish_next(store, b"version 1")
    clock.advance(EVERY)
    three = await finish_next(store, b"version 2")
    assert heard == [(three.id, two.id)] and one.id != two.id
    assert [(t, p) for _seq, t, p in await store.url_changes_since(0, 10)] == [(three.id, two.id)]
    assert [e.changed for e in (await store.history(URL, 10, None)).items] == [True, False, None]


@pytest.mark.gen_test
async def test_two_processes_and_a_crash_never_run_one_due_time_twice(open_store, clock, tmp_path):
    store = await open_store()
    needs_schedules(store)
    if store.name != "sqlite":
        pytest.skip("counts runs in the SQLite file")
    other = await open_store()  # a second process on the same file
    [first] = await store.add([new(URL, JobSpec(every=EVERY))])
    [stalled] = await store.claim(1, LEASE, [])
    clock.advance(LEASE + 1)  # the first process stalls (or died): its lease runs out
    [taken] = await other.claim(1, LEASE, [])
    assert taken.id == stalled.id
    assert await store.complete(Lease(stalled.id, stalled.lease_token), result_for(first.id, URL, b"x")) is None
    assert await other.complete(Lease(taken.id, taken.lease_token), result_for(first.id, URL, b"x"))
    assert runs_by_due(tmp_path) == [(first.available_at, 1), (first.available_at + EVERY, 1)]
    await other.retry(first.id)  # the same due time run again, finishing again: still one next run
    clock.advance(1)
    [again] = await store.claim(1, LEASE, [])
    assert again.id == first.id
    await store.complete(Lease(again.id, again.lease_token), result_for(first.id, URL, b"x"))
    assert runs_by_due(tmp_path) == [(first.available_at, 1), (first.available_at + EVERY, 1)]
    assert (await store.counts())["queued"] == 1


@pytest.mark.gen_test
async def test_stopping_a_schedule_cancels_its_queued_run_and_ends_the_chain(open_store, clock):
    store = await open_store()
    needs_schedules(store)
    [first] = await store.add([new(URL, JobSpec(every=EVERY))])
    [running] = await store.claim(1, LEASE, [])
    schedule, cancelled = await store.stop_schedule(first.id)
    assert cancelled == [] and schedule.stopped_at == clock.now and schedule.to_json()["active"] is False
    assert await store.complete(Lease(running.id, running.lease_token), result_for(first.id, URL, b"x"))
    assert (await store.counts())["queued"] == 0  # a run finishing after the stop queues nothing
    [second] = await store.add([new("https://example.com/two", JobSpec(every=EVERY))])
    await finish_next(store)
    queued = (await store.get_schedule(second.id)).next_task_id
    clock.advance(1)
    stopped, cancelled = await store.stop_schedule(second.id)
    assert [t.id for t in cancelled] == [queued] and (await store.get(queued)).status == "cancelled"
    assert (await store.stop_schedule(second.id))[0].stopped_at == stopped.stopped_at  # stopping again: no change
    assert (await store.get(second.id)).status == "completed"  # stored runs stay
    with pytest.raises(NotFound):
        await store.stop_schedule("nosuchschedule")
    assert [s.id for s in (await store.list_schedules(1, None)).items] == [second.id]


@pytest.mark.gen_test
async def test_schedules_over_http(make_server, target):
    jq = await make_server()
    api = Api(f"http://127.0.0.1:{jq.port}")
    try:
        code, body = await api.call("POST", f"{API}/queue_tasks", {"url": target.url("/utf8"), "every": 30})
        assert (code, body["error"]["code"]) == (400, "invalid_field") and "every" in body["error"]["message"]
        code, body = await api.call("POST", f"{API}/queue_tasks", {"url": target.url("/utf8"), "every": 60})
        assert code == 201 and body["task"]["schedule_id"] == body["task"]["id"] and body["task"]["every"] == 60
        first = await api.wait_finished(body["task"]["id"])
        code, listing = await api.call("GET", f"{API}/schedules")
        [schedule] = listing["schedules"]
        assert (schedule["id"], schedule["runs"], schedule["active"], listing["next"]) == (first["id"], 1, True, None)
        queued = await api.task(schedule["next_task_id"])
        assert queued["status"] == "queued" and queued["schedule_id"] == first["id"]
        code, stopped = await api.call("DELETE", f"{API}/schedules/{first['id']}")
        assert code == 200 and stopped["schedule"]["active"] is False and stopped["schedule"]["next_task_id"] is None
        assert (await api.task(queued["id"]))["status"] == "cancelled"
        code, got = await api.call("GET", f"{API}/schedules/{first['id']}")
        assert code == 200 and got["schedule"]["stopped_at"]
        for method, path, status, error in [("DELETE", "/schedules/nosuch", 404, "not_found"),
                                            ("GET", "/schedules/nosuch", 404, "not_found"),
                                            ("GET", "/schedules?cursor=bad", 400, "invalid_cursor")]:
            code, body = await api.call(method, API + path)
            assert (code, body["error"]["code"]) == (status, error), body
    finally:
        api.close()
