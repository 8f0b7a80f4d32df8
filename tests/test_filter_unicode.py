"""Listing filters speak the URL language of submissions, through the real server: URLs are stored as browsers
send them (IDNA hosts, UTF-8 percent-escapes), and `?url=` / `?host=` typed beyond ASCII find them, on every
route that takes the job filters (GET /queue_tasks, /results, /export, POST /queue_tasks/bulk)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from tornado.ioloop import IOLoop

from tests.helpers import API, Api


@pytest.fixture
def idle_api(io_loop: IOLoop, make_server: Any) -> Iterator[Api]:
    """A server that fetches nothing (its workers are stopped): these tests submit URLs off this machine."""
    server = io_loop.run_sync(make_server)
    io_loop.run_sync(server.pool.stop)
    client = Api(f"http://127.0.0.1:{server.port}")
    yield client
    client.close()


async def listed(api: Api, path: str, **query: str) -> list[str]:
    """The ids a listing shows for a query (percent-encoded as a browser would send it), every page of it."""
    found, cursor = [], None
    while True:
        params = {**query, "limit": "1", **({"cursor": cursor} if cursor else {})}
        code, body = await api.call("GET", f"{API}/{path}?{urlencode(params, quote_via=quote)}")
        assert code == 200, (query, body)
        found += [item["id"] for item in body["tasks" if path == "queue_tasks" else "results"]]
        cursor = body.get("next")
        if cursor is None:
            return found


@pytest.mark.gen_test(timeout=60)
async def test_host_and_url_filters_typed_beyond_ascii_find_the_stored_jobs(idle_api):
    api = idle_api
    wiki = await api.submit("https://Bücher.example/wiki/Müller?q=straße")
    assert wiki["url"] == "https://xn--bcher-kva.example/wiki/M%C3%BCller?q=stra%C3%9Fe"
    two = await api.submit("https://bücher.example/other")
    fass = await api.submit("https://faß.example/")
    plain = await api.submit("https://example.com/Mueller")
    # fullwidth B and u with a combining diaeresis: the same name once mapped and normalised
    for typed in ("bücher.example", "BÜCHER.example.", "xn--bcher-kva.example", "\uff22\uff55\u0308cher.example"):
        assert await listed(api, "queue_tasks", host=typed) == [two["id"], wiki["id"]], typed
    assert await listed(api, "queue_tasks", host="faß.example") == [fass["id"]]  # ß kept, as submitted
    for typed in ("Müller", "M%C3%BCller", "m%c3%bcller", "/wiki/Müller?q=straße", "straße",
                  "bücher.example/wiki", "https://bücher.example/wiki/Müller", "xn--bcher-kva.example/wiki"):
        assert await listed(api, "queue_tasks", url=typed) == [wiki["id"]], typed
    assert await listed(api, "queue_tasks", url="bücher") == [two["id"], wiki["id"]]  # a whole host label
    assert await listed(api, "queue_tasks", url="Mueller") == [plain["id"]]
    assert await listed(api, "queue_tasks", url="Müller", host="bücher.example", status="queued") == [wiki["id"]]
    code, body = await api.call("GET", f"{API}/queue_tasks?host={quote('a' + chr(0x5D0) + '.example')}")
    assert code == 400 and body["error"]["code"] == "invalid_filter", body
    assert "internationalized domain name" in body["error"]["message"]


@pytest.mark.gen_test(timeout=60)
async def test_results_export_and_bulk_filter_by_the_typed_url(api, target):
    done = [await api.wait_finished((await api.submit(target.url(path)))["id"])
            for path in ("/echo/Müller", "/echo/日本", "/echo/plain")]
    assert [t["status"] for t in done] == ["completed"] * 3
    müller, japan = done[0]["id"], done[1]["id"]
    assert await listed(api, "results", url="/echo/Müller") == [müller]
    assert await listed(api, "results", url="日本") == [japan]
    response = await api.raw("GET", f"{API}/export?format=jsonl&url={quote('Müller')}")
    assert response.code == 200, response.body[:300]
    assert [json.loads(line)["task"]["id"] for line in response.body.splitlines()] == [müller]
    code, body = await api.call("POST", f"{API}/queue_tasks/bulk",
                                {"action": "delete", "filter": {"url": "日本"}, "dry_run": True})
    assert code == 200 and body["matched"] == 1, body
    code, body = await api.call("POST", f"{API}/queue_tasks/bulk",
                                {"action": "delete", "filter": {"url": "/echo/Müller"}})
    assert code == 200 and body["changed"] == 1, body
    assert await listed(api, "queue_tasks") == [done[2]["id"], japan]
