"""The SQLite file goes wrong under a running server: deleted, replaced, locked by another process, full."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from jobqueue.store.base import NewTask, StoreError
from jobqueue.store.sqlite.guard import WriteProbe
from jobqueue.store.sqlite.store import SQLiteStore
from jobqueue.store.sqlite.thread import WriterThread, connect
from tests.helpers import API, wait_for

SUFFIXES = ("", "-wal", "-shm")
LOCKER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("ROLLBACK")
"""


@asynccontextmanager
async def lock_held_by_another_process(db: str) -> AsyncIterator[None]:
    """Another process holds BEGIN EXCLUSIVE on the file until the block ends."""
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", LOCKER, db, stdin=asyncio.subprocess.PIPE,
                                                stdout=asyncio.subprocess.PIPE)
    try:
        assert await asyncio.wait_for(proc.stdout.readline(), 15) == b"locked\n"
        yield
        proc.stdin.write(b"release\n")
        await proc.stdin.drain()
        assert await asyncio.wait_for(proc.wait(), 15) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def database_path(server) -> str:
    return server.settings.database.removeprefix("sqlite:///")


async def ping_reports_the_lock(store: SQLiteStore) -> bool:
    """True once ping (which never writes) sees a write waiting too long for another process's lock."""
    try:
        await store.ping()
    except StoreError as exc:
        assert "lock" in str(exc), exc
        return True
    return False


def urls_in(db: str) -> list[str]:
    with sqlite3.connect(db) as conn:
        return [row[0] for row in conn.execute("SELECT url FROM jobs ORDER BY seq")]


@pytest.mark.gen_test(timeout=30)
async def test_deleted_database_turns_healthz_and_writes_into_503(jq, api, target, caplog):
    caplog.set_level(logging.ERROR, logger="jobqueue.store")
    db = database_path(jq)
    await api.submit(target.url("/page/1"))
    for suffix in SUFFIXES:
        os.remove(db + suffix)
    got, health = await api.call("GET", "/healthz")
    assert got == 503 and health["status"] == "unavailable" and health["database"] == "sqlite"
    assert health["error"]["code"] == "database_unavailable"
    assert "deleted" in health["error"]["message"] and "restart" in health["error"]["message"]
    got, payload = await api.call("POST", f"{API}/queue_tasks", {"url": target.url("/page/2")})
    assert got == 503 and payload["error"]["code"] == "database_unavailable"
    got, payload = await api.call("GET", f"{API}/queue_tasks")
    assert got == 503 and payload["error"]["code"] == "database_unavailable"
    assert (await api.call("GET", "/healthz"))[0] == 503
    logged = [r for r in caplog.records if r.name == "jobqueue.store" and r.levelno == logging.ERROR]
    assert len(logged) == 1 and "deleted" in logged[0].getMessage()


@pytest.mark.gen_test(timeout=30)
async def test_a_write_to_a_replaced_database_is_rolled_back_not_acknowledged(jq, api, target):
    db = database_path(jq)
    moved = os.path.join(os.path.dirname(db), "moved.db")
    [before] = await api.submit_many([target.url("/page/1")])
    for suffix in SUFFIXES:
        os.rename(db + suffix, moved + suffix)
    sqlite3.connect(db).close()  # another, empty file now has the name, as after a careless restore
    got, payload = await api.call("POST", f"{API}/queue_tasks", {"url": target.url("/page/2")})
    assert got == 503 and payload["error"]["code"] == "database_unavailable"
    got, health = await api.call("GET", "/healthz")
    assert got == 503 and "replaced" in health["error"]["message"]
    # the server still holds the old file: the refused write must not be in it either
    assert urls_in(moved) == [before["url"]]


@pytest.mark.slow
@pytest.mark.gen_test(timeout=60)
async def test_a_lock_held_by_another_process_gives_quick_503s_and_stores_nothing(jq, api, target):
    db = database_path(jq)
    busy_timeout = jq.store.busy_timeout
    async with lock_held_by_another_process(db):
        started = time.monotonic()
        body = json.dumps({"url": target.url("/page/locked")})
        post = asyncio.ensure_future(api.raw("POST", f"{API}/queue_tasks", body, {"Content-Type": "application/json"}))

        async def unavailable() -> dict | None:
            got, health = await api.call("GET", "/healthz")  # read-only: it sees the POST's write wait for the lock
            return health if got == 503 else None

        health = await wait_for(unavailable, 2.5, "/healthz to report the lock")
        assert health["error"]["code"] == "database_unavailable" and "lock" in health["error"]["message"]
        response = await post
        payload = json.loads(response.body)
        assert response.code == 503 and payload["error"]["code"] == "database_unavailable"
        assert int(response.headers["Retry-After"]) >= 1
        assert time.monotonic() - started < busy_timeout + 2
    assert target.url("/page/locked") not in urls_in(db)

    async def healthy() -> bool:
        return (await api.call("GET", "/healthz"))[0] == 200

    await wait_for(healthy, 10, "/healthz to recover once the lock is released")
    task = await api.submit(target.url("/page/after"))
    assert (await api.wait_finished(task["id"]))["status"] == "completed"


@pytest.mark.gen_test(timeout=30)
async def test_writes_queued_behind_a_held_lock_fail_with_it_instead_of_waiting_again(tmp_path):
    db = str(tmp_path / "locked.db")
    store = SQLiteStore(db, busy_timeout=3.0, probe_timeout=0.5)
    await store.open()
    try:
        async with lock_held_by_another_process(db):
            started = time.monotonic()
            first = asyncio.ensure_future(store.add([NewTask("a", "https://example.com/a", "example.com")]))
            # the probe gives up once the write has waited 0.5 s, while the writer still waits
            await wait_for(lambda: ping_reports_the_lock(store), 1.5, "ping to report the lock")
            assert time.monotonic() - started < 1.5
            queued_at = time.monotonic()
            with pytest.raises(StoreError) as second:
                await store.add([NewTask("b", "https://example.com/b", "example.com")])
            assert time.monotonic() - queued_at < store.busy_timeout + 1  # not a full wait of its own on top
            assert second.value.retry_after is not None
            with pytest.raises(StoreError, match="locked by another process"):
                await first
        assert (await store.counts())["queued"] == 0
        await store.ping()
        await store.add([NewTask("c", "https://example.com/c", "example.com")])
        assert (await store.counts())["queued"] == 1
    finally:
        await store.close()


@pytest.mark.gen_test(timeout=30)
async def test_a_full_disk_shows_in_the_write_probe_until_a_write_succeeds(tmp_path):
    conn = connect(str(tmp_path / "full.db"), "FULL")
    conn.execute("CREATE TABLE t (x BLOB)")
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages + 2}")  # SQLite's own SQLITE_FULL, as on a full disk
    writer = WriterThread(conn)
    probe = WriteProbe(writer, "full.db", timeout=1.0, busy_timeout=1.0)
    try:
        await probe.run()
        with pytest.raises(sqlite3.OperationalError, match="full"):
            await writer.submit(lambda c: c.execute("INSERT INTO t VALUES (zeroblob(100000))"))
        with pytest.raises(StoreError, match="disk space"):
            await probe.run()
        await writer.submit(lambda c: c.execute("PRAGMA max_page_count = 1000000"))
        await writer.submit(lambda c: c.execute("INSERT INTO t VALUES (zeroblob(100000))"))
        await probe.run()
    finally:
        writer.stop()


def _kernel_name(thread_id: int | None) -> str:
    with open(f"/proc/self/task/{thread_id}/comm") as handle:
        return handle.read().strip()


@pytest.mark.gen_test(timeout=30)
async def test_the_writer_thread_names_itself_so_benches_can_count_its_cpu(tmp_path):
    from bench.harness import thread_cpu_seconds
    from jobqueue.store.sqlite.thread import NATIVE_NAME

    writer = WriterThread(connect(str(tmp_path / "named.db"), "FULL"))
    try:
        await writer.submit(lambda c: c.execute("CREATE TABLE t (x)"))  # the thread has run its first line
        assert _kernel_name(writer._thread.native_id) == NATIVE_NAME.decode()
        busy = writer.submit(lambda c: c.execute("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
                                                 "WHERE i < 1000000) SELECT count(*) FROM n").fetchone())
        before = thread_cpu_seconds([os.getpid()], NATIVE_NAME)
        await busy
        assert thread_cpu_seconds([os.getpid()], NATIVE_NAME) > before  # its CPU is counted under its name
    finally:
        writer.stop()


@pytest.mark.gen_test(timeout=30)
async def test_a_write_waiting_for_another_processes_lock_commits_once_it_is_released(tmp_path):
    db = str(tmp_path / "waits.db")
    store = SQLiteStore(db, busy_timeout=20.0, probe_timeout=0.3)
    await store.open()
    try:
        async with lock_held_by_another_process(db):
            waiting = asyncio.ensure_future(store.add([NewTask("a", "https://example.com/a", "example.com")]))
            # the writer is stuck behind the lock: the probe gives up
            await wait_for(lambda: ping_reports_the_lock(store), 5, "ping to report the lock")
            assert not waiting.done()
        [added] = await waiting  # the writer's own retries took the lock once it was free
        assert added.id == "a" and (await store.counts())["queued"] == 1
    finally:
        await store.close()
