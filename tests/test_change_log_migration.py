"""Migration 8 on a database written by release 0.3 (schema 7): the change log starts empty, and every
change made after the upgrade is in it (tests/fixtures/make_v7_db.py made the file)."""

from __future__ import annotations

import sqlite3

import pytest

from jobqueue.store.sqlite.store import SQLiteStore
from tests.test_migration_release_0_3 import WRITTEN_AT, v7_db


@pytest.mark.gen_test
async def test_a_release_0_3_database_gets_an_empty_change_log_that_records_what_follows(tmp_path):
    path = v7_db(tmp_path)
    store = SQLiteStore(path, clock=lambda: WRITTEN_AT + 7200)
    await store.open()
    try:
        conn = sqlite3.connect(path)
        # the old jobs are not replayed: the one change is the run migration 11 queued for a stopped schedule
        assert conn.execute("SELECT status FROM job_changes").fetchall() == [("queued",)]
        conn.close()
        start = (await store.changes_after(None, 0)).position
        claimed = await store.claim(10, 30.0, [])
        assert claimed
        page = await store.changes_after(start, 100)
        assert sorted((t.id, t.status, t.attempts) for t in page.tasks) == \
            sorted((t.id, "running", t.attempts) for t in claimed)
        assert {t.url for t in page.tasks} == {t.url for t in claimed} and not page.more and not page.lost
    finally:
        await store.close()
