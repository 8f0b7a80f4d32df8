"""A job's headers and a fetch profile's secrets stay with the origin they were meant for: redirects to another
host never carry them, and a profile that lists hosts is refused for any other. Real server, real targets:
one site on 127.0.0.1, reached a second time as `localhost` so curl sees another host."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import quote

import pytest
import tornado.web
from tornado.httpserver import HTTPServer
from tornado.ioloop import IOLoop
from tornado.netutil import bind_sockets

from jobqueue.models import iso
from tests.helpers import API, Api
from tests.target import ConnectionCounter, TargetState, make_target_app

KEY = "sekrit-api-key"
COOKIE = "c00kie-value"
TOKEN = "Bearer t0ken"


class StatusRedirect(tornado.web.RequestHandler):
    """Redirects with the status in the path to `?url=`, and notes the headers the hop arrived with."""

    def _go(self, status: str) -> None:
        self.settings["seen"].append({"method": self.request.method, "headers": dict(self.request.headers)})
        self.redirect(self.get_query_argument("url"), status=int(status))

    get = post = head = _go  # type: ignore[assignment]


class Site:
    """The usual target pages plus /go/<status>?url=...; `url(path, host)` addresses it by either name."""

    def __init__(self) -> None:
        self.state = TargetState()
        self.seen: list[dict[str, Any]] = []
        app = make_target_app(self.state)
        app.add_handlers(r".*", [(r"/go/(\d{3})", StatusRedirect, {})])
        app.settings["seen"] = self.seen
        sockets = bind_sockets(0, "127.0.0.1")
        self.port = sockets[0].getsockname()[1]
        self.server = HTTPServer(app)
        self.server.add_sockets(sockets)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def go(self, status: int, to: str) -> str:
        return self.url(f"/go/{status}?url={quote(to, safe='')}")


@pytest.fixture
def site(io_loop: IOLoop) -> Any:
    async def start() -> Site:
        return Site()

    made = io_loop.run_sync(start)
    yield made
    made.server.stop()


@pytest.fixture
def profiles_file(tmp_path: Any) -> Any:
    path = tmp_path / "profiles.json"
    path.write_text(json.dumps({
        "open": {"headers": {"X-Api-Key": KEY}, "cookies": {"sid": COOKIE}},
        "local": {"headers": {"X-Api-Key": KEY}, "hosts": ["127.0.0.1"]},
        "wild": {"headers": {"X-Api-Key": KEY}, "hosts": ["*.example.test"]},
    }))
    return path


@pytest.fixture
def papi(io_loop: IOLoop, make_server: Any, profiles_file: Any) -> Any:
    server = io_loop.run_sync(lambda: make_server(fetch_profiles=str(profiles_file), max_attempts=1))
    client = Api(f"http://127.0.0.1:{server.port}")
    client.server = server
    yield client
    client.close()


async def submit(api: Api, payload: dict) -> tuple[int, dict]:
    return await api.call("POST", f"{API}/queue_tasks", payload)


async def result_of(api: Api, payload: dict) -> dict:
    code, body = await submit(api, payload)
    assert code == 201, body
    task = await api.wait_finished(body["task"]["id"])
    assert task["status"] == "completed", task
    code, body = await api.call("GET", f"{API}/results/{task['id']}")
    assert code == 200, body
    return body["result"]


async def failure_of(api: Api, payload: dict) -> dict:
    code, body = await submit(api, payload)
    assert code == 201, body
    task = await api.wait_finished(body["task"]["id"])
    assert task["status"] == "failed", task
    return task


SECRET_JOB = {"headers": {"X-Trace": "t-1", "Authorization": TOKEN, "Accept": "text/plain"}, "profile": "open"}


@pytest.mark.gen_test(timeout=60)
async def test_job_and_profile_headers_reach_the_first_hop_but_never_another_host(papi, site):
    far = site.url("/echo/far", host="localhost")
    start = site.go(302, far)
    result = await result_of(papi, {"url": start, "fetch": SECRET_JOB})
    first = site.seen[-1]["headers"]
    assert first["X-Api-Key"] == KEY and first["Cookie"] == f"sid={COOKIE}"
    assert first["X-Trace"] == "t-1" and first["Authorization"] == TOKEN
    echoed = json.loads(result["body"])["headers"]
    for name in ("X-Api-Key", "Cookie", "X-Trace", "Authorization"):
        assert name not in echoed, echoed
    assert echoed["Accept"] == "text/plain" and echoed["User-Agent"].startswith("jobqueue/")
    assert KEY not in json.dumps(result) and COOKIE not in json.dumps(result) and "t0ken" not in json.dumps(result)
    assert result["final_url"] == far
    assert result["redirects"] == [{"url": start, "status": 302}]
    # once gone, they stay gone: another host, then back to the first one
    back = site.url("/echo/back")
    result = await result_of(papi, {"url": site.go(301, site.url(f"/go/302?url={quote(back, safe='')}",
                                                                 host="localhost")), "fetch": SECRET_JOB})
    echoed = json.loads(result["body"])["headers"]
    assert "X-Api-Key" not in echoed and "X-Trace" not in echoed and result["final_url"] == back
    assert [hop["status"] for hop in result["redirects"]] == [301, 302]
    # another port on the same host is another origin too
    other = Site()
    try:
        result = await result_of(papi, {"url": site.go(307, other.url("/echo/port")), "fetch": SECRET_JOB})
        assert "X-Api-Key" not in json.loads(result["body"])["headers"]
    finally:
        other.server.stop()


@pytest.mark.gen_test(timeout=60)
async def test_redirects_on_the_same_origin_keep_every_header(papi, site):
    result = await result_of(papi, {"url": site.url("/go/301?url=/go/302%3Furl%3D/echo/near"), "fetch": SECRET_JOB})
    echoed = json.loads(result["body"])["headers"]
    assert echoed["X-Api-Key"] == KEY and echoed["Cookie"] == f"sid={COOKIE}"
    assert echoed["X-Trace"] == "t-1" and echoed["Authorization"] == TOKEN
    assert result["final_url"] == site.url("/echo/near")
    assert [hop["status"] for hop in result["redirects"]] == [301, 302]
    assert result["redirects"][0]["url"] == site.url("/go/301?url=/go/302%3Furl%3D/echo/near")


@pytest.mark.parametrize(("status", "host", "method", "body"), [
    (303, "127.0.0.1", "GET", ""), (302, "127.0.0.1", "GET", ""), (301, "127.0.0.1", "GET", ""),
    (307, "127.0.0.1", "POST", "a=1"), (308, "127.0.0.1", "POST", "a=1"),
    # 307/308 repeat the request, body included, also on another host; only the headers stay behind
    (307, "localhost", "POST", "a=1"), (303, "localhost", "GET", ""),
])
@pytest.mark.gen_test(timeout=60)
async def test_a_redirected_post_is_repeated_or_becomes_a_get_as_browsers_do(papi, site, status, host, method, body):
    fetch = {"method": "POST", "body": "a=1", "headers": {"Content-Type": "text/x-demo", "X-Trace": "t-1"}}
    result = await result_of(papi, {"url": site.go(status, site.url("/echo/post", host)), "fetch": fetch})
    echoed = json.loads(result["body"])
    assert (echoed["method"], echoed["body"]) == (method, body)
    assert site.seen[-1]["method"] == "POST"
    assert ("X-Trace" in echoed["headers"]) == (host == "127.0.0.1")
    if body:
        assert echoed["headers"]["Content-Type"] == "text/x-demo"


@pytest.mark.gen_test(timeout=60)
async def test_too_many_redirects_and_other_schemes_fail_with_their_codes(papi, site):
    fetch = {"headers": {"X-Trace": "t-1"}}
    task = await failure_of(papi, {"url": site.url("/loop/0"), "fetch": fetch})
    assert task["error"]["code"] == "too_many_redirects" and task["attempts"] == 1
    assert site.state.hits["/loop/0"] + site.state.hits["/loop/1"] == 11  # the first request and 10 redirects
    task = await failure_of(papi, {"url": site.url("/redirect/11"), "fetch": fetch})
    assert task["error"]["code"] == "too_many_redirects"
    result = await result_of(papi, {"url": site.url("/redirect/10"), "fetch": fetch})
    assert len(result["redirects"]) == 10 and result["final_url"] == site.url("/utf8")
    task = await failure_of(papi, {"url": site.go(302, "ftp://127.0.0.1/x"), "fetch": fetch})
    assert task["error"]["code"] == "unsupported_scheme"


@pytest.mark.gen_test(timeout=60)
async def test_a_profile_listing_hosts_is_refused_for_any_other_host(papi, site):
    code, body = await submit(papi, {"url": site.url("/echo/x", "localhost"), "fetch": {"profile": "local"}})
    assert code == 400 and body["error"]["code"] == "profile_not_allowed", body
    assert "'local' may only be sent to 127.0.0.1, not to localhost" in body["error"]["message"]
    code, body = await submit(papi, {"jobs": [{"url": site.url("/a")},
                                              {"url": site.url("/b", "localhost"), "fetch": {"profile": "local"}}]})
    assert code == 400 and body["error"]["message"].startswith("jobs[1].url: the fetch profile"), body
    code, body = await submit(papi, {"urls": ["https://example.test/", "https://a.example.test/"],
                                     "fetch": {"profile": "wild"}})
    assert code == 400 and body["error"]["message"].startswith("urls[0]: "), body
    lines = f"{site.url('/a')}\n{site.url('/b', 'localhost')}"
    response = await papi.raw("POST", f"{API}/queue_tasks?profile=local", lines, {"Content-Type": "text/plain"})
    assert response.code == 400 and json.loads(response.body)["error"]["message"].startswith("line 2: ")
    assert (await papi.counts()).get("queued", 0) == 0  # nothing of a refused submission was stored
    # a listed host is accepted, and the profile's header reaches it
    result = await result_of(papi, {"url": site.url("/echo/ok"), "fetch": {"profile": "local"}})
    assert json.loads(result["body"])["headers"]["X-Api-Key"] == KEY
    code, body = await submit(papi, {"urls": ["https://a.example.test/", "https://b.a.example.test/x"],
                                     "fetch": {"profile": "wild"}})
    assert code == 201, body
    # a profile without hosts may go anywhere
    code, body = await submit(papi, {"url": site.url("/echo/y", "localhost"), "fetch": {"profile": "open"}})
    assert code == 201, body


@pytest.mark.gen_test(timeout=60)
async def test_a_reloaded_profile_file_moves_its_hosts(papi, site, profiles_file):
    later = iso(time.time() + 2)
    code, queued = await submit(papi, {"url": site.url("/echo/q"), "fetch": {"profile": "local"}, "not_before": later})
    assert code == 201, queued
    profiles_file.write_text(json.dumps({"local": {"headers": {"X-Api-Key": KEY}, "hosts": ["localhost"]}}))
    assert papi.server.profiles.reload() is True  # what SIGHUP calls
    code, body = await submit(papi, {"url": site.url("/echo/x"), "fetch": {"profile": "local"}})
    assert code == 400 and body["error"]["code"] == "profile_not_allowed", body
    result = await result_of(papi, {"url": site.url("/echo/x", "localhost"), "fetch": {"profile": "local"}})
    assert json.loads(result["body"])["headers"]["X-Api-Key"] == KEY
    # a job queued before the change is not sent with the profile to a host the file no longer lists
    task = await papi.wait_finished(queued["task"]["id"])
    assert task["status"] == "failed" and task["error"]["code"] == "profile_not_allowed", task
    assert site.state.hits["/echo/q"] == 0


@pytest.mark.gen_test(timeout=60)
async def test_a_job_with_headers_redirected_to_a_refused_address_is_blocked(make_server, site):
    trap = ConnectionCounter()
    await trap.start("127.0.0.2")
    server = await make_server(allow_private_addresses=False, allow_networks=("127.0.0.1/32",))
    api = Api(f"http://127.0.0.1:{server.port}")
    try:
        for status in (302, 307):
            code, body = await submit(api, {"url": site.go(status, f"http://127.0.0.2:{trap.port}/"),
                                            "fetch": {"headers": {"X-Trace": "t-1"}}})
            assert code == 201, body
            task = await api.wait_finished(body["task"]["id"])
            assert task["status"] == "failed" and task["error"]["code"] == "blocked", task
        assert trap.connections == 0
    finally:
        api.close()
        trap.close()
