"""Jobs with options, through the real server and a real target: fetch settings, profiles, priority,
scheduling, freshness reuse and idempotency keys."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time

import pytest

from jobqueue.models import iso
from tests.helpers import API, Api, wait_for

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


async def submit(api: Api, payload: dict, headers: dict | None = None) -> tuple[int, dict]:
    response = await api.raw("POST", f"{API}/queue_tasks", json.dumps(payload),
                             {"Content-Type": "application/json", **(headers or {})})
    return response.code, json.loads(response.body)


async def echoed(api: Api, task_id: str) -> dict:
    task = await api.wait_finished(task_id)
    assert task["status"] == "completed", task
    code, body = await api.call("GET", f"{API}/results/{task_id}")
    assert code == 200, body
    return json.loads(body["result"]["body"])


@pytest.mark.gen_test(timeout=60)
async def test_fetch_options_build_the_request_and_secrets_never_show(api, target):
    code, body = await submit(api, {"url": target.url("/echo/post"), "fetch": {
        "method": "POST", "body": "a=1&b=2", "user_agent": "probe/1.0",
        "headers": {"X-Trace": "t-1", "Authorization": "Bearer s3cret", "Cookie": "sid=abc", "Accept": "text/plain"}}})
    assert code == 201, body
    task = body["task"]
    seen = await echoed(api, task["id"])
    assert seen["method"] == "POST" and seen["body"] == "a=1&b=2"
    assert seen["headers"]["User-Agent"] == "probe/1.0" and seen["headers"]["X-Trace"] == "t-1"
    assert seen["headers"]["Authorization"] == "Bearer s3cret" and seen["headers"]["Accept"] == "text/plain"
    for shown in (task, await api.task(task["id"])):
        assert shown["fetch"]["headers"]["Authorization"] == "***" and shown["fetch"]["headers"]["Cookie"] == "***"
        assert shown["fetch"]["headers"]["X-Trace"] == "t-1" and shown["fetch"]["method"] == "POST"
        assert "s3cret" not in json.dumps(shown) and "sid=abc" not in json.dumps(shown)
    _code, listing = await api.call("GET", f"{API}/queue_tasks?limit=5")
    assert "s3cret" not in json.dumps(listing)
    code, _retried = await api.call("POST", f"{API}/queue_tasks/{task['id']}/retry")
    assert code == 200
    again = await echoed(api, task["id"])  # a retry fetches with the stored options
    assert again["method"] == "POST" and again["headers"]["Authorization"] == "Bearer s3cret"


@pytest.mark.gen_test(timeout=60)
async def test_head_no_redirects_a_smaller_cap_and_a_shorter_timeout(make_server, target):
    server = await make_server(max_attempts=1)
    api = Api(f"http://127.0.0.1:{server.port}")
    try:
        _c, head = await submit(api, {"url": target.url("/echo/head"), "fetch": {"method": "HEAD"}})
        _c, kept = await submit(api, {"url": target.url("/redirect/1"), "fetch": {"follow_redirects": False}})
        _c, capped = await submit(api, {"url": target.url("/big"), "fetch": {"max_bytes": 1000}})
        _c, slow = await submit(api, {"url": target.url("/slow?delay=5"), "fetch": {"timeout": 1}})
        head_task = await api.wait_finished(head["task"]["id"])
        assert head_task["status"] == "completed"
        _code, result = await api.call("GET", f"{API}/results/{head['task']['id']}")
        assert result["result"]["size"] == 0 and result["result"]["headers"]["x-method"] == "HEAD"
        kept_task = await api.wait_finished(kept["task"]["id"])
        assert kept_task["status"] == "completed" and kept_task["http_status"] == 302
        capped_task = await api.wait_finished(capped["task"]["id"])
        assert capped_task["status"] == "failed" and capped_task["error"]["code"] == "too_large"
        assert "1000 bytes" in capped_task["error"]["message"]
        started = time.monotonic()
        slow_task = await api.wait_finished(slow["task"]["id"])
        assert slow_task["status"] == "failed" and slow_task["error"]["code"] == "timeout"
        assert time.monotonic() - started < 4
    finally:
        api.close()


@pytest.mark.gen_test(timeout=60)
async def test_bad_fields_are_400s_naming_the_field_and_store_nothing(api, target):
    before = await api.counts()
    cases = [
        ({"jobs": [{"url": target.url("/a")}] * 3 + [{"url": target.url("/b"), "fetch": {"timeout": 0}}]},
         "invalid_field", "jobs[3].fetch.timeout: must be 1-300 seconds"),
        ({"url": target.url("/a"), "fetch": {"max_bytes": 10**12}}, "invalid_field", "fetch.max_bytes"),
        ({"url": target.url("/a"), "fetch": {"profile": "nope"}}, "unknown_profile", "fetch.profile"),
        ({"url": target.url("/a"), "fetch": {"headers": {"X-A": "1\r\nX-B: 2"}}}, "invalid_header", "line break"),
        ({"url": target.url("/a"), "fetch": {"headers": {"Host": "x"}}}, "invalid_header", "fetch.headers.Host"),
        ({"url": target.url("/a"), "not_before": "next tuesday"}, "invalid_field", "not_before"),
        ({"url": target.url("/a"), "not_before": "2099-01-01T00:00:00Z"}, "invalid_field", "more than a year"),
        ({"url": target.url("/a"), "every": 59}, "invalid_field", "every: must be a number of seconds from 60"),
        ({"url": target.url("/a"), "webhook": {"url": "https://x.example/"}}, "webhooks_disabled", "--webhook-secret"),
        ({"urls": [target.url("/a")], "priorty": 3}, "unknown_field", "priorty"),
        ({"jobs": [{"url": target.url("/a")}, {"url": "ftp://x/"}]}, "unsupported_scheme", "jobs[1].url"),
    ]
    for payload, code_word, message in cases:
        code, body = await submit(api, payload)
        assert code == 400 and body["error"]["code"] == code_word, (payload, body)
        assert message in body["error"]["message"], body
    assert await api.counts() == before


@pytest.mark.gen_test(timeout=60)
async def test_one_worker_takes_higher_priority_first_even_over_jobs_queued_earlier(make_server, target):
    server = await make_server(workers=1, per_host=1)
    api = Api(f"http://127.0.0.1:{server.port}")
    try:
        blocker = await api.submit(target.url("/slow?delay=0.5"))
        await wait_for(lambda: _running(api, blocker["id"]), 10, "the blocking job to start")
        _c, low = await submit(api, {"urls": [target.url(f"/echo/low{i}") for i in range(20)], "priority": -5})
        _c, mixed = await submit(api, {"jobs": [
            {"url": target.url("/echo/p0")}, {"url": target.url("/echo/p10"), "priority": 10},
            {"url": target.url("/echo/p5"), "priority": 5}]})
        ids = [t["id"] for t in low["tasks"] + mixed["tasks"]]
        await wait_for(lambda: _all_finished(api, ids), 30, "every job to finish")
        order = target.state.order
        assert order.index("/echo/p10") < order.index("/echo/p5") < order.index("/echo/p0")
        # jobs the pool had already claimed run first; every low job still queued ran after the high ones
        assert order.index("/echo/p0") < order.index("/echo/low19")
        assert sum(1 for path in order[:order.index("/echo/p0")] if path.startswith("/echo/low")) <= 2
        assert [task["priority"] for task in mixed["tasks"]] == [0, 10, 5]
    finally:
        api.close()


async def _running(api: Api, task_id: str) -> bool:
    return (await api.task(task_id))["status"] == "running"


async def _all_finished(api: Api, ids: list[str]) -> bool:
    for task_id in ids:
        if (await api.task(task_id))["status"] != "completed":
            return False
    return True


@pytest.mark.gen_test(timeout=60)
async def test_not_before_holds_a_job_until_its_time(api, target):
    at = time.time() + 1.5
    code, body = await submit(api, {"url": target.url("/echo/later"), "not_before": iso(at)})
    assert code == 201 and body["task"]["not_before"] == iso(at)
    task = await api.wait_finished(body["task"]["id"])
    assert task["status"] == "completed" and task["started_at"] >= iso(at)


@pytest.mark.gen_test(timeout=60)
async def test_max_age_reuses_a_fresh_result_without_fetching_again(api, target):
    first = await api.submit(target.url("/page/fresh"))
    assert (await api.wait_finished(first["id"]))["status"] == "completed"
    code, body = await submit(api, {"url": target.url("/page/fresh"), "max_age": 3600, "tags": ["again"]})
    assert code == 201 and body["task"]["status"] == "completed" and body["task"]["reused_from"] == first["id"]
    assert body["task"]["tags"] == ["again"]
    assert target.state.hits["/page/fresh"] == 1
    _c, original = await api.call("GET", f"{API}/results/{first['id']}")
    _c, reused = await api.call("GET", f"{API}/results/{body['task']['id']}")
    assert reused["result"]["body"] == original["result"]["body"] == "<p>page fresh</p>"
    _c, other = await submit(api, {"url": target.url("/page/fresh"), "max_age": 3600,
                                   "fetch": {"headers": {"X-Other": "1"}}})
    assert other["task"]["status"] == "queued" and other["task"]["reused_from"] is None


@pytest.mark.gen_test(timeout=60)
async def test_an_idempotency_key_creates_once_and_refuses_another_body(api, target):
    payload = {"urls": [target.url("/page/k1"), target.url("/page/k2")]}
    key = {"Idempotency-Key": "order-7f3a"}
    code, first = await submit(api, payload, key)
    code2, second = await submit(api, {"urls": payload["urls"]}, key)
    assert code == code2 == 201 and [t["id"] for t in first["tasks"]] == [t["id"] for t in second["tasks"]]
    counts = await api.counts()  # one read: jobs move between states while three reads are made
    assert counts["queued"] + counts["running"] + counts["completed"] == 2
    code, reused = await submit(api, {"urls": [target.url("/page/k3")]}, key)
    assert code == 422 and reused["error"]["code"] == "idempotency_key_reused"
    code, bad = await submit(api, payload, {"Idempotency-Key": "x" * 256})
    assert code == 400 and bad["error"]["code"] == "invalid_idempotency_key"
    one = {"url": target.url("/page/k4")}
    response = await api.raw("POST", f"{API}/queue_tasks", json.dumps(one),
                             {"Content-Type": "application/json", "Idempotency-Key": "single"})
    again = await api.raw("POST", f"{API}/queue_tasks", json.dumps(one),
                          {"Content-Type": "application/json", "Idempotency-Key": "single"})
    assert response.code == again.code == 201 and response.body == again.body
    assert response.headers["Location"] == again.headers["Location"]


@pytest.mark.slow
@pytest.mark.gen_test(timeout=60)
async def test_fetch_profiles_add_secrets_server_side_and_reload_on_sighup(tmp_path, target):
    profiles = tmp_path / "profiles.json"
    profiles.write_text(json.dumps({"site": {"headers": {"X-Api-Key": "k-123"}, "cookies": {"sid": "s-456"}}}))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, os.path.join(ROOT, "server.py"), "--port", "0", "--database", f"sqlite:///{tmp_path}/p.db",
        "--allow-private-addresses", "--fetch-profiles", str(profiles),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=str(tmp_path))
    line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
    port = int(line.split("http://127.0.0.1:")[1].split("/")[0])
    api = Api(f"http://127.0.0.1:{port}")
    try:
        code, body = await submit(api, {"url": target.url("/echo/profile"), "fetch": {"profile": "site"}})
        assert code == 201, body
        assert body["task"]["fetch"]["headers"] == {"X-Api-Key": "***", "Cookie": "***"}
        seen = await echoed(api, body["task"]["id"])
        assert seen["headers"]["X-Api-Key"] == "k-123" and seen["headers"]["Cookie"] == "sid=s-456"
        profiles.write_text(json.dumps({"other": {"headers": {"X-Api-Key": "k-789"}}}))
        proc.send_signal(signal.SIGHUP)

        async def reloaded() -> bool:
            code, _body = await submit(api, {"url": target.url("/echo/p2"), "fetch": {"profile": "other"}})
            return code == 201

        await wait_for(reloaded, 10, "the profiles to be re-read")
        code, body = await submit(api, {"url": target.url("/echo/p3"), "fetch": {"profile": "site"}})
        assert code == 400 and body["error"]["code"] == "unknown_profile"
    finally:
        api.close()
        proc.send_signal(signal.SIGTERM)
        _out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert b"k-123" not in err and b"s-456" not in err and b"k-789" not in err


@pytest.mark.gen_test(timeout=30)
async def test_query_fields_beside_a_json_body_are_refused_not_ignored(api, target):
    response = await api.raw("POST", f"{API}/queue_tasks?priority=5", json.dumps({"url": target.url("/a")}),
                             {"Content-Type": "application/json"})
    body = json.loads(response.body)
    assert response.code == 400 and "put job fields in the body" in body["error"]["message"]
