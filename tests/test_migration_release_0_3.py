"""A database written by release 0.3 (schema 7) opens with today's code and keeps every job, result,
body, batch and schedule, and its work goes on (fixtures/make_v7_db.py)."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import time

import pytest

from jobqueue.models import Result, TaskIds
from jobqueue.render.options import parse_render
from jobqueue.spec import JobSpec, iso_seconds
from jobqueue.store.base import Lease, NewTask
from jobqueue.store.sqlite.migrations import LATEST, current_version
from jobqueue.store.sqlite.store import SQLiteStore
from tests.helpers import API, Api

DUMP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "schema-v7.sql")
WRITTEN_AT = 1_700_000_000.0  # the release-0.3 store's clock when it wrote the fixture


def v7_db(tmp_path) -> str:
    """A database file the release-0.3 store wrote."""
    path = os.path.join(str(tmp_path), "v7.db")
    conn = sqlite3.connect(path)
    conn.executescript(open(DUMP).read())
    assert current_version(conn) == 7
    conn.close()
    return path


@pytest.mark.gen_test
async def test_a_release_0_3_database_keeps_its_jobs_results_and_schedules(tmp_path):
    path = v7_db(tmp_path)
    store = SQLiteStore(path, clock=lambda: WRITTEN_AT + 7200)
    await store.open()
    try:
        conn = sqlite3.connect(path)
        assert current_version(conn) == LATEST
        conn.close()
        counts = await store.counts()
        assert counts == {"queued": 5, "running": 1, "completed": 3, "failed": 1, "cancelled": 1}  # +1: migration 11
        results = {r.url: r for r in (await store.list_results(10, None)).items}
        assert sorted(results) == ["https://a.example/0", "https://a.example/1", "https://s.example/watched"]
        body = (await store.get_result(results["https://a.example/1"].id, with_body=True)).body
        assert body.startswith(b"<html><body><p>the same page on two addresses")
        schedules = {s.url: s for s in (await store.list_schedules(10, None)).items}
        assert sorted(schedules) == ["https://c.example/stopped", "https://s.example/watched"]
        batch = (await store.list_batches(10, None)).items[0]
        assert batch.total == 2 and batch.tags == ("nightly",)

        # the work goes on: the expired lease, the due schedule run and the queued jobs are all claimed (the run
        # migration 11 queued is due in the real clock's future)
        claimed = await store.claim(10, 30.0, [])
        assert sorted(t.url for t in claimed) == ["https://b.example/0", "https://b.example/1",
                                                  "https://d.example/later", "https://r.example/slow",
                                                  "https://s.example/watched"]
        slow = next(t for t in claimed if t.url == "https://r.example/slow")
        page = b"<html><p>finished after the upgrade</p></html>"
        done = await store.complete(Lease(slow.id, slow.lease_token), Result(
            id=slow.id, url=slow.url, final_url=slow.url, http_status=200, headers={"content-type": "text/html"},
            content_type="text/html", encoding="utf-8", encoding_source="header", size=len(page), truncated=False,
            elapsed_ms=2.0, fetched_at=WRITTEN_AT + 7200, sha256=hashlib.sha256(page).hexdigest(),
            body=page))
        assert done is not None and done.status == "completed"
        assert (await store.counts())["completed"] == 4

        # migration 12: a rendered job is stored and claimed beside the old ones, by its own claim only, and a
        # result of release 0.3 is still deleted with its body under the rewritten triggers
        rendered = NewTask(TaskIds().new(), "https://r.example/app", "r.example",
                           JobSpec(render=parse_render(True), capture=("pdf",)))
        await store.add([rendered])
        assert await store.claim(10, 30.0, []) == []
        (claimed_render,) = await store.claim(10, 30.0, [], rendered=True)
        assert claimed_render.id == rendered.id and claimed_render.render.capture == ("pdf",)
        before = await store.storage_stats()
        old = results["https://a.example/0"].id
        assert await store.delete_many([old]) == [old]
        after = await store.storage_stats()
        assert after["results"] == before["results"] - 1 and after["body_bytes"] < before["body_bytes"]

        # migration 13: a body of release 0.3 is keyed by its result's sha256; its views are kept, and go with it
        conn = sqlite3.connect(path)
        assert conn.execute("SELECT name FROM sqlite_master WHERE name IN ('body_views', 'bodies_drop_views')"
                            " ORDER BY name").fetchall() == [("bodies_drop_views",), ("body_views",)]
        conn.close()
        kept = results["https://a.example/1"]
        await store.put_views(kept.sha256, 1, '{"markdown": "the same page"}')
        assert await store.get_views(kept.sha256, 1) == '{"markdown": "the same page"}'
        assert await store.delete_many([kept.id]) == [kept.id]
        assert await store.get_views(kept.sha256, 1) is None
    finally:
        await store.close()


@pytest.mark.gen_test
async def test_a_schedule_release_0_3_stopped_silently_gets_its_next_run_on_the_grid(tmp_path):
    path = v7_db(tmp_path)
    conn = sqlite3.connect(path)
    [(schedule_id, first_due, every, cancelled)] = conn.execute(
        "SELECT s.id, j.due_at, s.every, j.id FROM schedules s JOIN jobs j ON j.id = s.next_task_id"
        " WHERE j.status = 'cancelled' AND s.stopped_at IS NULL").fetchall()  # what 0.3's cancel_many left
    assert conn.execute("SELECT COUNT(*) FROM jobs WHERE schedule_id = ? AND status = 'queued'",
                        (schedule_id,)).fetchone() == (0,)
    conn.close()
    before = time.time()
    store = SQLiteStore(path, clock=lambda: WRITTEN_AT + 7200)
    await store.open()
    try:
        after = time.time()
        schedule = await store.get_schedule(schedule_id)
        assert schedule.stopped_at is None and schedule.runs == 1  # the cancelled run counts, as a cancel does now
        run = await store.get(schedule.next_task_id)
        assert run.status == "queued" and run.schedule_id == schedule_id and run.url == "https://c.example/stopped"
        assert run.every == every and run.batch_id is None
        steps = (run.available_at - first_due) / every  # a run is available at its due time
        assert steps == int(steps) and before < run.available_at <= after + every  # the grid's next due time
        assert schedule.next_run_at == run.available_at
        assert (await store.get(cancelled)).status == "cancelled"
        others = (await store.get_schedule(next(s.id for s in (await store.list_schedules(10, None)).items
                                                if s.id != schedule_id)))
        assert others.runs == 1 and (await store.get(others.next_task_id)).status == "queued"  # untouched
    finally:
        await store.close()
    store = SQLiteStore(path, clock=lambda: WRITTEN_AT + 7200)
    await store.open()  # opened again: the repair ran once, with the migration
    try:
        assert (await store.counts())["queued"] == 5
    finally:
        await store.close()


@pytest.mark.gen_test(timeout=60)
async def test_the_server_on_a_release_0_3_file_shows_the_stopped_schedule_running_again(make_server, tmp_path):
    path = v7_db(tmp_path)
    server = await make_server(database=f"sqlite:///{path}")
    await server.pool.stop()  # nothing off this machine is fetched
    api = Api(f"http://127.0.0.1:{server.port}")
    try:
        code, body = await api.call("GET", f"{API}/schedules")
        assert code == 200, body
        [stopped] = [s for s in body["schedules"] if s["url"] == "https://c.example/stopped"]
        assert stopped["active"] and stopped["runs"] == 1 and stopped["next_run_at"] is not None, stopped
        assert iso_seconds(stopped["next_run_at"]) > time.time()
        task = await api.task(stopped["next_task_id"])
        assert task["status"] == "queued" and task["url"] == "https://c.example/stopped", task
    finally:
        api.close()
