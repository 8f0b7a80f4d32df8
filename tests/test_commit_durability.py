"""What each commit protects: a submission is synced to the disk before its 201; a claim or an attempt's outcome
commits without waiting for a sync (a power cut may undo it, and the job is fetched again). A power cut is
simulated by a library loaded into a real server (fixtures/powercut.c) that keeps a copy of the write-ahead
log as it was at each sync: the database with that log is what the disk would hold."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading

import pytest

from jobqueue.store.sqlite.thread import WriterThread, connect
from tests.helpers import API, Api, wait_for

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHIM = os.path.join(ROOT, "tests", "fixtures", "powercut.c")
N_JOBS = 200
FULL, NORMAL = 2, 1


def level(conn: sqlite3.Connection) -> int:
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


def build_shim(tmp_path) -> str:
    compiler = shutil.which("gcc") or shutil.which("cc")
    assert compiler, "a C compiler (gcc) is needed to simulate a power cut: apt-get install gcc"
    out = str(tmp_path / "powercut.so")
    subprocess.run([compiler, "-shared", "-fPIC", "-O1", "-o", out, SHIM, "-ldl"], check=True)
    return out


async def start_server(db: str, env: dict[str, str] | None = None) -> tuple[asyncio.subprocess.Process, Api]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, os.path.join(ROOT, "server.py"), "--port", "0", "--database", f"sqlite:///{db}",
        "--processes", "1", "--allow-private-addresses", "--workers", "8", "--per-host", "8",
        "--lease-seconds", "1", "--retry-base-delay", "0.05", "--shutdown-grace", "0.5",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, cwd=ROOT,
        env={**os.environ, **(env or {})})
    line = await asyncio.wait_for(proc.stdout.readline(), 15)
    match = re.search(rb"http://127\.0\.0\.1:(\d+)/", line)
    assert match, line
    return proc, Api(f"http://127.0.0.1:{int(match.group(1))}")


async def completed_ids(api: Api) -> set[str]:
    status, body = await api.call("GET", f"{API}/queue_tasks?status=completed&limit=1000")
    assert status == 200
    return {task["id"] for task in body["tasks"]}


@pytest.mark.gen_test(timeout=120)
async def test_a_power_cut_keeps_every_accepted_job_and_loses_only_completions_that_are_fetched_again(
        tmp_path, target):
    shim = build_shim(tmp_path)
    db = str(tmp_path / "cut.db")
    proc, api = await start_server(db, {"LD_PRELOAD": shim, "POWERCUT_DB": db})
    try:
        tasks = await api.submit_many([target.url(f"/page/{i}?delay=0.05") for i in range(N_JOBS)])
        accepted = {task["id"] for task in tasks}

        async def some_done() -> set[str] | None:
            done = await completed_ids(api)
            return done if len(done) >= 40 else None

        seen_completed = await wait_for(some_done, 30, "40 jobs to complete")
    finally:
        proc.send_signal(signal.SIGKILL)
        await asyncio.wait_for(proc.wait(), 15)
        api.close()

    # the disk after the cut: the database file as it is, and the log as it was at its last sync
    image = str(tmp_path / "image.db")
    shutil.copyfile(db, image)
    shutil.copyfile(db + "-wal.synced", image + "-wal")
    conn = sqlite3.connect(image)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        kept = dict(conn.execute("SELECT id, status FROM jobs").fetchall())
        with_result = {row[0] for row in conn.execute("SELECT job_id FROM results")}
    finally:
        conn.close()
    assert set(kept) == accepted  # every 201 was synced before it was sent
    kept_completed = {job for job, status in kept.items() if status == "completed"}
    assert kept_completed == with_result  # a completion and its result are one commit
    lost = seen_completed - kept_completed
    assert lost, "the cut lost no completion: the simulation did not drop the unsynced commits"

    proc, api = await start_server(image)
    try:
        async def all_done() -> bool:
            return (await api.counts())["completed"] == N_JOBS

        await wait_for(all_done, 60, "every job to complete after the cut")
        for job in sorted(lost)[:5]:
            task = await api.task(job)
            response = await api.raw("GET", f"{API}/results/{job}")
            assert task["status"] == "completed" and response.code == 200, (task, response.body[:200])
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 15)
        api.close()
