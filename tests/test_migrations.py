"""Schema migrations: a database written by release 0.1 opens with today's code and keeps every job and result."""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3

import pytest

from jobqueue.store.base import TaskFilter
from jobqueue.store.sqlite.migrations import LATEST, MIGRATIONS, current_version, migrate
from jobqueue.store.sqlite.store import SQLiteStore

DUMP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "release-0.1.sql")


def release_db(tmp_path) -> str:
    """A real database file holding what release 0.1's server wrote (see fixtures/make_release_db.py)."""
    path = os.path.join(str(tmp_path), "old.db")
    conn = sqlite3.connect(path)
    conn.executescript(open(DUMP).read())
    conn.close()
    return path


def snapshot(path: str) -> tuple[list[tuple], list[tuple]]:
    conn = sqlite3.connect(path)
    jobs = conn.execute("SELECT id, url, status, attempts, created_at, finished_at, http_status, error_code"
                        " FROM jobs ORDER BY seq").fetchall()
    results = conn.execute("SELECT job_id, http_status, headers, size, sha256, body FROM results"
                           " ORDER BY seq").fetchall()
    conn.close()
    return jobs, results


def test_the_fixture_is_release_0_1s_schema():
    conn = sqlite3.connect(":memory:")
    conn.executescript(open(DUMP).read())
    assert current_version(conn) == 1
    assert "priority" not in {r[1] for r in conn.execute("PRAGMA table_info(jobs)")}


@pytest.mark.gen_test
async def test_a_release_0_1_database_opens_and_keeps_every_job_result_and_body(tmp_path):
    path = release_db(tmp_path)
    jobs_before, results_before = snapshot(path)
    assert len(jobs_before) == 11 and len(results_before) == 8
    store = SQLiteStore(path)
    await store.open()
    try:
        page = await store.list(TaskFilter(), 100, None)
        by_id = {t.id: t for t in page.items}
        assert len(by_id) == 11
        for job_id, url, status, attempts, _created, finished, http_status, error_code in jobs_before:
            task = by_id[job_id]
            assert (task.url, task.status, task.attempts, task.finished_at, task.http_status) == (
                url, status, attempts, finished, http_status)
            assert (task.error.code if task.error else None) == error_code
            assert task.priority == 0 and task.tags == () and task.batch_id is None
        for job_id, http_status, _headers, size, sha256, body in results_before:
            result = await store.get_result(job_id, with_body=True)
            assert result.body == body and len(result.body) == size and result.http_status == http_status
            if re.fullmatch("[0-9a-f]{64}", sha256):
                assert hashlib.sha256(result.body).hexdigest() == sha256
        counts = await store.counts()
        assert counts == {"queued": 1, "running": 0, "completed": 8, "failed": 1, "cancelled": 1}
        claimed = await store.claim(5, 30.0, [])
        assert [t.url for t in claimed] == ["https://example.invalid/later"]
    finally:
        await store.close()
    conn = sqlite3.connect(path)
    assert current_version(conn) == LATEST
    assert [r[0] for r in conn.execute("SELECT version FROM schema_version ORDER BY version")] == [
        m.version for m in MIGRATIONS]


def test_migrating_twice_changes_nothing_and_a_newer_database_is_refused(tmp_path):
    path = release_db(tmp_path)
    conn = sqlite3.connect(path, isolation_level=None)
    assert migrate(conn) == [m.version for m in MIGRATIONS if m.version > 1]
    assert migrate(conn) == []
    conn.execute(f"INSERT INTO schema_version (version, description) VALUES ({LATEST + 1}, 'from the future')")
    with pytest.raises(sqlite3.DatabaseError, match="newer than this jobqueue"):
        migrate(conn)


def test_a_failing_step_leaves_the_database_as_it_was(tmp_path, monkeypatch):
    from jobqueue.store.sqlite import migrations as sqlite_migrations

    path = release_db(tmp_path)
    broken = (*MIGRATIONS[:-1], sqlite_migrations.Migration(MIGRATIONS[-1].version, "broken",
                                                          MIGRATIONS[-1].sql + "\nSELECT * FROM no_such_table;"))
    monkeypatch.setattr(sqlite_migrations, "MIGRATIONS", broken)
    conn = sqlite3.connect(path, isolation_level=None)
    with pytest.raises(sqlite3.OperationalError):
        sqlite_migrations.migrate(conn)
    assert current_version(conn) == 1
    assert "priority" not in {r[1] for r in conn.execute("PRAGMA table_info(jobs)")}
    assert conn.execute("SELECT COUNT(*) FROM jobs").fetchone()[0] == 11


V3_DUMP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "schema-v3.sql")


def v3_db(tmp_path) -> str:
    """A database the schema-3 store wrote (bodies in results rows, shared by body_from; fixtures/make_v3_db.py)."""
    path = os.path.join(str(tmp_path), "v3.db")
    conn = sqlite3.connect(path)
    conn.executescript(open(V3_DUMP).read())
    conn.close()
    return path


def stored_bodies(path: str) -> dict[str, bytes | None]:
    """Every result's body as the old schema held it: its own, or its owner's through body_from."""
    conn = sqlite3.connect(path)
    if "body_from" not in {r[1] for r in conn.execute("PRAGMA table_info(results)")}:  # release 0.1
        return dict(conn.execute("SELECT job_id, body FROM results").fetchall())
    rows = conn.execute("SELECT job_id, COALESCE(body, (SELECT o.body FROM results o WHERE o.job_id ="
                        " results.body_from)) FROM results").fetchall()
    conn.close()
    return dict(rows)


@pytest.mark.gen_test
@pytest.mark.parametrize("make", [release_db, v3_db], ids=["release-0.1", "schema-v3"])
async def test_bodies_move_into_the_content_addressed_store_byte_identical(tmp_path, make):
    path = make(tmp_path)
    before = stored_bodies(path)
    assert len(before) >= 5 and any(b for b in before.values())
    store = SQLiteStore(path)
    await store.open()
    try:
        for job_id, body in before.items():
            assert (await store.get_result(job_id, with_body=True)).body == body
        stats = await store.storage_stats()
        distinct = {hashlib.sha256(b).hexdigest() for b in before.values() if b is not None}
        assert stats["results"] == len(before) and stats["distinct_bodies"] == len(distinct)
        assert stats["body_bytes"] == sum(len(b) for b in before.values() if b is not None)
        assert await store.get(next(iter(before))) is not None  # jobs read (attempt_log added if missing)
    finally:
        await store.close()
    conn = sqlite3.connect(path)
    left = conn.execute("SELECT COUNT(*) FROM results WHERE body IS NOT NULL OR body_from IS NOT NULL").fetchone()
    assert left == (0,)
    with_body = sum(1 for b in before.values() if b is not None)
    assert conn.execute("SELECT SUM(refs) FROM body_refs").fetchone()[0] == with_body
    conn.close()


def test_the_v3_fixture_shares_a_body_through_body_from():
    conn = sqlite3.connect(":memory:")
    conn.executescript(open(V3_DUMP).read())
    assert conn.execute("SELECT MAX(version) FROM schema_version").fetchone() == (3,)
    assert conn.execute("SELECT COUNT(*) FROM results WHERE body_from IS NOT NULL").fetchone()[0] >= 1


V6_DUMP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "schema-v6.sql")


def v6_db(tmp_path) -> tuple[str, dict[str, int]]:
    """A database file the schema-6 store wrote, and each body's reference count as it kept it."""
    path = os.path.join(str(tmp_path), "v6.db")
    conn = sqlite3.connect(path)
    conn.executescript(open(V6_DUMP).read())
    refs = dict(conn.execute("SELECT sha256, refs FROM bodies").fetchall())
    conn.close()
    return path, refs


@pytest.mark.gen_test
async def test_a_schema_6_database_keeps_its_reference_counts_in_body_refs(tmp_path):
    """Release 0.3's first pass counted a body's results in the body's own row (fixtures/make_v6_db.py)."""
    path, old_refs = v6_db(tmp_path)
    assert sorted(old_refs.values()) == [1, 1, 3]
    store = SQLiteStore(path)
    await store.open()
    try:
        moved = await store._read(lambda c: dict(c.execute(
            "SELECT bodies.sha256, body_refs.refs FROM body_refs JOIN bodies ON bodies.id = body_refs.body_id")
            .fetchall()))
        assert moved == old_refs
        shared = [r.id for r in (await store.list_results(10, None)).items if r.url.startswith("https://a.example/")]
        for job_id in shared[:2]:
            await store.retry(job_id)  # drops its result: the shared body stays for the third
        stats = await store.storage_stats()
        assert stats["results"] == 3 and stats["distinct_bodies"] == 3
        assert (await store.get_result(shared[2], with_body=True)).body.startswith(b"<html><body><p>the same")
        await store.retry(shared[2])  # the last result that had it: the body goes too
        stats = await store.storage_stats()
        assert stats["results"] == 2 and stats["distinct_bodies"] == 2
    finally:
        await store.close()
