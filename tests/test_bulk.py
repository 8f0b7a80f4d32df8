"""Acting on many jobs: cancel, retry or delete by filter, in chunks, each change announced."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import pytest
from tornado.websocket import websocket_connect

import jobqueue.bulk as bulk
from tests.helpers import API, wait_for


async def post_bulk(api, payload):
    return await api.call("POST", f"{API}/queue_tasks/bulk", payload)


@pytest.mark.gen_test(timeout=60)
async def test_retry_all_failed_matching_a_filter_then_delete_finished(api, target, monkeypatch):
    monkeypatch.setattr(bulk, "CHUNK", 3)  # several chunks, so paging while changing is exercised
    bad = await api.submit_many([f"http://127.0.0.1:9/refused/{i}" for i in range(7)])
    good = await api.submit_many([target.url(f"/page/{i}") for i in range(4)])
    for task in bad + good:
        await api.wait_finished(task["id"])
    code, body = await post_bulk(api, {"action": "retry", "filter": {"status": "failed", "host": "127.0.0.1"}})
    assert code == 200 and {k: body[k] for k in ("action", "matched", "changed")} == {
        "action": "retry", "matched": 7, "changed": 7}
    assert len(body["changed_ids"]) == 7
    for task in bad:
        again = await api.wait_finished(task["id"])
        assert again["status"] == "failed" and again["attempts"] >= 1
    for task in good:  # not in the filter
        assert (await api.task(task["id"]))["status"] == "completed"
    code, body = await post_bulk(api, {"action": "delete", "filter": {"status": "failed"}})
    assert body["matched"] == 7 and body["changed"] == 7
    code, _ = await api.call("GET", f"{API}/queue_tasks/{bad[0]['id']}")
    assert code == 404
    assert (await api.counts())["failed"] == 0 and (await api.counts())["completed"] == 4
    code, _ = await api.call("GET", f"{API}/results/{good[0]['id']}")
    assert code == 200


@pytest.mark.gen_test(timeout=60)
async def test_cancel_all_queued_announces_each_job_and_leaves_finished_ones(jq, api, target):
    later = datetime.fromtimestamp(time.time() + 86400, UTC).isoformat()
    stream = await websocket_connect(f"ws://127.0.0.1:{jq.port}{API}/events")
    code, made = await api.call("POST", f"{API}/queue_tasks", {
        "urls": [target.url(f"/page/{i}") for i in range(5)], "not_before": later})
    done = await api.submit(target.url("/utf8"))
    await api.wait_finished(done["id"])
    code, body = await post_bulk(api, {"action": "cancel", "filter": {"all": True}})
    assert code == 200 and body["matched"] == 5 and body["changed"] == 5
    assert (await api.task(done["id"]))["status"] == "completed"
    wanted = {t["id"] for t in made["tasks"]}
    seen = set()

    async def cancelled_seen():
        while wanted - seen:
            message = json.loads(await stream.read_message())
            for item in message.get("messages", [message]):
                if item.get("type") == "task" and item["task"]["status"] == "cancelled":
                    seen.add(item["task"]["id"])
        return True

    assert await wait_for(cancelled_seen, 10, "a cancelled event per job")
    stream.close()


@pytest.mark.gen_test(timeout=30)
async def test_bad_bulk_requests_are_refused_and_change_nothing(api, target):
    task = await api.submit(target.url("/utf8"))
    await api.wait_finished(task["id"])
    cases = [({"action": "retry", "filter": {}}, "empty_filter"), ({"action": "retry"}, "empty_filter"),
             ({"action": "explode", "filter": {"all": True}}, "invalid_field"),
             ({"action": "retry", "filter": {"all": False}}, "invalid_field"),
             ({"action": "retry", "filter": {"all": True, "status": "failed"}}, "invalid_field"),
             ({"action": "retry", "filter": {"colour": "red"}}, "unknown_field"),
             ({"action": "retry", "filter": {"status": "done"}}, "invalid_status"),
             ({"action": "retry", "filter": {"host": ["a"]}}, "invalid_filter"),
             ([1, 2], "invalid_request")]
    for payload, word in cases:
        code, body = await post_bulk(api, payload)
        assert code == 400 and body["error"]["code"] == word, (payload, body)
    assert (await api.task(task["id"]))["status"] == "completed"
