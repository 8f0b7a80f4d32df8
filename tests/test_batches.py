"""Batches through the real server: text/plain and JSON, every line checked first, counts, cancel, retry."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from tornado.websocket import websocket_connect

from tests.helpers import API, Api, wait_for


async def post_batch(api: Api, body: str | dict, query: str = "", headers: dict | None = None) -> tuple[int, dict]:
    if isinstance(body, dict):
        body, kind = json.dumps(body), "application/json"
    else:
        kind = "text/plain"
    response = await api.raw("POST", f"{API}/batches{query}", body, {"Content-Type": kind, **(headers or {})})
    return response.code, json.loads(response.body)


async def batch_of(api: Api, batch_id: str) -> dict:
    code, body = await api.call("GET", f"{API}/batches/{batch_id}")
    assert code == 200, body
    return body["batch"]


@pytest.mark.gen_test(timeout=60)
async def test_a_text_batch_takes_spec_fields_from_the_query_and_finishes(api, target):
    lines = "\n".join(target.url(f"/page/b{i}") for i in range(30)) + "\n# the end\n"
    response = await api.raw("POST", f"{API}/batches?tag=nightly&tag=site:a&priority=2", lines,
                             {"Content-Type": "text/plain"})
    assert response.code == 201, response.body
    batch = json.loads(response.body)["batch"]
    assert response.headers["Location"] == f"{API}/batches/{batch['id']}"
    assert batch["total"] == 30 and batch["tags"] == ["nightly", "site:a"] and batch["finished_at"] is None

    async def finished() -> dict | None:
        current = await batch_of(api, batch["id"])
        return current if current["finished_at"] else None

    done = await wait_for(finished, 30, "the batch to finish")
    assert done["counts"] == {"queued": 0, "running": 0, "completed": 30, "failed": 0, "cancelled": 0}
    code, page = await api.call("GET", f"{API}/queue_tasks?batch={batch['id']}&limit=20")
    assert code == 200 and len(page["tasks"]) == 20 and page["next"]
    assert all(t["batch_id"] == batch["id"] and t["priority"] == 2 and t["tags"] == ["nightly", "site:a"]
               for t in page["tasks"])
    code, rest = await api.call("GET", f"{API}/queue_tasks?cursor={page['next']}")
    assert len(rest["tasks"]) == 10 and rest["next"] is None
    code, listing = await api.call("GET", f"{API}/batches")
    assert code == 200 and listing["batches"][0]["id"] == batch["id"]


@pytest.mark.gen_test(timeout=60)
async def test_one_bad_line_refuses_the_whole_batch_naming_it(api, target):
    before = await api.counts()
    lines = [target.url(f"/page/x{i}") for i in range(10)]
    lines.insert(6, "ftp://example.com/file")
    code, body = await post_batch(api, "\n".join(lines))
    assert code == 400 and body["error"]["code"] == "unsupported_scheme"
    assert body["error"]["message"].startswith("line 7 ('ftp://example.com/file')")
    code, body = await post_batch(api, "\n".join(lines[:3]), "?priority=11")
    assert code == 400 and "priority" in body["error"]["message"]
    code, body = await post_batch(api, {"urls": [target.url("/a"), 7]})
    assert code == 400 and body["error"]["message"].startswith("urls[1]")
    assert await api.counts() == before
    _code, listing = await api.call("GET", f"{API}/batches")
    assert listing["batches"] == []


@pytest.mark.gen_test(timeout=60)
async def test_cancelling_a_batch_stops_its_unfinished_jobs_and_retry_queues_its_failed_ones(make_server, target):
    server = await make_server(workers=2, per_host=2, max_attempts=1)
    api = Api(f"http://127.0.0.1:{server.port}")
    try:
        jobs = [{"url": target.url(f"/slow?delay=5&n={i}")} for i in range(6)]
        code, created = await post_batch(api, {"jobs": jobs})
        assert code == 201
        batch_id = created["batch"]["id"]
        code, cancelled = await api.call("DELETE", f"{API}/batches/{batch_id}")
        assert code == 200 and cancelled["batch"]["counts"]["cancelled"] == 6
        assert cancelled["batch"]["finished_at"] is not None
        code, failing = await post_batch(api, {"urls": [target.url("/status/404"), "http://127.0.0.1:9/"]})
        failed_id = failing["batch"]["id"]

        async def settled() -> dict | None:
            current = await batch_of(api, failed_id)
            return current if current["finished_at"] else None

        done = await wait_for(settled, 20, "the failing batch to finish")
        assert done["counts"]["failed"] == 1 and done["counts"]["completed"] == 1
        code, retried = await api.call("POST", f"{API}/batches/{failed_id}/retry")
        assert code == 200 and retried["batch"]["finished_at"] is None
        assert retried["batch"]["counts"]["failed"] == 0
        assert (await wait_for(settled, 20, "the retried batch to finish"))["counts"]["failed"] == 1
        for path in (f"{API}/batches/nope", f"{API}/batches/nope/retry"):
            code, body = await api.call("POST" if path.endswith("retry") else "GET", path)
            assert code == 404 and body["error"]["message"] == "no batch has the id nope"
    finally:
        api.close()


@pytest.mark.gen_test(timeout=60)
async def test_a_keyed_batch_is_created_once(api, target):
    lines = "\n".join(target.url(f"/page/k{i}") for i in range(5))
    key = {"Idempotency-Key": "nightly-2026-11-28"}
    code, first = await post_batch(api, lines, headers=key)
    code2, second = await post_batch(api, lines, headers=key)
    assert code == code2 == 201 and first == second
    code, other = await post_batch(api, lines + "\n" + target.url("/page/k9"), headers=key)
    assert code == 422 and other["error"]["code"] == "idempotency_key_reused"
    _code, listing = await api.call("GET", f"{API}/batches")
    assert len(listing["batches"]) == 1


@pytest.mark.gen_test(timeout=60)
async def test_the_websocket_sends_coalesced_progress_and_one_finished_message_per_batch(jq, api, target):
    conn = await websocket_connect(f"ws://127.0.0.1:{jq.port}{API}/events")
    assert json.loads(await conn.read_message())["type"] == "hello"
    code, created = await post_batch(api, "\n".join(target.url(f"/page/w{i}") for i in range(40)))
    assert code == 201
    batch_id = created["batch"]["id"]
    progress, finished, tasks = [], [], 0
    end = time.monotonic() + 30
    while not finished:
        assert time.monotonic() < end, f"no batch.finished; {len(progress)} progress messages"
        event = json.loads(await asyncio.wait_for(conn.read_message(), end - time.monotonic()))
        if event["type"] == "task" and event["task"]["batch_id"] == batch_id:
            tasks += 1
        elif event["type"] == "batch.progress" and event["batch"]["id"] == batch_id:
            progress.append(event["batch"])
        elif event["type"] == "batch.finished" and event["batch"]["id"] == batch_id:
            finished.append(event["batch"])
    assert finished[0]["counts"]["completed"] == 40 and finished[0]["finished_at"] is not None
    assert 1 <= len(progress) < tasks  # coalesced: fewer progress messages than job changes
    done = [p["counts"]["completed"] for p in progress]
    assert done == sorted(done)
    await api.call("GET", f"{API}/batches/{batch_id}")  # nothing changes: no second finished message
    with pytest.raises(asyncio.TimeoutError):
        while True:
            event = json.loads(await asyncio.wait_for(conn.read_message(), 1.0))
            assert event["type"] != "batch.finished", event
    conn.close()


@pytest.mark.gen_test(timeout=60)
async def test_more_than_100000_lines_is_refused_naming_the_first_line_over(api):
    lines = "\n".join(f"example.com/{i}" for i in range(100_001))
    code, body = await post_batch(api, lines)
    assert code == 400 and body["error"]["code"] == "batch_too_large"
    assert "more than 100000" in body["error"]["message"] and "line 100001" in body["error"]["message"]
    assert (await api.counts())["queued"] == 0


class FailingThirdAdd:
    """A real SQLite store whose third add() fails, as a database that breaks in the middle of a batch."""

    def __init__(self, store):
        self._store = store
        self.adds = 0

    def __getattr__(self, name):
        return getattr(self._store, name)

    async def add(self, *args, **kwargs):
        self.adds += 1
        if self.adds == 3:
            from jobqueue.store.base import StoreError

            raise StoreError("the disk went away (injected)")
        return await self._store.add(*args, **kwargs)


@pytest.mark.gen_test(timeout=60)
async def test_a_batch_that_fails_while_stored_leaves_nothing_behind(tmp_path, target):
    from jobqueue.store.sqlite.store import SQLiteStore
    from server import JobQueueServer
    from tests.conftest import test_settings

    settings = test_settings(tmp_path)
    store = FailingThirdAdd(SQLiteStore(str(tmp_path / "fail.db")))
    server = JobQueueServer(settings, store=store)
    await server.start()
    api = Api(f"http://127.0.0.1:{server.port}")
    try:
        lines = "\n".join(target.url(f"/page/f{i}?delay=0.5") for i in range(5000))  # three chunks
        code, body = await post_batch(api, lines, headers={"Idempotency-Key": "half-done"})
        assert code == 503 and body["error"]["code"] == "database_unavailable"
        counts = await api.counts()
        assert sum(counts.values()) == 0, counts  # the first two chunks were removed at once
        _code, listing = await api.call("GET", f"{API}/batches")
        assert listing["batches"] == []
        code, again = await post_batch(api, "\n".join(target.url(f"/page/g{i}") for i in range(3)),
                                       headers={"Idempotency-Key": "half-done"})
        assert code == 201 and again["batch"]["total"] == 3  # the failed request kept nothing, not even its key
    finally:
        api.close()
        await server.stop()


@pytest.mark.gen_test(timeout=60)
async def test_concurrent_requests_with_one_key_create_once(api, target):
    body = json.dumps({"urls": [target.url(f"/page/c{i}") for i in range(50)]})
    headers = {"Content-Type": "application/json", "Idempotency-Key": "same-key-at-once"}
    responses = await asyncio.gather(*(api.raw("POST", f"{API}/queue_tasks", body, headers) for _ in range(6)))
    codes = sorted(r.code for r in responses)
    assert set(codes) <= {201, 409} and 201 in codes
    created = {tuple(t["id"] for t in json.loads(r.body)["tasks"]) for r in responses if r.code == 201}
    assert len(created) == 1  # every 201 carries the same jobs
    assert sum((await api.counts()).values()) == 50
