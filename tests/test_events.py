"""The event hub and the websocket: order, filters, and slow clients that must not hurt anyone."""

from __future__ import annotations

import asyncio
import json
import time
import tracemalloc
from datetime import datetime

import pytest
from tornado.websocket import websocket_connect

from jobqueue.events import EventHub
from jobqueue.models import Task
from tests.helpers import API, Api
from tests.test_slow_clients import never_reading_client

STEPS = ("queued", "running", "completed")


def task_state(task_id: str, status: str, at: float) -> Task:
    return Task(id=task_id, url="https://example.com/", host="example.com", status=status, attempts=1,
                created_at=at, updated_at=at)


@pytest.mark.gen_test
async def test_hub_delivers_lifecycle_in_order_and_filters():
    hub = EventHub()
    everything = hub.subscribe()
    only_b = hub.subscribe(["b"])
    for i, status in enumerate(STEPS):
        hub.publish(task_state("a", status, 100 + i))
        got = await everything.next_batch()
        assert [json.loads(m)["task"]["status"] for m in got] == [status]
    hub.publish(task_state("b", "queued", 200))
    assert [json.loads(m)["task"]["id"] for m in await only_b.next_batch()] == ["b"]
    assert only_b.pending == 0


@pytest.mark.gen_test
async def test_states_recorded_together_each_reach_a_reader_that_keeps_up_and_stale_ones_are_ignored():
    hub = EventHub()
    sub = hub.subscribe()
    only_a = hub.subscribe(["a"])
    hub.publish(task_state("a", "queued", 1))
    hub.publish(task_state("b", "queued", 1))
    hub.publish(task_state("a", "running", 2))
    hub.publish(task_state("a", "completed", 3))
    hub.publish(task_state("a", "running", 2))  # late duplicate from another path: ignored
    batch = [json.loads(m)["task"] for m in await sub.next_batch()]
    assert [(t["id"], t["status"]) for t in batch] == [("a", "queued"), ("b", "queued"), ("a", "running"),
                                                       ("a", "completed")]
    assert [json.loads(m)["task"]["status"] for m in await only_a.next_batch()] == list(STEPS)


@pytest.mark.gen_test
async def test_a_reader_behind_the_recent_log_gets_each_tasks_latest_state_in_lifecycle_order():
    hub = EventHub(max_pending=100, max_recent=8)
    behind = hub.subscribe()
    for i, status in enumerate(STEPS):
        hub.publish(task_state("a", status, 10 + i))
        for n in range(5):  # other jobs push a's early states out of the recent log
            hub.publish(task_state(f"other{i}{n}", "queued", 10 + i))
    batch = [json.loads(m)["task"] for m in await behind.next_batch()]
    assert [t["status"] for t in batch if t["id"] == "a"] == ["completed"]
    assert len(batch) == 16  # every task once, at its latest state


@pytest.mark.gen_test
async def test_never_reading_subscriber_stays_bounded_and_is_told_to_resync():
    hub = EventHub(max_pending=100)
    stuck = hub.subscribe()
    live = hub.subscribe(["t5"])
    seen_by_live: list[str] = []
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i in range(20000):
        hub.publish(task_state(f"t{i % 500}", STEPS[i % 3], float(i)))
        # the live client's sender wakes on every change, as a websocket's does; the stuck one never reads
        seen_by_live += [json.loads(m)["task"]["status"] for m in hub.read_after(live, 500)]
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert stuck.pending <= 100 and len(hub.log.latest) <= 100
    assert grown < 2 * 1024 * 1024
    assert json.loads((await stuck.next_batch())[0])["type"] == "resync"
    assert seen_by_live and seen_by_live[-1] == STEPS[(19505) % 3]  # t5's last state: i = 19505


async def connect(server, query: str = ""):
    url = f"ws://127.0.0.1:{server.port}{API}/events{query}"
    conn = await websocket_connect(url)
    hello = json.loads(await conn.read_message())
    assert hello["type"] == "hello"
    return conn


async def read_task_events(conn, task_id: str, until: str, deadline: float = 15.0,
                           seen: list[tuple[str, str]] | None = None) -> list[str]:
    """Read until `task_id` reaches `until`; its statuses in order (and every task event into `seen`)."""
    statuses: list[str] = []
    end = time.monotonic() + deadline
    while not statuses or statuses[-1] != until:
        remaining = end - time.monotonic()
        assert remaining > 0, f"no {until!r} event for {task_id}; saw {statuses}"
        message = await asyncio.wait_for(conn.read_message(), remaining)
        assert message is not None, "the server closed the stream"
        event = json.loads(message)
        if seen is not None and event["type"] == "task":
            seen.append((event["task"]["id"], event["task"]["status"]))
        if event["type"] == "task" and event["task"]["id"] == task_id:
            statuses.append(event["task"]["status"])
    return statuses


@pytest.mark.gen_test
async def test_websocket_streams_each_job_lifecycle_in_order(jq, api, target):
    conn = await connect(jq)
    task = await api.submit(target.url("/utf8"))
    statuses = await read_task_events(conn, task["id"], "completed")
    assert statuses[0] == "queued" and statuses[-1] == "completed"
    assert statuses == sorted(statuses, key=["queued", "running", "completed"].index)
    conn.close()


@pytest.mark.gen_test
async def test_websocket_filter_by_task_id(jq, api, target):
    first = await api.submit(target.url("/page/1?delay=0.5"))
    conn = await connect(jq, f"?task_id={first['id']}")
    everything = await connect(jq)
    other = await api.submit(target.url("/page/2"))
    await read_task_events(everything, other["id"], "completed")  # the other task's states were all published
    seen: list[tuple[str, str]] = []
    statuses = await read_task_events(conn, first["id"], "completed", seen=seen)
    assert statuses[-1] == "completed"
    assert {task_id for task_id, _status in seen} == {first["id"]}  # nothing about the other task
    conn.close()
    everything.close()


@pytest.mark.gen_test
async def test_batch_mode_sends_frames_of_messages(jq, api, target):
    conn = await websocket_connect(f"ws://127.0.0.1:{jq.port}{API}/events?batch=1")
    assert json.loads(await conn.read_message())["batch"] is True
    tasks = await api.submit_many([target.url(f"/page/{i}") for i in range(20)])
    wanted = {t["id"] for t in tasks}
    frames = 0
    end = time.monotonic() + 15
    while wanted:
        frame = json.loads(await asyncio.wait_for(conn.read_message(), max(end - time.monotonic(), 0.01)))
        assert frame["type"] == "batch"
        frames += 1
        for message in frame["messages"]:
            if message["type"] == "task" and message["task"]["status"] == "completed":
                wanted.discard(message["task"]["id"])
    assert frames < 60  # 20 jobs x 3 states arrive in fewer frames than messages
    conn.close()


@pytest.mark.gen_test
async def test_websocket_refuses_foreign_origin(jq):
    from tornado.httpclient import HTTPClientError, HTTPRequest

    request = HTTPRequest(f"ws://127.0.0.1:{jq.port}{API}/events", headers={"Origin": "http://evil.example"})
    with pytest.raises(HTTPClientError) as info:
        await websocket_connect(request)
    assert info.value.code == 403


@pytest.mark.slow
@pytest.mark.gen_test(timeout=60)
async def test_a_never_reading_client_does_not_delay_another(make_server, target):
    server = await make_server(workers=64, per_host=64)
    api = Api(f"http://127.0.0.1:{server.port}")
    stuck = await never_reading_client(server.port)  # a tiny receive buffer, never read: it stalls at once
    reader = await connect(server)
    n = 2000
    tasks = []
    for start in range(0, n, 1000):
        tasks += await api.submit_many([target.url(f"/page/{i}") for i in range(start, start + 1000)])
    last = tasks[-1]["id"]
    finished: set[str] = set()
    lag = 0.0
    end = time.monotonic() + 45
    while len(finished) < n:
        assert time.monotonic() < end, f"reader saw {len(finished)} of {n} completions"
        event = json.loads(await asyncio.wait_for(reader.read_message(), end - time.monotonic()))
        if event["type"] == "task" and event["task"]["status"] == "completed":
            finished.add(event["task"]["id"])
            lag = max(lag, time.time() - datetime.fromisoformat(event["task"]["updated_at"]).timestamp())
    assert last in finished
    # seen here: up to 3 s, the in-process workers keeping the loop busy; stalled writes must add nothing
    assert lag < 10.0, f"a completion reached the reader {lag:.1f}s after it happened"
    stuck.close()
    reader.close()
    api.close()


@pytest.mark.gen_test
async def test_a_view_gets_its_rows_the_newest_tasks_and_counts_only():
    from jobqueue.events import View

    hub = EventHub()
    sub = hub.subscribe()
    for task_id in ("t01", "t02", "t03"):
        hub.publish(task_state(task_id, "queued", 1))
    sub.cursor = hub.last_seq  # the page has read t01..t03 over REST
    sub.view = View(frozenset({"t01"}), newest=2, after_id="t03")
    hub.publish(task_state("t01", "running", 2))   # on the page
    hub.publish(task_state("t02", "running", 2))   # not on the page, not new
    for task_id in ("t04", "t05", "t06"):            # new: only the newest two matter
        hub.publish(task_state(task_id, "queued", 3))
    hub.publish_counts({"queued": 5})
    got = [json.loads(m) for m in await sub.next_batch()]
    tasks = {(m["task"]["id"], m["task"]["status"]) for m in got if m["type"] == "task"}
    assert tasks == {("t01", "running"), ("t05", "queued"), ("t06", "queued")}
    assert any(m["type"] == "counts" for m in got)
    sub.show(View(frozenset({"t01", "t02"}), newest=2, after_id="t03"))  # t02 joins the page: its latest state
    replayed = [json.loads(m) for m in await sub.next_batch()]
    assert [(m["task"]["id"], m["task"]["status"]) for m in replayed] == [("t02", "running")]


@pytest.mark.gen_test
async def test_a_new_view_wakes_its_reader_with_each_new_row_once():
    from jobqueue.events import View

    hub = EventHub()
    sub = hub.subscribe()
    hub.publish(task_state("old", "completed", 1))
    sub.cursor = hub.last_seq  # the page read "old" over REST, then the reader waits for changes
    reader = asyncio.ensure_future(sub.next_batch())
    await asyncio.sleep(0)
    assert not reader.done()
    sub.show(View(frozenset({"old"})))  # no change in the log: the view alone must wake the reader
    got = [json.loads(m)["task"] for m in await asyncio.wait_for(reader, 5)]
    assert [(t["id"], t["status"]) for t in got] == [("old", "completed")]
    hub.publish(task_state("new", "queued", 2))
    sub.show(View(frozenset({"old", "new"})))  # "new" changed after the cursor: sent once, not replayed too
    got = [json.loads(m)["task"]["id"] for m in await asyncio.wait_for(sub.next_batch(), 5)]
    assert got == ["new"]


@pytest.mark.gen_test
async def test_websocket_view_narrows_the_stream_and_replays_new_rows(jq, api, target):
    conn = await websocket_connect(f"ws://127.0.0.1:{jq.port}{API}/events")
    await conn.read_message()
    watched = await api.submit(target.url("/page/w?delay=0.3"))
    other = await api.submit(target.url("/page/o?delay=0.3"))
    conn.write_message(json.dumps({"type": "view", "task_ids": [watched["id"]], "newest": 0,
                                   "after_id": other["id"], "status": None}))
    other_states: list[str] = []
    end = time.monotonic() + 15

    async def read_until_completed(task_id: str) -> dict:
        """Read tasks until `task_id` completes, noting what arrives about `other` meanwhile."""
        while True:
            event = json.loads(await asyncio.wait_for(conn.read_message(), max(end - time.monotonic(), 0.01)))
            if event["type"] != "task":
                continue
            if event["task"]["id"] == other["id"]:
                other_states.append(event["task"]["status"])
            if event["task"]["id"] == task_id and event["task"]["status"] == "completed":
                return event["task"]

    await read_until_completed(watched["id"])
    await api.wait_finished(other["id"])
    marker = await api.submit(target.url("/page/m"))  # its events come after any of other's
    conn.write_message(json.dumps({"type": "view", "task_ids": [watched["id"], marker["id"]], "newest": 0,
                                   "after_id": marker["id"], "status": None}))
    await read_until_completed(marker["id"])
    assert "completed" not in other_states  # outside the view: its later states were not sent
    conn.write_message(json.dumps({"type": "view", "task_ids": [watched["id"], other["id"]], "newest": 0,
                                   "after_id": marker["id"], "status": None}))
    replayed = await read_until_completed(other["id"])  # the row new to the view arrives at once
    assert replayed["status"] == "completed"
    conn.close()


@pytest.mark.gen_test(timeout=30)
async def test_stopping_the_server_ends_its_event_streams(make_server):
    server = await make_server()
    stream = await websocket_connect(f"ws://127.0.0.1:{server.port}{API}/events")
    assert json.loads(await stream.read_message())["type"] == "hello"
    await server.stop()
    assert await stream.read_message() is None  # closed by the server, not left hanging
    assert stream.close_code == 1001


@pytest.mark.gen_test
async def test_changes_the_feed_lost_make_every_reader_resync_and_later_ones_start_clean():
    hub = EventHub()
    caught_up, behind = hub.subscribe(), hub.subscribe()
    hub.publish(task_state("a", "queued", 1))
    await caught_up.next_batch()
    hub.lost_changes()  # the change log was pruned past this process's position: states are missing
    assert json.loads((await caught_up.next_batch())[0])["type"] == "resync"
    assert json.loads((await behind.next_batch())[0])["type"] == "resync"
    fresh = hub.subscribe()
    hub.publish(task_state("a", "running", 2))
    for sub in (caught_up, behind, fresh):
        assert [json.loads(m)["task"]["status"] for m in await sub.next_batch()] == ["running"]


UPGRADE = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
           "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}


@pytest.mark.gen_test
async def test_a_parameter_the_stream_does_not_read_is_refused_before_the_upgrade(jq, api):
    from tornado.httpclient import HTTPClientError

    with pytest.raises(HTTPClientError) as info:  # a typo would have streamed every job instead of one
        await websocket_connect(f"ws://127.0.0.1:{jq.port}{API}/events?taks_id=abc")
    assert info.value.code == 400
    code, body = await api.call("GET", f"{API}/events?taks_id=abc", headers=UPGRADE)
    assert (code, body["error"]["code"]) == (400, "unknown_parameter")
    assert "'taks_id' (did you mean 'task_id'?); it takes batch, task_id, token" in body["error"]["message"]
    code, body = await api.call("GET", f"{API}/events?task_id=%FF", headers=UPGRADE)
    assert (code, body["error"]["code"]) == (400, "invalid_parameter")


@pytest.mark.gen_test
async def test_the_parameters_the_dashboard_and_the_client_send_are_read(jq, api, target):
    from jobqueue.client.http import query_string

    task = await api.submit(target.url("/page/p?delay=0.2"))
    streams = [await connect(jq, "?batch=1&token=anything"),  # static/api.js eventsUrl (a token server ignores)
               await connect(jq, query_string({"task_id": [task["id"], "other"]}))]  # jobqueue/client/stream.py
    statuses = await read_task_events(streams[1], task["id"], "completed")
    assert statuses[-1] == "completed"
    for stream in streams:
        stream.close()


@pytest.mark.gen_test
async def test_from_a_log_in_commit_order_a_state_stamped_earlier_but_committed_later_is_the_latest():
    hub = EventHub()
    reader = hub.subscribe()
    hub.accept(task_state("a", "queued", 1), in_commit_order=True)
    hub.accept(task_state("a", "running", 3), in_commit_order=True)  # a claim stamped at 3 commits first...
    hub.accept(task_state("a", "cancelled", 2), in_commit_order=True)  # ...then a cancel stamped at 2
    hub.accept(task_state("a", "running", 3))  # the claim's own process recording it again: a repeat
    hub.accept(task_state("b", "running", 3))  # recorded directly (a feed that failed): where is unknown...
    hub.accept(task_state("b", "queued", 2), in_commit_order=True)  # ...so stamps decide, as before
    hub.publish_deleted("a")
    hub.accept(task_state("a", "completed", 9), in_commit_order=True)  # nothing of a deleted job
    hub.publish_deleted("a")  # the deleting process's own feed bringing it again: once is enough
    got = [json.loads(m) for m in await reader.next_batch()]
    assert [(m["task"]["id"], m["task"]["status"]) if m["type"] == "task" else (m["task_id"], m["type"])
            for m in got] == [("a", "queued"), ("a", "running"), ("a", "cancelled"), ("b", "running"),
                              ("a", "task.deleted")]


@pytest.mark.gen_test(timeout=30)
async def test_a_cancel_racing_a_claim_in_another_process_shows_as_the_jobs_state(tmp_path):
    """SQLite: a cancel stamped before a claim that committed first ends the job cancelled; every process's
    clients must end on `cancelled` too, not on the claim's `running`."""
    from jobqueue import peer_sync
    from jobqueue.store.sqlite.store import SQLiteStore
    from tests.store_backends import FakeClock
    from tests.test_store_contract import LEASE, new_tasks

    clock = FakeClock()
    path = str(tmp_path / "shared.db")
    claimer, canceller, mine = (SQLiteStore(path, synchronous="NORMAL", clock=clock) for _ in range(3))
    for store in (claimer, canceller, mine):
        await store.open()
    hub = EventHub()
    reader = hub.subscribe()
    follower = asyncio.ensure_future(peer_sync.follow_log(mine, hub, interval=0.02))
    try:
        await asyncio.sleep(0.1)  # the follower has taken its position
        [task] = await claimer.add(new_tasks(1))
        clock.advance(2)
        [claimed] = await claimer.claim(1, LEASE, [])  # stamped at +2, committed first
        clock.advance(-1)
        cancelled = await canceller.cancel(task.id)  # stamped at +1 (taken before the claim committed)
        assert (await mine.get(task.id)).status == "cancelled"
        statuses: list[str] = []
        end = time.monotonic() + 10
        while statuses[-1:] != ["cancelled"]:
            try:
                got = await asyncio.wait_for(reader.next_batch(), max(end - time.monotonic(), 0.01))
            except TimeoutError:
                raise AssertionError(f"the reader saw {statuses}: the job's state is cancelled") from None
            statuses += [json.loads(m)["task"]["status"] for m in got]
        assert statuses == ["queued", "running", "cancelled"]
        assert cancelled.updated_at < claimed.updated_at
    finally:
        follower.cancel()
        await asyncio.gather(follower, return_exceptions=True)
        for store in (claimer, canceller, mine):
            await store.close()


@pytest.mark.gen_test(timeout=30)
async def test_an_own_state_committed_before_the_feed_took_its_position_reaches_the_first_listener():
    """The feed keeps only its position while nobody listens. A listener can arrive during that read and the
    process then holds its own state of a job committed just before it: the log read on from the position does
    not bring that state, so the feed must record the held state itself, not take it for a repeat."""
    from jobqueue import peer_sync
    from jobqueue.store.records import ChangePage

    hub = EventHub()
    loop = asyncio.get_running_loop()
    state = task_state("a", "completed", 5)
    listeners: list = []
    positioned = 0

    class Log:
        async def changes_after(self, position, limit):
            nonlocal positioned
            if position is None:
                positioned += 1
                if positioned == 2:  # the loop's read of the newest position, while nobody listens
                    listeners.append(hub.subscribe())  # someone connects meanwhile...
                    loop.call_soon(hub.publish, state)  # ...and the state, committed before it, is held late
                return ChangePage(position=1 if positioned >= 2 else 0, commit_order=True)
            return ChangePage(position=position, commit_order=True)  # the log after 1: nothing new

    follower = asyncio.ensure_future(peer_sync.follow_log(Log(), hub, interval=0.02))
    try:
        deadline = time.monotonic() + 5
        while not listeners:
            assert time.monotonic() < deadline, "the feed never read its position again"
            await asyncio.sleep(0.01)
        got = await asyncio.wait_for(listeners[0].next_batch(), 5)
        assert [json.loads(m)["task"]["status"] for m in got] == ["completed"]
    finally:
        follower.cancel()
        await asyncio.gather(follower, return_exceptions=True)


@pytest.mark.gen_test
async def test_a_job_waited_for_is_told_its_own_finish_at_once_while_the_feed_holds_it():
    """A synchronous request waits for its job's finish, not for its place among other states: while the change
    feed holds this process's states to order them (20 ms and more), the finish must reach the waiter at once."""
    hub = EventHub()
    held: list[Task] = []
    hub.hold = held.append
    listener = hub.subscribe()
    watcher = hub.watch_finish("a")
    other = hub.watch_finish("b")
    hub.publish(task_state("a", "running", 1))
    assert not watcher.done() and held  # not finished yet
    hub.publish(task_state("a", "completed", 2))
    assert watcher.done() and watcher.result().status == "completed"
    assert [t.status for t in held] == ["running", "completed"]  # still held for the ordered stream
    hub.accept(task_state("b", "failed", 3), in_commit_order=True)  # another process's finish, from the feed
    assert other.done() and other.result().status == "failed"
    late = hub.watch_finish("c")
    hub.unwatch_finish("c", late)
    hub.unwatch_finish("a", watcher)
    assert hub._finish_watchers == {}  # nothing kept for jobs no one waits for
    hub.unsubscribe(listener)
