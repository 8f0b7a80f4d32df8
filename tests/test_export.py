"""GET /export: every format read back and compared with the API byte for byte, filters, errors, streaming."""

from __future__ import annotations

import asyncio
import base64
import csv
import hashlib
import io
import json
import logging
import re
import time
import zlib
from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from warcio.archiveiterator import ArchiveIterator

from bench.export_bench import ExportServer, fill
from handlers.export import MAX_EXPORTS, ExportHandler
from jobqueue.errors import StoreError
from jobqueue.export import walk
from jobqueue.export.csv_format import COLUMNS, safe_cell
from jobqueue.store.base import TaskFilter
from jobqueue.store.sqlite.store import SQLiteStore
from tests.helpers import API, Api, wait_for

SECRET = "Bearer s3cret-token-never-exported"
REFUSED = "http://127.0.0.1:9/refused"  # nothing listens there: the job fails
LATER = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 30 * 86400))  # stays queued
NAME = re.compile(r'attachment; filename="jobqueue-export-\d{8}T\d{6}Z\.(jsonl|csv|warc\.gz)"')


def route_export(server: Any) -> None:
    """Route /export on a running server, as the route line in handlers/__init__.py does once merged."""
    server.http.request_callback.wildcard_router.add_rules([(rf"{API}/export/?", ExportHandler)])


@pytest.fixture
def xapi(jq: Any, api: Api) -> Api:
    """The `api` client of a server that routes /export."""
    route_export(jq)
    return api


async def export(api: Api, query: str) -> Any:
    response = await api.raw("GET", f"{API}/export{query}")
    assert response.code == 200, response.body[:300]
    return response


async def submit_mix(api: Api, target: Any) -> list[dict[str, Any]]:
    """Jobs of every kind: text, binary, compressed, redirected, an HTTP error, a secret header, a
    spreadsheet-hostile tag, a failure and one still queued; waits for all but the queued one."""
    code, body = await api.call("POST", f"{API}/queue_tasks", {"jobs": [
        {"url": target.url("/utf8")},
        {"url": target.url("/binary")},
        {"url": target.url("/gzip")},
        {"url": target.url("/redirect/2")},
        {"url": target.url("/status/404")},
        {"url": target.url("/page/secret"), "fetch": {"headers": {"Authorization": SECRET, "X-Kind": "echo"}},
         "tags": ["-1-2", "plain"]},
        {"url": target.url("/status/500")},
        {"url": REFUSED},
        {"url": target.url("/page/later"), "not_before": LATER},
    ]})
    assert code == 201, body
    tasks = body["tasks"]
    for task in tasks[:-1]:
        await api.wait_finished(task["id"])
    return tasks


async def stored(api: Api, task_id: str) -> tuple[dict[str, Any], dict[str, Any] | None, bytes | None]:
    """A job as the API shows it: the task, the result without its body, the raw body."""
    task = await api.task(task_id)
    if task["status"] != "completed":
        return task, None, None
    code, body = await api.call("GET", f"{API}/results/{task_id}")
    assert code == 200, body
    result = body["result"]
    del result["body"]
    raw = await api.raw("GET", f"{API}/results/{task_id}/body")
    return task, result, raw.body


@pytest.mark.gen_test(timeout=60)
async def test_jsonl_round_trips_every_job_byte_for_byte(xapi, target):
    tasks = await submit_mix(xapi, target)
    response = await export(xapi, "?format=jsonl")
    assert response.body.endswith(b"\n")
    lines = [json.loads(line) for line in response.body.decode().splitlines()]
    assert [line["task"]["id"] for line in lines] == [t["id"] for t in reversed(tasks)]  # newest first
    assert SECRET.encode() not in response.body
    for line in lines:
        assert set(line) == {"task", "result", "body_base64"}
        task, result, body = await stored(xapi, line["task"]["id"])
        assert line["task"] == task
        if result is not None:  # the page's metadata is a readable view: an export carries it only when asked
            result.pop("metadata", None)
        assert line["result"] == result
        assert (base64.b64decode(line["body_base64"]) if line["body_base64"] is not None else None) == body
    statuses = {line["task"]["status"] for line in lines}
    assert statuses == {"completed", "failed", "queued"}


@pytest.mark.gen_test(timeout=60)
async def test_csv_has_a_row_per_job_and_is_safe_to_open_in_a_spreadsheet(xapi, target):
    tasks = await submit_mix(xapi, target)
    response = await export(xapi, "?format=csv")
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    rows = list(csv.reader(io.StringIO(response.body.decode("utf-8"), newline="")))
    assert tuple(rows[0]) == COLUMNS
    assert response.body.startswith(b"id,url,status,http_status,created_at,finished_at,final_url,content_type,"
                                    b"size,sha256,error_code")
    records = [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]
    assert [r["id"] for r in records] == [t["id"] for t in reversed(tasks)]
    for record in records:
        task, result, _ = await stored(xapi, record["id"])
        assert record["url"] == task["url"] and record["status"] == task["status"]
        assert record["created_at"] == task["created_at"] and record["finished_at"] == (task["finished_at"] or "")
        assert record["http_status"] == str(task["http_status"] or "")
        assert record["error_code"] == (task["error"]["code"] if task["error"] else "")
        assert record["final_url"] == (result["final_url"] if result else "")
        assert record["sha256"] == (result["sha256"] if result else "")
        assert record["size"] == (str(result["size"]) if result else "")
        assert record["content_type"] == ((result["content_type"] or "") if result else "")
    hostile = next(r for r in records if "/page/secret" in r["url"])
    assert hostile["tags"] == "'-1-2 plain"  # would run as a formula without the apostrophe


def test_cells_a_spreadsheet_would_run_get_an_apostrophe():
    for cell in ("=HYPERLINK(\"http://x\")", "+1", "-1+2", "@SUM(A1)", "\tx", "\rx"):
        assert safe_cell(cell) == "'" + cell
    for cell in ("http://a/?x=1", "plain", "", 404, None, "a=b"):
        assert safe_cell(cell) == cell


@pytest.mark.gen_test(timeout=60)
async def test_warc_has_a_request_and_a_response_per_fetch_readable_by_warcio(xapi, target):
    tasks = await submit_mix(xapi, target)
    response = await export(xapi, "?format=warc")
    assert response.headers["Content-Type"] == "application/warc"
    assert SECRET.encode() not in response.body and b"s3cret" not in _gunzip_all(response.body)
    records = []
    for record in ArchiveIterator(io.BytesIO(response.body), check_digests="raise"):
        records.append((record.rec_type, dict(record.rec_headers.headers), record.http_headers,
                        record.raw_stream.read()))
    assert _gzip_members(response.body) == len(records)  # one gzip member per record
    kind, info_headers, _, info = records[0]
    assert kind == "warcinfo" and info_headers["WARC-Type"] == "warcinfo"
    assert b"reconstructed" in info or b"rebuilt" in info
    completed = [t for t in reversed(tasks) if (await xapi.task(t["id"]))["status"] == "completed"]
    assert [r[0] for r in records[1:]] == ["request", "response"] * len(completed)
    for i, task in enumerate(completed):
        (_, req_headers, req_http, _), (_, headers, http, payload) = records[1 + 2 * i], records[2 + 2 * i]
        _, result, body = await stored(xapi, task["id"])
        assert result is not None
        assert headers["JobQueue-Task-ID"] == req_headers["JobQueue-Task-ID"] == task["id"]
        assert payload == body
        assert headers["WARC-Target-URI"] == req_headers["WARC-Target-URI"] == result["final_url"]
        assert headers["WARC-Payload-Digest"] == "sha256:" + base64.b32encode(hashlib.sha256(body).digest()).decode()
        assert req_headers["WARC-Concurrent-To"] == headers["WARC-Record-ID"]
        assert headers["WARC-Warcinfo-ID"] == info_headers["WARC-Record-ID"]
        assert headers["WARC-Date"][:10] == result["fetched_at"][:10]
        assert int(http.get_statuscode()) == result["http_status"]
        assert http.get_header("content-length") == str(len(body))
        assert http.get_header("content-encoding") is None  # the stored body is decoded
        assert req_http.protocol == "GET" and req_http.get_header("Host") == target.url("/").split("/")[2]
        if "/page/secret" in task["url"]:
            assert req_http.get_header("Authorization") == "***" and req_http.get_header("X-Kind") == "echo"
        if "/redirect/" in task["url"]:
            assert result["final_url"] == target.url("/utf8") and req_http.statusline.startswith("/utf8 ")


def _gzip_members(data: bytes) -> int:
    count = 0
    while data:
        member = zlib.decompressobj(16 + zlib.MAX_WBITS)
        member.decompress(data)
        assert member.eof, "the export ends inside a gzip member"
        data = member.unused_data
        count += 1
    return count


def _gunzip_all(data: bytes) -> bytes:
    out = b""
    while data:
        member = zlib.decompressobj(16 + zlib.MAX_WBITS)
        out += member.decompress(data)
        data = member.unused_data
    return out


@pytest.mark.gen_test(timeout=60)
async def test_the_task_list_filters_narrow_every_format(xapi, target):
    tasks = await submit_mix(xapi, target)
    batch = await xapi.raw("POST", f"{API}/batches", "\n".join(target.url(f"/page/b{i}") for i in range(3)),
                           {"Content-Type": "text/plain"})
    assert batch.code == 201, batch.body
    batch_id = json.loads(batch.body)["batch"]["id"]
    code, page = await xapi.call("GET", f"{API}/queue_tasks?batch={batch_id}")
    assert code == 200, page
    in_batch = [t["id"] for t in page["tasks"]]
    for task_id in in_batch:
        await xapi.wait_finished(task_id)

    lines = (await export(xapi, f"?format=jsonl&batch={batch_id}")).body.decode().splitlines()
    assert [json.loads(line)["task"]["id"] for line in lines] == in_batch
    failed = (await export(xapi, "?status=failed&format=jsonl")).body.decode().splitlines()
    assert [json.loads(line)["task"]["url"] for line in failed] == [REFUSED]
    queued = list(csv.DictReader(io.StringIO((await export(xapi, "?format=csv&status=queued")).body.decode())))
    assert [r["id"] for r in queued] == [tasks[-1]["id"]]
    none = (await export(xapi, f"?format=csv&status=failed&batch={batch_id}")).body.decode().splitlines()
    assert none == [",".join(COLUMNS)]
    warc = (await export(xapi, f"?format=warc&batch={batch_id}&status=completed")).body
    ids = [r.rec_headers.get_header("JobQueue-Task-ID") for r in ArchiveIterator(io.BytesIO(warc))
           if r.rec_type == "response"]
    assert ids == in_batch


@pytest.mark.gen_test(timeout=30)
async def test_bad_format_or_filter_is_a_json_400_and_nothing_is_streamed(xapi):
    cases = {
        "?format=xml": "invalid_format",
        "?format=": "invalid_format",
        "?format=JSONL": "invalid_format",
        "?status=done": "invalid_status",
        "?status=": "invalid_status",
        "?batch=not%20an%20id": "invalid_id",
        "?format=csv&stauts=failed": "unknown_parameter",
        "?cursor=abc": "unknown_parameter",
    }
    for query, code in cases.items():
        response = await xapi.raw("GET", f"{API}/export{query}")
        assert response.code == 400, (query, response.body)
        assert response.headers["Content-Type"].startswith("application/json")
        assert "Content-Disposition" not in response.headers
        error = json.loads(response.body)["error"]
        assert error["code"] == code and error["message"], (query, error)
    health = await xapi.raw("GET", "/healthz")
    assert health.code == 200


@pytest.mark.gen_test(timeout=30)
async def test_each_format_is_an_attachment_with_its_type_even_when_empty(xapi):
    expected = {"jsonl": "application/x-ndjson", "csv": "text/csv; charset=utf-8", "warc": "application/warc"}
    for fmt, media_type in expected.items():
        response = await export(xapi, f"?format={fmt}")
        assert response.headers["Content-Type"] == media_type
        match = NAME.fullmatch(response.headers["Content-Disposition"])
        assert match and match.group(1).startswith(fmt), response.headers["Content-Disposition"]
        if fmt == "jsonl":
            assert response.body == b""
        elif fmt == "csv":
            assert response.body == (",".join(COLUMNS) + "\r\n").encode()
        else:
            assert [r.rec_type for r in ArchiveIterator(io.BytesIO(response.body))] == ["warcinfo"]
    default = await export(xapi, "")
    assert default.headers["Content-Type"] == "application/x-ndjson"


async def filled_server(make_server: Any, tmp_path: Any, n: int, body_bytes: int) -> tuple[Any, Api]:
    """A server (routing /export) on a database holding n completed jobs written straight through the store."""
    store = SQLiteStore(str(tmp_path / "jobqueue.db"))
    await store.open()
    await fill(store, n, body_bytes)
    await store.close()
    server = await make_server()
    route_export(server)
    return server, Api(f"http://127.0.0.1:{server.port}")


@pytest.mark.gen_test(timeout=60)
async def test_a_store_error_mid_stream_cuts_the_download_instead_of_ending_it(make_server, tmp_path, caplog):
    server, api = await filled_server(make_server, tmp_path, 600, 2048)
    store = server.service.store
    real_list, calls = store.list, []

    async def failing_list(*args: Any) -> Any:
        calls.append(args)
        if len(calls) == 2:
            raise StoreError("the database went away")
        return await real_list(*args)

    store.list = failing_list
    received = bytearray()
    client = AsyncHTTPClient(force_instance=True)
    try:
        with caplog.at_level(logging.ERROR, logger="jobqueue.export"), pytest.raises(HTTPClientError):
            await client.fetch(HTTPRequest(f"{api.base_url}{API}/export?format=jsonl",
                                           streaming_callback=received.extend, request_timeout=30))
        assert len(received) > 64 * 1024  # the answer had started: a 200 that never finished
        assert any("export cut short" in r.getMessage() for r in caplog.records)
        # an error before the first byte is the usual JSON error, and the server stays healthy
        calls.clear()
        calls.append(None)
        response = await api.raw("GET", f"{API}/export?format=csv")
        assert response.code == 503 and json.loads(response.body)["error"]["code"] == "database_unavailable"
        assert "Content-Disposition" not in response.headers
        store.list = real_list
        lines = (await export(api, "?format=jsonl")).body.splitlines()
        assert len(lines) == 600
    finally:
        client.close()
        api.close()


@pytest.mark.gen_test(timeout=90)
async def test_a_reader_that_stops_reading_holds_the_walk_back_and_leaving_ends_it(make_server, tmp_path):
    n, pages = 4000, 4000 // 200
    server, api = await filled_server(make_server, tmp_path, n, 20480)
    store = server.service.store
    real_list, calls = store.list, []

    async def counting_list(*args: Any) -> Any:
        calls.append(args)
        return await real_list(*args)

    store.list = counting_list
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(f"GET {API}/export?format=jsonl HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 200") and b"chunked" in head.lower()
        # an observation window, not a synchronisation: a walk that ignored the stalled reader would read
        # most of its 20 pages (about 110 MB of JSON) in this time; socket buffers hold about one page
        await asyncio.sleep(1.5)
        assert 1 <= len(calls) <= 4, f"{len(calls)} of {pages} pages read for a reader that reads nothing"
        assert ExportHandler.running == 1
    finally:
        writer.close()
    await wait_for(lambda: _true(ExportHandler.running == 0), 20, "the export to stop once its reader left")
    assert len(calls) < pages
    health = await api.raw("GET", "/healthz")
    assert health.code == 200
    api.close()


async def _true(value: bool) -> bool:
    return value


@pytest.mark.slow
@pytest.mark.gen_test(timeout=300)
async def test_exporting_20000_jobs_keeps_the_server_memory_flat(tmp_path):
    n = 20_000
    db = str(tmp_path / "big.db")
    store = SQLiteStore(db)
    await store.open()
    await fill(store, n, 4096)
    await store.close()
    server = ExportServer(db).start()
    client = AsyncHTTPClient(force_instance=True, max_body_size=1 << 40)
    lines, size, peak = 0, 0, 0.0
    base = server.rss_mb()

    def on_chunk(chunk: bytes) -> None:
        nonlocal lines, size, peak
        lines += chunk.count(b"\n")
        size += len(chunk)
        peak = max(peak, server.rss_mb())

    try:
        response = await client.fetch(HTTPRequest(f"{server.base}{API}/export?format=jsonl",
                                                  streaming_callback=on_chunk, request_timeout=240))
        assert response.code == 200
    finally:
        client.close()
        server.stop()
    assert lines == n and size > 100_000_000  # base64 bodies: far more than the growth allowed
    assert peak - base < 25, f"the server grew from {base:.1f} MB to {peak:.1f} MB exporting {size / 1e6:.0f} MB"


@pytest.mark.gen_test(timeout=60)
async def test_the_walk_reads_every_job_once_with_its_result_on_every_backend(open_store):
    store = await open_store()
    await fill(store, 250, 300)
    seen = [item async for item in walk(store, TaskFilter(status="completed"), with_body=True, page_size=100)]
    assert len(seen) == len({i.task.id for i in seen}) == 250
    assert [i.task.id for i in seen] == sorted((i.task.id for i in seen), reverse=True)  # newest first
    for item in seen:
        assert item.result is not None and item.result.body is not None
        assert hashlib.sha256(item.result.body).hexdigest() == item.result.sha256
    bare = [item async for item in walk(store, TaskFilter(), with_body=False, page_size=100)]
    assert len(bare) == 250 and all(i.result is not None and i.result.body is None for i in bare)
    assert [item async for item in walk(store, TaskFilter(status="failed"), with_body=False)] == []


@pytest.mark.gen_test(timeout=30)
async def test_exports_beyond_the_limit_wait_their_turn_with_a_429(xapi, monkeypatch):
    monkeypatch.setattr(ExportHandler, "running", MAX_EXPORTS)  # as if that many were streaming now
    response = await xapi.raw("GET", f"{API}/export?format=csv")
    assert response.code == 429 and response.headers["Retry-After"]
    assert json.loads(response.body)["error"]["code"] == "too_many_exports"
    monkeypatch.setattr(ExportHandler, "running", MAX_EXPORTS - 1)
    await export(xapi, "?format=csv")
    assert ExportHandler.running == MAX_EXPORTS - 1  # the finished export gave its place back


@pytest.mark.gen_test(timeout=60)
async def test_warc_response_headers_are_the_ones_received(xapi, target):
    _code, body = await xapi.call("POST", f"{API}/queue_tasks", {"url": target.url("/raw/archival")})
    done = await xapi.wait_finished(body["task"]["id"])
    assert done["status"] == "completed", done
    response = await export(xapi, "?format=warc")
    [(http, payload)] = [(r.http_headers, r.content_stream().read())  # read while the iterator is on it
                         for r in ArchiveIterator(io.BytesIO(response.body), check_digests="raise")
                         if r.rec_type == "response"]
    assert (http.protocol, http.statusline) == ("HTTP/1.1", "200 Fine Thanks")
    assert http.headers == [("X-ODD-case", "Kept"), ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"),
                            ("Content-Type", "text/plain"), ("Content-Length", str(len(b"archived words\n")))]
    assert payload == b"archived words\n"  # stored decoded, so no Content-Encoding that would decode it twice
