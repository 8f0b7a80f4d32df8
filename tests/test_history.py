"""History of a URL (newest first, `changed` against the older one) and diffs of two results."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import tornado.web
from tornado.httpserver import HTTPServer
from tornado.ioloop import IOLoop
from tornado.netutil import bind_sockets

from jobqueue.history import diff as diff_module
from jobqueue.history.diff import diff_results
from tests.helpers import API, Api
from tests.test_storage import fetched, result_for


class ChangingSite:
    """A page on 127.0.0.1 whose text and headers the test sets between fetches."""

    def __init__(self) -> None:
        self.body = "line one\nline two\n"
        self.headers: dict[str, str] = {"X-Version": "1"}
        site = self

        class Page(tornado.web.RequestHandler):
            def get(self) -> None:
                self.set_header("Content-Type", "text/plain; charset=utf-8")
                for name, value in site.headers.items():
                    self.set_header(name, value)
                self.write(site.body)

        sockets = bind_sockets(0, "127.0.0.1")
        self.url = f"http://127.0.0.1:{sockets[0].getsockname()[1]}/"
        self.server = HTTPServer(tornado.web.Application([(r"/", Page)]))
        self.server.add_sockets(sockets)


@pytest.fixture
def site(io_loop: IOLoop) -> Iterator[ChangingSite]:
    async def start() -> ChangingSite:
        return ChangingSite()

    page = io_loop.run_sync(start)
    yield page
    page.server.stop()


@pytest.mark.gen_test
async def test_history_lists_a_urls_results_newest_first_marked_changed_and_pages(open_store):
    store = await open_store()
    url = "https://example.com/watched"
    ids = [await fetched(store, url, body) for body in (b"A", b"A", b"B", b"A")]
    await fetched(store, "https://example.com/other", b"C")
    page = await store.history(url, 10, None)
    assert [(e.result.id, e.changed) for e in page.items] == [
        (ids[3], True), (ids[2], True), (ids[1], False), (ids[0], None)]
    assert page.next_cursor is None and "body" not in page.items[0].to_json()
    first = await store.history(url, 2, None)
    second = await store.history(url, 2, first.next_cursor)
    assert [(e.result.id, e.changed) for e in first.items + second.items] == [
        (e.result.id, e.changed) for e in page.items]
    assert second.next_cursor is None
    assert (await store.history("https://example.com/never", 10, None)).items == []


def test_a_diff_is_unified_with_header_changes_and_cut_with_a_note(monkeypatch):
    old = result_for("old", "https://x/", b"a\nb\nc\n", **{"X-Gone": "1", "ETag": "v1"})
    new = result_for("new", "https://x/", b"a\nB\nc\n", **{"X-New": "2", "ETag": "v2"})
    answer = diff_results(old, new)
    assert answer["diff"].splitlines()[:2] == ["--- old", "+++ new"]
    assert "-b\n+B\n" in answer["diff"] and answer["truncated"] is False and answer["note"] is None
    assert answer["headers"] == {"added": {"X-New": "2"}, "removed": {"X-Gone": "1"}, "changed": {"ETag": ["v1", "v2"]}}
    monkeypatch.setattr(diff_module, "MAX_DIFF_CHARS", 40)
    long_old = result_for("old", "https://x/", b"".join(b"old line %d\n" % i for i in range(100)))
    long_new = result_for("new", "https://x/", b"".join(b"new line %d\n" % i for i in range(100)))
    cut = diff_results(long_old, long_new)
    assert cut["truncated"] is True and len(cut["diff"]) <= 40 and "cut at 40 characters" in cut["note"]
    binary = result_for("new", "https://x/", b"\x00\x01")
    binary.encoding = None
    assert "compared by sha256 only: different" in diff_results(old, binary)["note"]


async def _run(api: Api, url: str) -> dict[str, Any]:
    task = await api.submit(url)
    done = await api.wait_finished(task["id"])
    assert done["status"] == "completed", done
    return done


@pytest.mark.gen_test
async def test_history_and_diff_over_http(make_server, site):
    jq = await make_server()
    api = Api(f"http://127.0.0.1:{jq.port}")
    try:
        first = await _run(api, site.url)
        same = await _run(api, site.url)
        site.body, site.headers = "line one\nline 2\n", {"X-Version": "2", "X-Added": "yes"}
        changed = await _run(api, site.url)
        code, body = await api.call("GET", f"{API}/history?url={site.url.rstrip('/')}")  # normalised like a job's
        assert code == 200, body
        assert [(r["id"], r["changed"]) for r in body["results"]] == [
            (changed["id"], True), (same["id"], False), (first["id"], None)]
        assert body["next"] is None and "body" not in body["results"][0]
        code, page = await api.call("GET", f"{API}/history?url={site.url}&limit=2")
        code, rest = await api.call("GET", f"{API}/history?cursor={page['next']}")
        assert [r["id"] for r in page["results"] + rest["results"]] == [changed["id"], same["id"], first["id"]]

        code, diff = await api.call("GET", f"{API}/results/{changed['id']}/diff?against={first['id']}")
        assert code == 200, diff
        assert "-line two\n+line 2\n" in diff["diff"]
        assert diff["headers"]["added"] == {"x-added": "yes"} and diff["headers"]["changed"]["x-version"] == ["1", "2"]
        assert (diff["from"], diff["to"], diff["truncated"]) == (first["id"], changed["id"], False)
        code, none = await api.call("GET", f"{API}/results/{same['id']}/diff?against={first['id']}")
        assert none["diff"] == "" and none["same_body"] is True
    finally:
        api.close()


@pytest.mark.gen_test
async def test_history_and_diff_refuse_bad_input_with_a_clear_error(make_server, target):
    jq = await make_server()
    api = Api(f"http://127.0.0.1:{jq.port}")
    try:
        done = await _run(api, target.url("/utf8"))
        queued = await api.submit("https://example.invalid/later")  # never fetched: no result
        cases = [
            (f"{API}/history", 400, "missing_url"),
            (f"{API}/history?url=ftp://x/", 400, "unsupported_scheme"),
            (f"{API}/history?url=https://x/&cursor=nonsense", 400, "invalid_cursor"),
            (f"{API}/results/{done['id']}/diff", 400, "missing_against"),
            (f"{API}/results/{done['id']}/diff?against=no%20such", 400, "invalid_id"),
            (f"{API}/results/{done['id']}/diff?against=nosuchid", 404, "not_found"),
            (f"{API}/results/nosuchid/diff?against={done['id']}", 404, "not_found"),
            (f"{API}/results/{done['id']}/diff?against={queued['id']}", 409, "no_result"),
        ]
        for path, status, code in cases:
            got, body = await api.call("GET", path)
            assert (got, body["error"]["code"]) == (status, code), (path, body)
            assert body["error"]["message"]
        assert (await api.call("GET", f"{API}/history?url={target.url('/utf8')}"))[0] == 200  # still healthy
    finally:
        api.close()
