"""A query parameter a route does not read is a 400 `unknown_parameter` naming it and the ones it takes: a typo
(`?priorty=5`, `?stauts=failed`, `?every=` on a batch) never passes silently."""

from __future__ import annotations

import re
from typing import Any

import pytest
from tornado.web import RequestHandler

from handlers import make_app
from handlers.base import BaseAPIHandler
from jobqueue.config import Settings
from tests.helpers import API, Api

TEXT = {"Content-Type": "text/plain"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
METHODS = ("GET", "HEAD", "POST", "DELETE")


def api_routes() -> list[tuple[str, str, type[BaseAPIHandler]]]:
    """(method, a concrete path, handler) of every API route that checks its query through the base class."""
    app = make_app(service=None, config=Settings())  # type: ignore[arg-type]
    out = []
    for rule in app.wildcard_router.rules:
        handler = rule.target
        if not (isinstance(handler, type) and issubclass(handler, BaseAPIHandler)):
            continue  # the dashboard, static files, the websocket
        if handler.query_parameters is None:
            continue  # /export checks its own (tests/test_export.py)
        path = rule.matcher.regex.pattern.rstrip("$").replace("([A-Za-z0-9_-]{1,64})", "x").replace("/?", "")
        path = path.replace("([^/]+)", "x")  # a host name (/hosts/:host)
        for method in METHODS:
            if getattr(handler, method.lower()) is not getattr(RequestHandler, method.lower()):
                out.append((method, path, handler))
    return out


ROUTES = api_routes()


def test_every_api_route_is_covered():
    paths = {path for _method, path, _handler in ROUTES}
    assert f"{API}/queue_tasks" in paths and "/healthz" in paths and f"{API}/webhook_deliveries" in paths
    assert len(ROUTES) >= 25


@pytest.mark.gen_test
@pytest.mark.parametrize("method,path,handler", ROUTES, ids=[f"{m} {p}" for m, p, _h in ROUTES])
async def test_a_parameter_a_route_does_not_read_is_refused(idle_server, method, path, handler):
    api = idle_server
    response = await api.raw(method, f"{path}?colour=blue", b"example.com\n" if method == "POST" else None,
                             TEXT if method == "POST" else None)
    assert response.code == 400, (response.code, response.body)
    if method == "HEAD":
        return  # the same answer as GET, without its body
    error = json_error(response)
    accepted = sorted(handler.query_parameters.get(method, ()))
    assert error["code"] == "unknown_parameter" and "'colour'" in error["message"], error
    assert error["message"].endswith(f"it takes {', '.join(accepted)}" if accepted else "it takes none"), error


def json_error(response: Any) -> dict[str, str]:
    import json

    assert response.headers["Content-Type"].startswith("application/json")
    body = json.loads(response.body)
    if isinstance(body["error"], str):  # the Firecrawl-compatible routes answer in Firecrawl's shape, with our code
        assert body["success"] is False
        return {"code": body["code"], "message": body["error"]}
    return body["error"]


@pytest.mark.gen_test
async def test_the_typos_of_the_report_are_refused_and_change_nothing(idle_server):
    api = idle_server
    for body, headers in (("example.com/a\n", TEXT), ("url=example.com/a", FORM)):
        got, payload = await api.call("POST", f"{API}/queue_tasks?priorty=5", body=body, headers=headers)
        assert got == 400 and payload["error"]["code"] == "unknown_parameter"
        assert "'priorty' (did you mean 'priority'?)" in payload["error"]["message"]
    got, payload = await api.call("POST", f"{API}/batches?every=3600", body="example.com/b\n", headers=TEXT)
    assert got == 400 and payload["error"]["code"] == "unknown_parameter" and "'every'" in payload["error"]["message"]
    got, payload = await api.call("GET", f"{API}/queue_tasks?stauts=failed")
    assert got == 400 and "(did you mean 'status'?)" in payload["error"]["message"]
    assert sum((await api.counts()).values()) == 0
    got, payload = await api.call("GET", f"{API}/batches")
    assert got == 200 and payload["batches"] == []
    got, payload = await api.call("POST", f"{API}/queue_tasks?priority=5&tag=a&tag=b", body="example.com/c\n",
                                  headers=TEXT)
    assert got == 201 and payload["tasks"][0]["priority"] == 5 and payload["tasks"][0]["tags"] == ["a", "b"]


@pytest.mark.gen_test
async def test_the_parameters_clients_send_are_still_read(idle_server):
    """What the dashboard (static/*.js), the CLI and the Python client send, and the docs show."""
    api = idle_server
    [task] = (await api.call("POST", f"{API}/queue_tasks", body="example.com/x\n", headers=TEXT))[1]["tasks"]
    ok = [
        f"{API}/queue_tasks?limit=1", f"{API}/queue_tasks?status=queued&batch=b1&tag=t&host=example.com"
        "&http_status=4xx&error=timeout&url=exa&since=2020-01-01T00:00:00Z&until=2099-01-01T00:00:00Z&limit=5",
        f"{API}/queue_tasks?cursor=&limit=2", f"{API}/results?limit=50&status=completed", f"{API}/batches?limit=50",
        f"{API}/schedules?limit=10", f"{API}/webhook_deliveries?status=failed&limit=50",
        f"{API}/webhook_deliveries?task_id={task['id']}&limit=20", f"{API}/history?url=example.com/x&limit=20",
    ]
    for path in ok:
        got, payload = await api.call("GET", path)
        assert got == 200, (path, payload)
    got, payload = await api.call("GET", f"{API}/results/{task['id']}/diff?against={task['id']}")
    assert payload.get("error", {}).get("code") != "unknown_parameter", payload
    got, payload = await api.call("GET", f"{API}/results/{task['id']}/body?download=1")
    assert got == 409 and payload["error"]["code"] == "no_result"
    got, payload = await api.call("DELETE", f"{API}/queue_tasks/{task['id']}?purge=false")
    assert got == 200 and payload["task"]["status"] == "cancelled"


@pytest.mark.gen_test
async def test_the_openapi_document_lists_exactly_the_parameters_each_route_reads(idle_server):
    got, doc = await idle_server.call("GET", "/openapi.json")
    assert got == 200
    for method, path, handler in ROUTES:
        if method == "HEAD":
            continue
        template = re.sub(r"/x(?=/|$)", "/{id}", path).replace("/hosts/{id}", "/hosts/{host}")
        item = doc["paths"][template]
        operation = item[method.lower()]
        listed = {p["name"] for p in [*item.get("parameters", []), *operation.get("parameters", [])]
                  if p["in"] == "query"}
        reads = set(handler.query_parameters.get(method, ()))
        # a job listing's q is left out on purpose (docs/API.md, "Finding jobs"); /hosts lists its q
        assert listed == (reads if path.endswith("/hosts") else reads - {"q"}), (method, path)


@pytest.fixture
def idle_server(io_loop: Any, make_server: Any) -> Any:
    """A server whose workers are stopped: these tests submit URLs off this machine, which must not be fetched."""
    server = io_loop.run_sync(make_server)
    io_loop.run_sync(server.pool.stop)
    client = Api(f"http://127.0.0.1:{server.port}")
    yield client
    client.close()
