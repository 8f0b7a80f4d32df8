"""Bodies stored once per sha256 and compressed, their figures kept as running totals, GET /stats/storage.

The store cases run on every backend in the contract style.
"""

from __future__ import annotations

import os
import sqlite3

import pytest

from jobqueue.models import Result, TaskIds
from jobqueue.spec import JobSpec
from jobqueue.store.base import Lease, NewTask
from tests.helpers import API, Api

LEASE = 30.0
IDS = TaskIds()
PAGE = b"<html><body>" + b"".join(b"<p>paragraph %d of a long page</p>\n" % i for i in range(600)) + b"</body></html>"
OTHER = PAGE.replace(b"paragraph 7 ", b"paragraph seven ")


def new(url: str = "https://example.com/", spec: JobSpec | None = None) -> NewTask:
    return NewTask(IDS.new(), url, url.split("/")[2], spec or JobSpec())


def result_for(task_id: str, url: str, body: bytes, **extra) -> Result:
    return Result(id=task_id, url=url, final_url=url, http_status=200,
                  headers={"content-type": "text/html; charset=utf-8", **extra}, content_type="text/html",
                  encoding="utf-8", encoding_source="header", size=len(body), truncated=False, elapsed_ms=1.0,
                  fetched_at=1.0, sha256="0" * 64, body=body)


async def fetched(store, url: str, body: bytes, **headers) -> str:
    """Add a job for `url` and complete it with `body`; its id."""
    [task] = await store.add([new(url)])
    [claimed] = await store.claim(1, LEASE, [])
    assert claimed.id == task.id
    assert await store.complete(Lease(task.id, claimed.lease_token), result_for(task.id, url, body, **headers))
    return task.id


@pytest.mark.gen_test
async def test_a_body_is_stored_once_compressed_and_reads_back_byte_identical(open_store):
    store = await open_store()
    ids = [await fetched(store, f"https://example.com/{i}", PAGE) for i in range(3)]
    other = await fetched(store, "https://example.com/other", OTHER)
    tiny = await fetched(store, "https://example.com/tiny", b"ok")
    empty = await fetched(store, "https://example.com/empty", b"")
    for task_id, body in [*((i, PAGE) for i in ids), (other, OTHER), (tiny, b"ok"), (empty, b"")]:
        assert (await store.get_result(task_id, with_body=True)).body == body
        assert (await store.get_result(task_id, with_body=False)).body is None
    stats = await store.storage_stats()
    assert stats["results"] == 6 and stats["distinct_bodies"] == 4
    assert stats["body_bytes"] == 3 * len(PAGE) + len(OTHER) + 2
    assert stats["stored_bytes"] < (len(PAGE) + len(OTHER)) / 4  # deduplicated, then compressed


@pytest.mark.gen_test
async def test_a_body_goes_only_with_its_last_result(open_store):
    store = await open_store()
    first = await fetched(store, "https://example.com/a", PAGE)
    second = await fetched(store, "https://example.com/b", PAGE)
    [reused] = await store.add([new("https://example.com/a", JobSpec(max_age=3600))])
    assert reused.reused_from == first
    assert (await store.storage_stats())["distinct_bodies"] == 1
    await store.retry(first)  # its result goes; the body stays for the two others
    assert (await store.get_result(second, True)).body == PAGE
    assert (await store.get_result(reused.id, True)).body == PAGE
    assert await store.delete_many([second]) == [second]
    stats = await store.storage_stats()
    assert (stats["results"], stats["distinct_bodies"], stats["body_bytes"]) == (1, 1, len(PAGE))
    assert await store.delete_many([reused.id]) == [reused.id]
    assert await store.storage_stats() == {"results": 0, "distinct_bodies": 0, "body_bytes": 0, "stored_bytes": 0}


@pytest.mark.gen_test
async def test_sqlite_keeps_small_bodies_as_they_are_and_totals_match_a_full_count(open_store, tmp_path):
    store = await open_store()
    if store.name != "sqlite":
        pytest.skip("this case reads the SQLite file itself")
    await fetched(store, "https://example.com/a", PAGE)
    await fetched(store, "https://example.com/b", b"<p>short</p>")
    await fetched(store, "https://example.com/c", PAGE)
    conn = sqlite3.connect(os.path.join(str(tmp_path), "contract.db"))
    codecs = dict(conn.execute("SELECT size, codec FROM bodies").fetchall())
    assert codecs == {len(PAGE): "zstd", len(b"<p>short</p>"): "identity"}
    assert conn.execute("SELECT body_refs.refs FROM body_refs JOIN bodies ON bodies.id = body_id WHERE size = ?",
                        (len(PAGE),)).fetchone()[0] == 2
    scanned = conn.execute("SELECT (SELECT COUNT(*) FROM results), (SELECT COUNT(*) FROM bodies),"
                           " (SELECT SUM(b.size) FROM results r JOIN bodies b ON b.id = r.body_id),"
                           " (SELECT SUM(stored_size) FROM bodies)").fetchone()
    assert tuple((await store.storage_stats()).values()) == scanned
    conn.close()


@pytest.mark.gen_test
async def test_stats_storage_answers_the_running_totals(make_server, target):
    jq = await make_server()
    api = Api(f"http://127.0.0.1:{jq.port}")
    try:
        tasks = await api.submit_many([target.url("/big"), target.url("/big?again=1"), target.url("/utf8")])
        finished = [await api.wait_finished(t["id"]) for t in tasks]
        assert [t["status"] for t in finished] == ["completed"] * 3
        code, stats = await api.call("GET", f"{API}/stats/storage")
        assert code == 200 and set(stats) == {"results", "distinct_bodies", "body_bytes", "stored_bytes"}
        sizes = [(await api.call("GET", f"{API}/results/{t['id']}"))[1]["result"]["size"] for t in tasks]
        assert stats["results"] == 3 and stats["distinct_bodies"] == 2 and stats["body_bytes"] == sum(sizes)
        assert stats["stored_bytes"] < stats["body_bytes"] / 2
        code, body = await api.call("GET", f"{API}/results/{tasks[1]['id']}")
        assert body["result"]["size"] == sizes[0] and body["result"]["body"]
    finally:
        api.close()
