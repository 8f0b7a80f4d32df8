"""Every malformed request gets its 4xx JSON error, and the service stays healthy."""

from __future__ import annotations

import json

import pytest

from tests.helpers import API

LONG = "https://example.com/" + "a" * 2100

BAD_REQUESTS = [
    # (method, path, body, content type, status, code)
    ("POST", "/queue_tasks", "not json", "application/json", 400, "invalid_json"),
    ("POST", "/queue_tasks", "", "application/json", 400, "invalid_json"),
    ("POST", "/queue_tasks", "[1, 2]", "application/json", 400, "invalid_request"),
    ("POST", "/queue_tasks", "{}", "application/json", 400, "invalid_request"),
    ("POST", "/queue_tasks", '{"url": 5}', "application/json", 400, "invalid_url"),
    ("POST", "/queue_tasks", '{"url": ""}', "application/json", 400, "invalid_url"),
    ("POST", "/queue_tasks", '{"url": "ftp://example.com/x"}', "application/json", 400, "unsupported_scheme"),
    ("POST", "/queue_tasks", '{"url": "file:///etc/passwd"}', "application/json", 400, "unsupported_scheme"),
    ("POST", "/queue_tasks", '{"url": "javascript:alert(1)"}', "application/json", 400, "unsupported_scheme"),
    ("POST", "/queue_tasks", '{"url": "http://"}', "application/json", 400, "invalid_url"),
    ("POST", "/queue_tasks", '{"url": "http://exa mple.com/"}', "application/json", 400, "invalid_url"),
    ("POST", "/queue_tasks", '{"url": "http://example.com:99999/"}', "application/json", 400, "invalid_url"),
    ("POST", "/queue_tasks", json.dumps({"url": LONG}), "application/json", 400, "url_too_long"),
    ("POST", "/queue_tasks", '{"urls": "https://example.com"}', "application/json", 400, "invalid_request"),
    ("POST", "/queue_tasks", '{"urls": []}', "application/json", 400, "invalid_request"),
    ("POST", "/queue_tasks", '{"url": "a.com", "urls": ["b.com"]}', "application/json", 400, "invalid_request"),
    ("POST", "/queue_tasks", json.dumps({"urls": ["example.com"] * 1001}), "application/json", 400,
     "batch_too_large"),
    ("POST", "/queue_tasks", '{"urls": ["example.com", "gopher://x"]}', "application/json", 400,
     "unsupported_scheme"),
    ("POST", "/queue_tasks", "nothing=here", "application/x-www-form-urlencoded", 400, "invalid_request"),
    ("GET", "/queue_tasks?limit=0", None, None, 400, "invalid_limit"),
    ("GET", "/queue_tasks?limit=1001", None, None, 400, "invalid_limit"),
    ("GET", "/queue_tasks?limit=abc", None, None, 400, "invalid_limit"),
    ("GET", "/queue_tasks?status=done", None, None, 400, "invalid_status"),
    ("GET", "/queue_tasks?cursor=zzz", None, None, 400, "invalid_cursor"),
    ("GET", "/results?cursor=zzz", None, None, 400, "invalid_cursor"),
    ("GET", "/queue_tasks/unknown-id", None, None, 404, "not_found"),
    ("DELETE", "/queue_tasks/unknown-id", None, None, 404, "not_found"),
    ("POST", "/queue_tasks/unknown-id/retry", None, None, 404, "not_found"),
    ("GET", "/results/unknown-id", None, None, 404, "not_found"),
    ("GET", "/results/unknown-id/body", None, None, 404, "not_found"),
    ("GET", "/no/such/endpoint", None, None, 404, "not_found"),
    ("PUT", "/queue_tasks", "{}", "application/json", 405, "method_not_allowed"),
    ("PATCH", "/results", "{}", "application/json", 405, "method_not_allowed"),
    ("DELETE", "/results/x", None, None, 405, "method_not_allowed"),
    ("GET", "/queue_tasks/x/retry", None, None, 405, "method_not_allowed"),
    ("TRACE", "/queue_tasks", None, None, 405, "method_not_allowed"),
    ("OPTIONS", "/results/x/body", None, None, 405, "method_not_allowed"),
    ("TRACE", "/healthz", None, None, 405, "method_not_allowed"),
    ("PUT", "/metrics", "x", "text/plain", 405, "method_not_allowed"),
    ("POST", "/openapi.json", "{}", "application/json", 405, "method_not_allowed"),
]
ALLOWED = {"/queue_tasks": "GET, POST", "/results": "GET", "/results/x": "GET", "/results/x/body": "GET, HEAD",
           "/queue_tasks/x": "GET, DELETE", "/queue_tasks/x/retry": "POST", "/healthz": "GET", "/metrics": "GET",
           "/openapi.json": "GET"}


@pytest.mark.gen_test
@pytest.mark.parametrize("method,path,body,ctype,status,code", BAD_REQUESTS,
                         ids=[f"{r[0]} {r[1][:40]} {r[5]}" for r in BAD_REQUESTS])
async def test_bad_request_gets_json_error(api, method, path, body, ctype, status, code):
    headers = {"Content-Type": ctype} if ctype else None
    full = path if path in ("/healthz", "/metrics", "/openapi.json") else API + path
    response = await api.raw(method, full, body, headers)
    assert response.headers.get("Content-Type", "").startswith("application/json"), response.body[:200]
    got, payload = response.code, json.loads(response.body)
    assert got == status, payload
    assert payload["error"]["code"] == code
    assert isinstance(payload["error"]["message"], str) and payload["error"]["message"]
    if status == 405:  # RFC 9110: a 405 lists what the resource does allow
        assert response.headers.get("Allow") == ALLOWED[path], (path, response.headers.get("Allow"))
        assert ALLOWED[path].replace(", ", " or ") in payload["error"]["message"]
    health, answer = await api.call("GET", "/healthz")
    assert health == 200 and answer["status"] == "ok"


@pytest.mark.gen_test
async def test_oversized_request_gets_413(api):
    body = json.dumps({"urls": ["https://example.com/" + "x" * 2000] * 3000})
    got, payload = await api.call("POST", f"{API}/queue_tasks", body=body, headers={"Content-Type": "application/json"})
    assert got == 413 and payload["error"]["code"] == "request_too_large"
    assert (await api.call("GET", "/healthz"))[0] == 200


@pytest.mark.gen_test
async def test_scheme_less_url_means_https_and_form_posts_work(api):
    task = await api.submit("www.example.com/path?q=1")
    assert task["url"] == "https://www.example.com/path?q=1"
    got, payload = await api.call("POST", f"{API}/queue_tasks", body="url=example.org:8443",
                                  headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert got == 201 and payload["task"]["url"] == "https://example.org:8443/"
    response = await api.raw("POST", f"{API}/queue_tasks", json.dumps({"url": "http://Example.COM"}),
                             {"Content-Type": "application/json"})
    assert response.code == 201
    created = json.loads(response.body)["task"]
    assert response.headers["Location"] == f"{API}/queue_tasks/{created['id']}"
    assert created["url"] == "http://example.com/"


@pytest.mark.gen_test
async def test_conflicts_on_cancel_and_retry(make_server, target):
    from tests.helpers import Api

    server = await make_server()
    api = Api(f"http://127.0.0.1:{server.port}")
    task = await api.submit(target.url("/utf8"))
    done = await api.wait_finished(task["id"])
    assert done["status"] == "completed"
    got, payload = await api.call("DELETE", f"{API}/queue_tasks/{task['id']}")
    assert got == 409 and payload["error"]["code"] == "conflict" and payload["task"]["status"] == "completed"
    got, payload = await api.call("POST", f"{API}/queue_tasks/{task['id']}/retry")
    assert got == 200 and payload["task"]["status"] == "queued" and payload["task"]["attempts"] == 0
    again = await api.wait_finished(task["id"])
    assert again["status"] == "completed"
    assert target.state.hits["/utf8"] == 2
    api.close()


@pytest.mark.gen_test
async def test_result_is_409_until_there_is_one_and_cancel_stops_a_slow_fetch(api, target):
    task = await api.submit(target.url("/slow?delay=5"))
    got, payload = await api.call("GET", f"{API}/results/{task['id']}")
    assert got == 409 and payload["error"]["code"] == "no_result" and payload["task"]["id"] == task["id"]
    got, payload = await api.call("DELETE", f"{API}/queue_tasks/{task['id']}")
    assert got == 200 and payload["task"]["status"] == "cancelled"
    got, payload = await api.call("GET", f"{API}/results/{task['id']}/body")
    assert got == 409 and payload["error"]["code"] == "no_result"
    assert (await api.task(task["id"]))["status"] == "cancelled"


@pytest.mark.gen_test
async def test_listing_pages_filters_and_counts(api, target):
    tasks = await api.submit_many([target.url(f"/page/{i}") for i in range(7)])
    for task in tasks:
        await api.wait_finished(task["id"])
    assert await api.all_task_ids(limit=3) == [t["id"] for t in reversed(tasks)]
    assert (await api.counts())["completed"] == 7
    got, payload = await api.call("GET", f"{API}/queue_tasks?status=failed")
    assert got == 200 and payload["tasks"] == []
    got, payload = await api.call("GET", f"{API}/results?limit=5")
    assert got == 200 and len(payload["results"]) == 5 and payload["next"]
    assert all("body" not in r for r in payload["results"])
