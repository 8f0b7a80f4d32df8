"""Retention: expired finished jobs go in small batches, each URL keeps its newest results, bodies go with
their last reference, and the file gives the space back; plus purging one job."""

from __future__ import annotations

import os
import sqlite3

import pytest

from jobqueue.config import ConfigError, load_settings
from jobqueue.errors import Conflict, NotFound
from jobqueue.history.retention import DAY, RetentionPolicy, apply_retention
from jobqueue.history.service import HistoryService
from jobqueue.housekeeping import housekeep
from jobqueue.models import TaskError
from jobqueue.store.base import Lease
from tests.test_storage import LEASE, PAGE, fetched, new, result_for


async def failed_job(store) -> str:
    [task] = await store.add([new("https://example.com/broken")])
    [claimed] = await store.claim(1, LEASE, [])
    await store.fail(Lease(task.id, claimed.lease_token), TaskError("http_error", "HTTP 500"), 500)
    return task.id


@pytest.mark.gen_test
async def test_expired_jobs_go_in_batches_keeping_each_urls_newest_and_shared_bodies(open_store, clock):
    store = await open_store()
    a = [await fetched(store, "https://example.com/a", PAGE) for _ in range(5)]
    b = [await fetched(store, "https://example.com/b", b"b%d" % i) for i in range(2)]
    broken = await failed_job(store)
    clock.advance(2 * DAY)
    fresh = await fetched(store, "https://example.com/c", b"fresh")
    [waiting] = await store.add([new("https://example.com/later")])
    heard: list[str] = []
    policy = RetentionPolicy(days=1, keep_per_url=2, batch=2)
    assert await apply_retention(store, policy, clock.now, heard.append) == 4
    assert sorted(heard) == sorted([*a[:3], broken])
    for task_id in (*a[:3], broken):
        assert await store.get(task_id) is None and await store.get_result(task_id, False) is None
    for task_id in (*a[3:], *b, fresh):
        assert (await store.get_result(task_id, True)).body is not None
    assert (await store.get(waiting.id)).status == "queued"
    assert (await store.get_result(a[4], True)).body == PAGE  # the shared body stays with the kept results
    stats = await store.storage_stats()
    assert (stats["results"], stats["distinct_bodies"]) == (5, 4)
    assert await apply_retention(store, policy, clock.now) == 0  # nothing left to do
    assert await apply_retention(store, RetentionPolicy(), clock.now) == 0  # no --retention-days: keep all


@pytest.mark.gen_test
async def test_without_keep_per_url_every_expired_job_goes_with_its_bodies(open_store, clock):
    store = await open_store()
    for i in range(3):
        await fetched(store, f"https://example.com/{i}", PAGE + b"%d" % i)
    clock.advance(0.5 * DAY + 1)
    await housekeep(store, RetentionPolicy(days=0.5))
    assert await store.storage_stats() == {"results": 0, "distinct_bodies": 0, "body_bytes": 0, "stored_bytes": 0}
    assert (await store.counts())["completed"] == 0


@pytest.mark.gen_test
async def test_sqlite_gives_freed_pages_back_to_the_file_system(open_store, clock, tmp_path):
    store = await open_store()
    if store.name != "sqlite":
        pytest.skip("reads the SQLite file's pages")
    path = os.path.join(str(tmp_path), "contract.db")
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA auto_vacuum").fetchone() == (2,)  # INCREMENTAL for a new file
    for i in range(40):
        await fetched(store, f"https://example.com/{i}", os.urandom(64 * 1024))  # incompressible, distinct
    full = conn.execute("PRAGMA page_count").fetchone()[0]
    clock.advance(2 * DAY)
    assert await apply_retention(store, RetentionPolicy(days=1, vacuum_pages=64), clock.now) == 40
    assert conn.execute("PRAGMA freelist_count").fetchone() == (0,)
    assert conn.execute("PRAGMA page_count").fetchone()[0] < full / 4
    conn.close()


def test_the_retention_options_are_read_and_checked():
    settings = load_settings(["--retention-days", "0.5", "--keep-per-url", "3", "--min-every", "1"], environ={})
    assert RetentionPolicy.from_settings(settings) == RetentionPolicy(days=0.5, keep_per_url=3)
    assert settings.min_every == 1.0 and RetentionPolicy.from_settings(load_settings([], environ={})).active is False
    for argv in (["--retention-days", "0"], ["--keep-per-url", "-1"], ["--min-every", "0"]):
        with pytest.raises(ConfigError):
            load_settings(argv, environ={})


@pytest.mark.gen_test
async def test_purging_one_finished_job_takes_its_result_and_unshared_body(make_server, target):
    jq = await make_server()
    await jq.pool.stop()  # the test drives the job by hand
    service, store = HistoryService(jq.service), jq.service.store
    [done] = await store.add([new(target.url("/utf8"))])
    [claimed] = await store.claim(1, LEASE, [])
    await store.complete(Lease(done.id, claimed.lease_token), result_for(done.id, done.url, b"unique"))
    [waiting] = await store.add([new(target.url("/page/x"))])
    assert await service.purge(done.id) == done.id
    assert await store.get(done.id) is None
    assert (await service.storage())["distinct_bodies"] == 0
    with pytest.raises(NotFound):
        await service.purge(done.id)
    with pytest.raises(Conflict, match="cancel it first"):
        await service.purge(waiting.id)
