"""What each commit protects: a submission is synced to the disk before its 201; a claim or an attempt's outcome
commits without waiting for a sync (a power cut may undo it, and the job is fetched again). A power cut is
simulated by a library loaded into a real server (fixtures/powercut.c) that keeps a copy of the write-ahead
log as it was at each sync: the database with that log is what the disk would hold."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sqlite3
import subprocess
import threading

import pytest

from jobqueue.models import Result, TaskIds
from jobqueue.spec import JobSpec
from jobqueue.store.base import Lease, NewTask
from jobqueue.store.sqlite.store import SQLiteStore
from jobqueue.store.sqlite.thread import WriterThread, connect
from jobqueue.webhooks.outbox import Outbox
from jobqueue.webhooks.spec import WebhookSpec
from tests.helpers import API, wait_for
from tests.test_durability import start_server

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHIM = os.path.join(ROOT, "tests", "fixtures", "powercut.c")
N_JOBS = 200
FULL, NORMAL = 2, 1


def level(conn: sqlite3.Connection) -> int:
    """The synchronous level the writer's connection commits at."""
    return int(conn.execute("PRAGMA synchronous").fetchone()[0])


@pytest.mark.gen_test
async def test_a_batch_commits_synced_only_when_it_holds_a_durable_write(tmp_path):
    writer = WriterThread(connect(str(tmp_path / "levels.db"), "FULL"))
    gate = threading.Event()
    try:
        assert await writer.submit(level, durable=False) == NORMAL
        assert await writer.submit(level) == FULL
        held = writer.submit(lambda conn: gate.wait(10))  # the next two queue behind it and share one batch
        relaxed = writer.submit(level, durable=False)
        durable = writer.submit(level)
        gate.set()
        await held
        assert (await relaxed, await durable) == (FULL, FULL)
        assert await writer.submit(level, durable=False) == NORMAL
    finally:
        writer.stop()
    weaker = WriterThread(connect(str(tmp_path / "normal.db"), "NORMAL"))  # --sqlite-synchronous NORMAL stays so
    try:
        assert (await weaker.submit(level), await weaker.submit(level, durable=False)) == (NORMAL, NORMAL)
    finally:
        weaker.stop()


@pytest.mark.gen_test
async def test_a_relaxed_commit_is_synced_once_the_writer_has_been_idle_for_a_moment(tmp_path, monkeypatch):
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    db = str(tmp_path / "idle.db")
    writer = WriterThread(connect(db, "FULL"), sync_within=0.05)
    try:
        await writer.submit(lambda conn: conn.execute("CREATE TABLE t (x)"))
        await writer.submit(lambda conn: conn.execute("INSERT INTO t VALUES (1)"), durable=False)

        async def log_synced() -> bool:
            return any(path.endswith("/idle.db-wal") for path in synced)

        await wait_for(log_synced, 5, "the idle writer to sync the log")
        synced.clear()
        await writer.submit(lambda conn: conn.execute("SELECT 1"), durable=False)  # changes nothing: no sync due
        assert await writer.submit(level, durable=False) == NORMAL
        assert synced == []
    finally:
        writer.stop()


@pytest.mark.gen_test
async def test_a_busy_writer_commits_synced_once_a_relaxed_commit_has_waited_long_enough(tmp_path):
    writer = WriterThread(connect(str(tmp_path / "busy.db"), "FULL"), sync_within=0.05)
    inserted, go, holding, never = (threading.Event() for _ in range(4))

    def insert(conn: sqlite3.Connection) -> None:  # a relaxed change, held until the next batch is queued
        conn.execute("INSERT INTO t VALUES (1)")
        inserted.set()
        go.wait(5)

    def hold(conn: sqlite3.Connection) -> None:  # a batch of 0.1 s: the writer is never idle meanwhile
        holding.set()
        never.wait(0.1)

    try:
        await writer.submit(lambda conn: conn.execute("CREATE TABLE t (x)"))
        first = writer.submit(insert, durable=False)
        assert await asyncio.to_thread(inserted.wait, 5)
        held = writer.submit(hold, durable=False)
        go.set()
        await first
        assert await asyncio.to_thread(holding.wait, 5)
        after = writer.submit(level, durable=False)  # the batch after the long one, past sync_within
        await held
        assert await after == FULL
        assert await writer.submit(level, durable=False) == NORMAL  # synced: relaxed again
    finally:
        writer.stop()


@pytest.mark.gen_test
async def test_each_store_write_asks_the_disk_for_what_it_protects(tmp_path, monkeypatch):
    store = SQLiteStore(str(tmp_path / "flags.db"), outbox=Outbox())
    await store.open()
    try:
        asked: list[bool] = []
        assert store._writer is not None
        submit = store._writer.submit
        monkeypatch.setattr(store._writer, "submit",
                            lambda fn, durable=True: asked.append(durable) or submit(fn, durable))

        async def durable(call) -> set[bool]:
            asked.clear()
            await call
            return set(asked)

        hooked = JobSpec(webhook=WebhookSpec("http://127.0.0.1:9/hook"))
        new = [NewTask(TaskIds().new(), f"http://127.0.0.1/{i}", "127.0.0.1", hooked) for i in range(2)]
        assert await durable(store.add(new)) == {True}  # its 201 follows
        [task] = await store.claim(1, 30.0, [])
        page = b"<p>done</p>"
        result = Result(id=task.id, url=task.url, final_url=task.url, http_status=200, headers={},
                        content_type="text/html", encoding="utf-8", encoding_source="header", size=len(page),
                        truncated=False, elapsed_ms=1.0, fetched_at=1.0, sha256="", body=page)
        assert await durable(store.complete(Lease(task.id, task.lease_token or ""), result)) == {False}
        assert await durable(store.claim(1, 30.0, [])) == {False}
        assert await durable(store.cancel(new[1].id)) == {True}  # a request's answer follows
        # sending a webhook follows its claim: that sync also takes the completion that queued it
        asked.clear()
        sent = await store.claim_deliveries(10, 60.0, [])
        assert set(asked) == {True} and sorted(d.event for d in sent) == ["task.cancelled", "task.completed"]
    finally:
        await store.close()


def build_shim(tmp_path) -> str:
    """Compile fixtures/powercut.c into a library LD_PRELOAD can load."""
    compiler = shutil.which("gcc") or shutil.which("cc")
    assert compiler, "a C compiler (gcc) is needed to simulate a power cut: apt-get install gcc"
    out = str(tmp_path / "powercut.so")
    subprocess.run([compiler, "-shared", "-fPIC", "-O1", "-o", out, SHIM, "-ldl"], check=True)
    return out


def disk_state(tmp_path, db: str, log: str, name: str) -> tuple[dict[str, str], set[str]]:
    """Each job's status, and the jobs with a result, in the database `db` with the write-ahead log `log`
    (opened as a copy, as the next start would recover it)."""
    image = str(tmp_path / name)
    shutil.copyfile(db, image)
    shutil.copyfile(log, image + "-wal")
    conn = sqlite3.connect(image)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        statuses = dict(conn.execute("SELECT id, status FROM jobs").fetchall())
        return statuses, {row[0] for row in conn.execute("SELECT job_id FROM results")}
    finally:
        conn.close()


def completed(statuses: dict[str, str]) -> set[str]:
    """The completed jobs among these."""
    return {job for job, status in statuses.items() if status == "completed"}


@pytest.mark.gen_test(timeout=120)
async def test_a_power_cut_keeps_every_accepted_job_and_loses_only_completions_that_are_fetched_again(
        tmp_path, target):
    shim = build_shim(tmp_path)
    db = str(tmp_path / "cut.db")
    proc, api = await start_server(db, "--processes", "1", env={"LD_PRELOAD": shim, "POWERCUT_DB": db})
    try:
        tasks = await api.submit_many([target.url(f"/page/{i}?delay=0.05") for i in range(N_JOBS)])
        accepted = {task["id"] for task in tasks}

        async def some_done() -> bool:
            return (await api.counts())["completed"] >= 40

        await wait_for(some_done, 30, "40 jobs to complete")
        for attempt in range(10):
            # the cut: a job accepted (its commit syncs every earlier one), a few completions more, then the
            # process frozen where it stands
            accepted.add((await api.submit(target.url(f"/page/last{attempt}?delay=0.05")))["id"])
            synced_then = (await api.counts())["completed"]

            async def completed_since(synced_then: int = synced_then) -> bool:
                return (await api.counts())["completed"] >= min(synced_then + 5, N_JOBS)

            await wait_for(completed_since, 30, "a few completions after the last synced commit")
            proc.send_signal(signal.SIGSTOP)
            at_cut, _ = disk_state(tmp_path, db, db + "-wal", f"crash{attempt}.db")  # what a kill -9 leaves
            kept, with_result = disk_state(tmp_path, db, db + "-wal.synced", f"cut{attempt}.db")  # a power cut
            lost = completed(at_cut) - completed(kept)
            if lost:
                break
            # the log was synced just before the cut (it is, within a second of a completion): cut again later
            before = len(completed(at_cut))
            proc.send_signal(signal.SIGCONT)

            async def more_done(before: int = before) -> bool:
                return (await api.counts())["completed"] >= min(before + 10, N_JOBS)

            await wait_for(more_done, 30, "more jobs to complete")
        else:
            pytest.fail("no cut lost a completion: the simulation did not drop the unsynced commits")
    finally:
        proc.send_signal(signal.SIGKILL)
        await asyncio.wait_for(proc.wait(), 15)
        api.close()

    assert set(kept) == accepted  # every 201 was synced before it was sent, the last one too
    assert completed(kept) == with_result  # a completion and its result are one commit
    assert completed(kept) < completed(at_cut)

    image = str(tmp_path / f"cut{attempt}.db")
    proc, api = await start_server(image, "--processes", "1")
    try:
        async def all_done() -> bool:
            return (await api.counts())["completed"] == len(accepted)

        await wait_for(all_done, 60, "every job to complete after the cut")
        for job in sorted(lost)[:5]:
            task = await api.task(job)
            response = await api.raw("GET", f"{API}/results/{job}")
            assert task["status"] == "completed" and response.code == 200, (task, response.body[:200])
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 15)
        api.close()
