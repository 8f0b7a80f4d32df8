"""Hostile or odd client input and stored target headers: always a clear answer, never a 500."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import pytest

from tests.helpers import API, Api

TEXT = {"Content-Type": "text/plain; charset=utf-8"}
NOT_UTF8 = b"\xff\xfe"


def cursor_of(state: Any, version: str = "a") -> str:
    """A cursor in the API's format, for forging damaged ones."""
    raw = state if isinstance(state, bytes) else json.dumps(state).encode()
    return version + base64.urlsafe_b64encode(raw).decode().rstrip("=")


class RawSite:
    """A one-page HTTP server on 127.0.0.1 that sends exactly the header lines it is given."""

    def __init__(self, headers: list[bytes], body: bytes) -> None:
        self.response = b"HTTP/1.1 200 OK\r\n" + b"".join(h + b"\r\n" for h in headers) + (
            b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body)) + body
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> RawSite:
        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(self.response)
            await writer.drain()
            writer.close()

        self.server = await asyncio.start_server(answer, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/page"


@pytest.mark.gen_test
async def test_a_stored_content_type_that_is_not_a_clean_header_is_served_as_bytes(api, target):
    body = b"<p>hello</p>"
    async with RawSite([b"Content-Type: text/html\x01x"], body) as site:
        task = await api.wait_finished((await api.submit(site.url))["id"])
    assert task["status"] == "completed", task
    for _ in range(2):  # the same answer every time, not a 500 from then on
        response = await api.raw("GET", f"{API}/results/{task['id']}/body?download=1")
        assert response.code == 200, response.body
        assert response.headers["Content-Type"] == "application/octet-stream"
        assert response.headers["Content-Disposition"] == f'attachment; filename="{task["id"]}.body"'
        assert response.headers["Content-Security-Policy"] == "sandbox"
        assert response.body == body
    got, payload = await api.call("GET", f"{API}/results/{task['id']}")
    assert got == 200 and payload["result"]["headers"]["content-type"] == "text/html\x01x"
    clean = await api.wait_finished((await api.submit(target.url("/utf8")))["id"])
    response = await api.raw("GET", f"{API}/results/{clean['id']}/body")
    assert response.code == 200 and response.headers["Content-Type"] == "text/html; charset=utf-8"


BAD_INPUT = [
    # (method, path, body, content type, status, code)
    ("POST", "/queue_tasks", "[" * 100_000, "application/json", 400, "invalid_json"),
    ("POST", "/queue_tasks", '{"a":' * 50_000, "application/json", 400, "invalid_json"),
    ("POST", "/queue_tasks", "--x\r\nbad", "multipart/form-data; boundary=x", 400, "invalid_form"),
    ("POST", "/queue_tasks", "--x\r\n\r\n--x--", "multipart/form-data; boundary=x", 400, "invalid_form"),
    ("POST", "/queue_tasks", "url=x", "multipart/form-data", 400, "invalid_form"),
    ("POST", "/queue_tasks", "<url>example.com</url>", "application/xml", 415, "unsupported_media_type"),
    ("POST", "/queue_tasks", "example.com", "application/octet-stream", 415, "unsupported_media_type"),
    ("POST", "/queue_tasks", "\n# only a comment\n\n", "text/plain", 400, "invalid_request"),
    ("POST", "/queue_tasks", b"\xff\xfe", "text/plain", 400, "invalid_request"),
    ("GET", "/queue_tasks?limit=%C2%B2", None, None, 400, "invalid_limit"),  # '²' passes str.isdigit()
    ("GET", "/queue_tasks?limit=%D9%A3", None, None, 400, "invalid_limit"),  # Arabic-Indic 3
    ("GET", "/queue_tasks?limit=" + "9" * 5000, None, None, 400, "invalid_limit"),  # over int()'s digit limit
    ("GET", "/queue_tasks?limit=", None, None, 400, "invalid_limit"),
    ("GET", "/queue_tasks?status=", None, None, 400, "invalid_status"),
    ("GET", "/results?limit=%C2%B2", None, None, 400, "invalid_limit"),
    ("GET", "/results?limit=", None, None, 400, "invalid_limit"),
]


@pytest.mark.gen_test
@pytest.mark.parametrize("method,path,body,ctype,status,code", BAD_INPUT,
                         ids=[f"{r[0]} {r[1][:40]} {str(r[2])[:20]!r} {r[5]}" for r in BAD_INPUT])
async def test_bad_input_gets_a_4xx_json_error(api, method, path, body, ctype, status, code):
    headers = {"Content-Type": ctype} if ctype else None
    got, payload = await api.call(method, API + path, body=body, headers=headers)
    assert got == status, payload
    assert payload["error"]["code"] == code and payload["error"]["message"]
    assert (await api.call("GET", "/healthz"))[0] == 200


def _state(**changes: Any) -> dict[str, Any]:
    return {"k": "tasks", "s": "s1", "l": 5, "f": {}, **changes}


FORGED_CURSORS = [
    ("/queue_tasks", "s1"),  # a bare store cursor: the API hands out only its own
    ("/queue_tasks", "s%C2%B2"),  # '²' passes str.isdigit()
    ("/queue_tasks", "a%C2%B2"),
    ("/queue_tasks", "a!!!!"),
    ("/queue_tasks", "aAAAAA"),  # not base64 of anything
    ("/queue_tasks", cursor_of(b"not json")),
    ("/queue_tasks", cursor_of(NOT_UTF8)),
    ("/queue_tasks", cursor_of([1])),
    ("/queue_tasks", cursor_of(_state(), version="z")),  # a version this server does not know
    ("/queue_tasks", cursor_of(_state(s="s²"))),
    ("/queue_tasks", cursor_of(_state(s="s" + "9" * 5000))),
    ("/queue_tasks", cursor_of(_state(s=5))),
    ("/queue_tasks", cursor_of(_state(l=True))),
    ("/queue_tasks", cursor_of(_state(l=5000))),
    ("/queue_tasks", cursor_of(_state(l="5"))),
    ("/queue_tasks", cursor_of(_state(f={"status": "done"}))),
    ("/queue_tasks", cursor_of(_state(f={"status": ""}))),
    ("/queue_tasks", cursor_of(_state(f={"colour": "blue"}))),  # a filter this listing does not have
    ("/queue_tasks", cursor_of(_state(f=[]))),
    ("/results", cursor_of(_state())),  # a cursor of another listing
    ("/results", "s1"),
]


@pytest.mark.gen_test
async def test_only_cursors_the_api_hands_out_are_accepted(api):
    for path, cursor in FORGED_CURSORS:
        got, payload = await api.call("GET", f"{API}{path}?cursor={cursor}")
        assert got == 400 and payload["error"]["code"] == "invalid_cursor", (path, cursor, payload)
        assert "next" in payload["error"]["message"]
    for path, kind in (("/queue_tasks", "tasks"), ("/results", "results")):
        assert (await api.call("GET", f"{API}{path}?cursor={cursor_of(_state(k=kind))}"))[0] == 200
    assert (await api.call("GET", "/healthz"))[0] == 200


async def post_text(api: Api, text: str) -> tuple[int, Any]:
    return await api.call("POST", f"{API}/queue_tasks", body=text, headers=TEXT)


@pytest.mark.gen_test
async def test_text_plain_is_one_url_per_line(api):
    got, payload = await post_text(api, "# my list\nexample.com/a\n\n   \nhttps://example.org/b  \r\n#example.net\n")
    assert got == 201, payload
    assert [t["url"] for t in payload["tasks"]] == ["https://example.com/a", "https://example.org/b"]
    got, payload = await post_text(api, "example.com/one")
    assert got == 201 and [t["url"] for t in payload["tasks"]] == ["https://example.com/one"]  # a list, always
    got, payload = await api.call("POST", f"{API}/queue_tasks", body='{"url": "example.com/json"}', headers=TEXT)
    assert got == 201 and payload["task"]["url"] == "https://example.com/json"  # fetch()'s default type for JSON


@pytest.mark.gen_test
async def test_text_plain_errors_name_the_line_and_the_limit(api):
    got, payload = await post_text(api, "example.com/a\n# comment\n\nftp://example.com/b\nexample.com/c\n")
    assert got == 400 and payload["error"]["code"] == "unsupported_scheme"
    assert payload["error"]["message"].startswith("line 4 ('ftp://example.com/b'): ")
    got, payload = await post_text(api, "".join(f"example.com/{i}\n" for i in range(1001)))
    assert got == 400 and payload["error"]["code"] == "batch_too_large"
    assert "more than 1000" in payload["error"]["message"] and "line 1001" in payload["error"]["message"]
    got, payload = await post_text(api, "".join(f"# note {i}\nexample.com/{i}\n" for i in range(1000)))
    assert got == 201 and len(payload["tasks"]) == 1000  # comments do not count against the limit


async def page(api: Api, query: str) -> dict[str, Any]:
    got, payload = await api.call("GET", f"{API}/queue_tasks?{query}")
    assert got == 200, payload
    return payload


@pytest.mark.gen_test
async def test_a_cursor_alone_continues_the_same_filtered_query(make_server):
    server = await make_server()
    await server.pool.stop()
    api = Api(f"http://127.0.0.1:{server.port}")
    tasks = await api.submit_many([f"https://example.com/{i}" for i in range(9)])
    for task in tasks[::3]:  # 0, 3, 6 are cancelled; the rest stay queued
        assert (await api.call("DELETE", f"{API}/queue_tasks/{task['id']}"))[0] == 200
    queued = [t["id"] for t in reversed(tasks) if tasks.index(t) % 3]
    first = await page(api, "status=queued&limit=2")
    seen = [t["id"] for t in first["tasks"]]
    cursor = first["next"]
    while cursor:
        more = await page(api, f"cursor={cursor}")
        assert len(more["tasks"]) <= 2
        seen += [t["id"] for t in more["tasks"]]
        cursor = more["next"]
    assert seen == queued
    second = await page(api, f"cursor={first['next']}&status=queued")  # repeating the filter is fine
    assert [t["id"] for t in second["tasks"]] == queued[2:4]
    smaller = await page(api, f"cursor={first['next']}&limit=1")  # a limit beside a cursor sets the page size
    assert [t["id"] for t in smaller["tasks"]] == queued[2:3]
    assert (await page(api, f"cursor={smaller['next']}"))["tasks"][0]["id"] == queued[3]
    for other in ("cancelled", "completed"):
        got, payload = await api.call("GET", f"{API}/queue_tasks?cursor={first['next']}&status={other}")
        assert got == 400 and payload["error"]["code"] == "invalid_cursor"
        assert "status=queued" in payload["error"]["message"]
    unfiltered = await page(api, "limit=4")
    got, payload = await api.call("GET", f"{API}/queue_tasks?cursor={unfiltered['next']}&status=queued")
    assert got == 400 and "no status filter" in payload["error"]["message"]
    rest = await page(api, f"cursor={unfiltered['next']}")
    assert [t["id"] for t in rest["tasks"]] == [t["id"] for t in reversed(tasks)][4:8]
    got, payload = await api.call("GET", f"{API}/results?cursor={unfiltered['next']}")
    assert got == 400 and payload["error"]["code"] == "invalid_cursor"
    api.close()


@pytest.mark.gen_test
async def test_a_results_cursor_alone_keeps_its_page_size(api, target):
    tasks = await api.submit_many([target.url(f"/page/{i}") for i in range(5)])
    for task in tasks:
        await api.wait_finished(task["id"])
    got, first = await api.call("GET", f"{API}/results?limit=2")
    assert got == 200 and len(first["results"]) == 2
    ids = [r["id"] for r in first["results"]]
    cursor = first["next"]
    while cursor:
        got, more = await api.call("GET", f"{API}/results?cursor={cursor}")
        assert got == 200 and 1 <= len(more["results"]) <= 2, more
        ids += [r["id"] for r in more["results"]]
        cursor = more["next"]
    assert sorted(ids) == sorted(t["id"] for t in tasks) and len(ids) == 5
    got, payload = await api.call("GET", f"{API}/queue_tasks?cursor={first['next']}")
    assert got == 400 and payload["error"]["code"] == "invalid_cursor"
