"""A database written by release 0.3 (schema 7) opens with today's code and keeps every job, result,
body, batch and schedule, and its work goes on (fixtures/make_v7_db.py)."""

from __future__ import annotations

import hashlib
import os
import sqlite3

import pytest

from jobqueue.models import Result
from jobqueue.store.base import Lease
from jobqueue.store.sqlite import SQLiteStore
from jobqueue.store.sqlite_migrations import LATEST, current_version

DUMP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "schema-v7.sql")
WRITTEN_AT = 1_700_000_000.0  # the release-0.3 store's clock when it wrote the fixture


def v7_db(tmp_path) -> str:
    """A database file the release-0.3 store wrote."""
    path = os.path.join(str(tmp_path), "v7.db")
    conn = sqlite3.connect(path)
    conn.executescript(open(DUMP).read())
    assert current_version(conn) == 7
    conn.close()
    return path


@pytest.mark.gen_test
async def test_a_release_0_3_database_keeps_its_jobs_results_and_schedules(tmp_path):
    path = v7_db(tmp_path)
    store = SQLiteStore(path, clock=lambda: WRITTEN_AT + 7200)
    await store.open()
    try:
        conn = sqlite3.connect(path)
        assert current_version(conn) == LATEST
        conn.close()
        counts = await store.counts()
        assert {k: counts[k] for k in ("queued", "running", "completed", "failed")} == \
            {"queued": 4, "running": 1, "completed": 3, "failed": 1}
        results = {r.url: r for r in (await store.list_results(10, None)).items}
        assert sorted(results) == ["https://a.example/0", "https://a.example/1", "https://s.example/watched"]
        body = (await store.get_result(results["https://a.example/1"].id, with_body=True)).body
        assert body.startswith(b"<html><body><p>the same page on two addresses")
        [schedule] = (await store.list_schedules(10, None)).items
        assert schedule.url == "https://s.example/watched"
        batch = (await store.list_batches(10, None)).items[0]
        assert batch.total == 2 and batch.tags == ("nightly",)

        # the work goes on: the expired lease, the due schedule run and the queued jobs are all claimed
        claimed = await store.claim(10, 30.0, [])
        assert sorted(t.url for t in claimed) == ["https://b.example/0", "https://b.example/1",
                                                  "https://d.example/later", "https://r.example/slow",
                                                  "https://s.example/watched"]
        slow = next(t for t in claimed if t.url == "https://r.example/slow")
        page = b"<html><p>finished after the upgrade</p></html>"
        done = await store.complete(Lease(slow.id, slow.lease_token), Result(
            id=slow.id, url=slow.url, final_url=slow.url, http_status=200, headers={"content-type": "text/html"},
            content_type="text/html", encoding="utf-8", encoding_source="header", size=len(page), truncated=False,
            elapsed_ms=2.0, fetched_at=WRITTEN_AT + 7200, sha256=hashlib.sha256(page).hexdigest(),
            body=page))
        assert done is not None and done.status == "completed"
        assert (await store.counts())["completed"] == 4
    finally:
        await store.close()
