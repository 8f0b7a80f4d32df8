"""History served by a real server: url.changed webhooks of recurring fetches, purge, retention at start."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from tornado.websocket import websocket_connect

from tests.helpers import API, Api, wait_for
from tests.test_history import site  # noqa: F401  (a page whose text the test changes)
from tests.test_webhooks import FAST, SECRET, receiver  # noqa: F401  (the receiver fixture)


@pytest.mark.gen_test(timeout=60)
async def test_a_recurring_page_that_changes_sends_url_changed_with_the_previous_run(make_server, site, receiver):  # noqa: F811
    server = await make_server(webhook_secret=SECRET, webhook_retry_delays=FAST, min_every=0.2,
                               webhook_url=receiver.url("all"))
    api = Api(f"http://127.0.0.1:{server.port}")
    stream = await websocket_connect(f"ws://127.0.0.1:{server.port}{API}/events")
    try:
        assert json.loads(await stream.read_message())["type"] == "hello"
        code, body = await api.call("POST", f"{API}/queue_tasks", {"url": site.url, "every": 0.2})
        assert code == 201, body
        schedule_id = body["task"]["schedule_id"]

        async def completed_runs() -> list[dict] | None:
            code, page = await api.call("GET", f"{API}/history?url={site.url}")
            return page["results"] if code == 200 and len(page["results"]) >= 2 else None

        before = await wait_for(completed_runs, 20, "two runs of the unchanged page")
        assert before[0]["changed"] is False
        site.body = "line one\nline 2\n"

        async def changes() -> list | None:
            found = [r.json for r in receiver.got("all") if r.json["type"] == "url.changed"]
            return found or None

        [change, *_] = await wait_for(changes, 20, "a url.changed delivery")
        task = change["data"]["task"]
        assert task["schedule_id"] == schedule_id and task["status"] == "completed"
        code, diff = await api.call("GET", f"{API}/results/{task['id']}/diff?against={change['data']['previous_id']}")
        assert code == 200 and "-line two\n+line 2\n" in diff["diff"], diff
        end = time.monotonic() + 20
        while True:  # the same change, live on the websocket
            message = json.loads(await asyncio.wait_for(stream.read_message(), max(end - time.monotonic(), 0.01)))
            if message["type"] == "url.changed":
                break
        assert (message["task"]["id"], message["previous_id"]) == (task["id"], change["data"]["previous_id"])
        code, stopped = await api.call("DELETE", f"{API}/schedules/{schedule_id}")
        assert code == 200 and stopped["schedule"]["active"] is False
    finally:
        stream.close()
        api.close()


@pytest.mark.gen_test(timeout=60)
async def test_purge_deletes_a_finished_job_for_good_and_refuses_the_rest_clearly(make_server, site):  # noqa: F811
    server = await make_server()
    api = Api(f"http://127.0.0.1:{server.port}")
    try:
        code, body = await api.call("POST", f"{API}/queue_tasks", {"url": site.url})
        done = await api.wait_finished(body["task"]["id"])
        code, later = await api.call("POST", f"{API}/queue_tasks", {"url": site.url, "priority": -10,
                                                                   "not_before": _in_a_month()})
        assert code == 201, later
        for path, status, error in [(f"/queue_tasks/{done['id']}?purge=maybe", 400, "invalid_purge"),
                                    (f"/queue_tasks/{later['task']['id']}?purge=true", 409, "conflict"),
                                    ("/queue_tasks/nosuchjob?purge=true", 404, "not_found")]:
            code, answer = await api.call("DELETE", API + path)
            assert (code, answer["error"]["code"]) == (status, error), (path, answer)
        code, answer = await api.call("DELETE", f"{API}/queue_tasks/{done['id']}?purge=true")
        assert (code, answer) == (200, {"deleted": done["id"]})
        assert (await api.call("GET", f"{API}/queue_tasks/{done['id']}"))[0] == 404
        assert (await api.call("GET", f"{API}/results/{done['id']}"))[0] == 404
        code, storage = await api.call("GET", f"{API}/stats/storage")
        assert code == 200 and storage["results"] == 0 and storage["distinct_bodies"] == 0, storage
        assert (await api.task(later["task"]["id"]))["status"] == "queued"  # untouched
    finally:
        api.close()


def _in_a_month() -> str:
    import datetime

    return (datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.gen_test(timeout=60)
async def test_retention_deletes_expired_jobs_keeping_the_newest_per_url(make_server, site):  # noqa: F811
    first = await make_server()
    api = Api(f"http://127.0.0.1:{first.port}")
    try:
        ids = []
        for _ in range(2):
            _code, body = await api.call("POST", f"{API}/queue_tasks", {"url": site.url})
            ids.append((await api.wait_finished(body["task"]["id"]))["id"])
        # a second process on the same file, keeping finished jobs for a microsecond but one result per URL
        second = await make_server(retention_days=1e-11, keep_per_url=1)
        other = Api(f"http://127.0.0.1:{second.port}")

        async def older_gone() -> bool:
            return (await other.call("GET", f"{API}/queue_tasks/{ids[0]}"))[0] == 404

        await wait_for(older_gone, 20, "the older job deleted by retention")
        assert (await other.task(ids[1]))["status"] == "completed"
        other.close()
    finally:
        api.close()
