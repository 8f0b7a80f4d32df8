"""Recurring fetches: the next run is written with the finish of the last, never twice for one due time."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import time
from datetime import UTC, datetime

import pytest

from jobqueue.errors import BadRequest, NotFound
from jobqueue.models import TaskError
from jobqueue.spec import JobSpec, SpecLimits, parse_spec
from jobqueue.store.base import Lease
from tests.helpers import API, Api, wait_for
from tests.test_durability import start_server
from tests.test_storage import LEASE, new, result_for

EVERY = 60.0
URL = "https://example.com/watched"


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


def later_iso(seconds: float) -> str:
    return datetime.fromtimestamp(time.time() + seconds, UTC).isoformat().replace("+00:00", "Z")


async def schedule_of(api: Api, schedule_id: str) -> dict:
    code, body = await api.call("GET", f"{API}/schedules/{schedule_id}")
    assert code == 200, body
    return body["schedule"]


@pytest.mark.gen_test(timeout=60)
async def test_a_run_cancelled_by_any_path_but_the_stop_goes_on_over_http(make_server, target):
    """DELETE /queue_tasks/:id, a bulk cancel and DELETE /batches/:id cancel a run; its schedule goes on with
    the next due time. A run waiting for its retry (HTTP 503) is cancelled without its last attempt's error."""
    jq = await make_server(retry_base_delay=600, max_attempts=3)
    api = Api(f"http://127.0.0.1:{jq.port}")
    try:
        async def recurring(path: str, tag: str, **fields) -> dict:
            payload = {"url": target.url(path), "every": 60, "tags": [tag], **fields}
            code, body = await api.call("POST", f"{API}/queue_tasks", payload)
            assert code == 201, body
            return body["task"]

        async def retry_waiting(task_id: str) -> dict | None:
            task = await api.task(task_id)
            return task if task["status"] == "queued" and task["attempts"] == 1 else None

        runs = {}
        runs["single"] = await recurring("/utf8", "single", not_before=later_iso(3600))
        runs["bulk"] = await recurring("/utf8", "bulk", not_before=later_iso(3600))
        runs["bulk_retry_waiting"] = await recurring("/status/503", "bulkwaiting")
        code, body = await api.call("POST", f"{API}/batches", {"urls": [target.url("/utf8")], "every": 60,
                                                                "not_before": later_iso(3600)})
        assert code == 201, body
        batch_id = body["batch"]["id"]
        [runs["batch"]] = (await api.call("GET", f"{API}/queue_tasks?batch={batch_id}"))[1]["tasks"]
        waiting = await wait_for(lambda: retry_waiting(runs["bulk_retry_waiting"]["id"]), 20, "the 503 retry wait")
        assert waiting["error"]["code"] == "http_error" and waiting["http_status"] == 503

        assert (await api.call("DELETE", f"{API}/queue_tasks/{runs['single']['id']}"))[0] == 200
        for tag in ("bulk", "bulkwaiting"):
            code, body = await api.call("POST", f"{API}/queue_tasks/bulk",
                                        {"action": "cancel", "filter": {"tag": tag, "status": "queued"}})
            assert code == 200 and body["changed"] == 1, body
        assert (await api.call("DELETE", f"{API}/batches/{batch_id}"))[0] == 200

        for path, run in runs.items():
            cancelled = await api.task(run["id"])
            assert (cancelled["status"], cancelled["error"], cancelled["http_status"]) == ("cancelled", None, None)
            schedule = await schedule_of(api, run["schedule_id"])
            assert schedule["active"] and schedule["runs"] == 1, (path, schedule)
            following = await api.task(schedule["next_task_id"])
            assert (following["status"], following["schedule_id"]) == ("queued", run["schedule_id"]), path
    finally:
        api.close()


@pytest.mark.gen_test(timeout=60)
async def test_stopping_a_schedule_clears_its_waiting_runs_last_attempt_over_http(make_server, target):
    jq = await make_server(retry_base_delay=600, max_attempts=3)
    api = Api(f"http://127.0.0.1:{jq.port}")
    try:
        code, body = await api.call("POST", f"{API}/queue_tasks", {"url": target.url("/status/503"), "every": 60})
        assert code == 201, body
        run = body["task"]

        async def retry_waiting() -> dict | None:
            task = await api.task(run["id"])
            return task if task["status"] == "queued" and task["attempts"] == 1 else None

        assert (await wait_for(retry_waiting, 20, "the 503 retry wait"))["http_status"] == 503
        code, body = await api.call("DELETE", f"{API}/schedules/{run['schedule_id']}")
        assert code == 200 and body["schedule"]["active"] is False
        cancelled = await api.task(run["id"])
        assert (cancelled["status"], cancelled["error"], cancelled["http_status"]) == ("cancelled", None, None)
        assert body["schedule"]["runs"] == 1  # counted as a finished run, as any other cancel counts it
        assert (await api.counts())["queued"] == 0
    finally:
        api.close()


def runs_of(db: str, schedule_id: str) -> list[sqlite3.Row]:
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        return conn.execute("SELECT id, status, created_at, started_at, due_at FROM jobs WHERE schedule_id = ?"
                            " ORDER BY due_at", (schedule_id,)).fetchall()


@pytest.mark.slow
@pytest.mark.gen_test(timeout=120)
async def test_after_a_kill_and_downtime_one_run_catches_up_and_the_next_waits_for_its_due_time(tmp_path, target):
    """kill -9, down for several periods, restart on the same file: the run left behind runs at once, alone; the
    run it queues is due after it finished, never already due (which ran a second catch-up at once)."""
    db = str(tmp_path / "schedules.db")
    proc, api = await start_server(db, "--min-every", "1")
    try:
        code, body = await api.call("POST", f"{API}/queue_tasks", {"url": target.url("/utf8"), "every": 1})
        assert code == 201, body
        schedule_id = body["task"]["schedule_id"]

        async def ran_once() -> bool:
            return (await schedule_of(api, schedule_id))["runs"] >= 1

        await wait_for(ran_once, 30, "the first run to finish")
    finally:
        api.close()
        proc.kill()
        await asyncio.wait_for(proc.wait(), 15)
    stale = max(r["due_at"] for r in runs_of(db, schedule_id))
    # the downtime itself (not a synchronisation): the service stays down for 3 periods past the stale due time
    await asyncio.sleep(max(0.0, stale + 3.5 - time.time()))
    restarted_at = time.time()
    proc, api = await start_server(db, "--min-every", "1")
    try:
        async def ran_on(runs: int) -> bool:
            return (await schedule_of(api, schedule_id))["runs"] >= runs

        before = (await schedule_of(api, schedule_id))["runs"]
        await wait_for(lambda: ran_on(before + 2), 30, "the stale run and the one after it to finish")
    finally:
        api.close()
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 15)
    runs = runs_of(db, schedule_id)
    queued_already_due = [dict(r) for r in runs[1:] if r["due_at"] <= r["created_at"]]
    assert queued_already_due == []
    caught_up = [r["id"] for r in runs if r["started_at"] and r["started_at"] >= restarted_at
                 and r["due_at"] < restarted_at]
    assert len(caught_up) == 1, [dict(r) for r in runs]


@pytest.mark.gen_test(timeout=60)
async def test_max_schedules_refuses_recurring_jobs_beyond_the_cap_over_http(make_server, target):
    jq = await make_server(max_schedules=3)
    api = Api(f"http://127.0.0.1:{jq.port}")
    page = target.url("/utf8")
    try:
        async def post(path: str, payload: dict) -> tuple[int, dict]:
            return await api.call("POST", f"{API}{path}", payload)

        code, first = await post("/queue_tasks", {"url": page, "every": 60, "not_before": later_iso(3600)})
        assert code == 201, first
        code, body = await post("/queue_tasks", {"urls": [page] * 3, "every": 60})
        assert (code, body["error"]["code"]) == (409, "too_many_schedules"), body
        message = body["error"]["message"]
        assert "DELETE /schedules/:id" in message and "--max-schedules" in message and "3" in message
        code, body = await post("/queue_tasks", {"jobs": [{"url": page}, {"url": page, "every": 60},
                                                          {"url": page, "every": 60}, {"url": page, "every": 60}]})
        assert (code, body["error"]["code"]) == (409, "too_many_schedules"), body
        code, body = await post("/batches", {"urls": [page] * 3, "every": 60})
        assert (code, body["error"]["code"]) == (409, "too_many_schedules"), body
        assert (await api.call("GET", f"{API}/batches"))[1]["batches"] == []
        assert len((await api.call("GET", f"{API}/schedules"))[1]["schedules"]) == 1  # nothing refused was stored
        assert (await post("/queue_tasks", {"urls": [page] * 2, "every": 60}))[0] == 201  # 3 active: the cap
        assert (await post("/queue_tasks", {"urls": [page] * 5}))[0] == 201  # one-off jobs are not schedules
        code, body = await post("/queue_tasks", {"url": page, "every": 60})
        assert (code, body["error"]["code"]) == (409, "too_many_schedules"), body
        assert (await api.call("DELETE", f"{API}/schedules/{first['task']['schedule_id']}"))[0] == 200
        assert (await post("/queue_tasks", {"url": page, "every": 60}))[0] == 201  # a stopped one made room
    finally:
        api.close()


@pytest.mark.slow
@pytest.mark.gen_test(timeout=90)
async def test_max_schedules_counts_every_process_on_the_database(tmp_path, target):
    db = str(tmp_path / "shared.db")
    cap = ("--max-schedules", "2", "--processes", "1")
    (proc_a, api_a), (proc_b, api_b) = await start_server(db, *cap), await start_server(db, *cap)
    try:
        code, body = await api_a.call("POST", f"{API}/queue_tasks", {"urls": [target.url("/utf8")] * 2, "every": 60})
        assert code == 201, body
        code, body = await api_b.call("POST", f"{API}/queue_tasks", {"url": target.url("/utf8"), "every": 60})
        assert (code, body["error"]["code"]) == (409, "too_many_schedules"), body
    finally:
        for proc, api in ((proc_a, api_a), (proc_b, api_b)):
            api.close()
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), 15)
