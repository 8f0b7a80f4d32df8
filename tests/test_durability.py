"""Crash and restart a real server process: nothing accepted is lost, nothing stored twice."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sqlite3
import sys

import pytest

from tests.helpers import API, Api, wait_for

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N_JOBS = 300


async def start_server(db: str, *extra: str, env: dict[str, str] | None = None
                       ) -> tuple[asyncio.subprocess.Process, Api]:
    """Run server.py as a child process (with `env` added to its environment) and wait for its start line."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, os.path.join(ROOT, "server.py"), "--port", "0", "--database", f"sqlite:///{db}",
        "--allow-private-addresses", "--workers", "8", "--per-host", "8", "--lease-seconds", "1",
        "--retry-base-delay", "0.05", "--shutdown-grace", "0.5", *extra,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, cwd=ROOT,
        env={**os.environ, **env} if env else None,
    )
    line = await asyncio.wait_for(proc.stdout.readline(), 15)
    match = re.search(rb"http://127\.0\.0\.1:(\d+)/", line)
    assert match, line
    return proc, Api(f"http://127.0.0.1:{int(match.group(1))}")


def stored_results(db: str) -> list[str]:
    with sqlite3.connect(db) as conn:
        return [row[0] for row in conn.execute("SELECT job_id FROM results")]


async def crash_and_recover(tmp_path, target, stop_signal: int) -> tuple[list[dict], str]:
    db = str(tmp_path / "durable.db")
    proc, api = await start_server(db)
    tasks = await api.submit_many([target.url(f"/page/{i}?delay=0.02") for i in range(N_JOBS)])

    async def some_done() -> bool:
        counts = await api.counts()
        return counts["completed"] >= N_JOBS // 4 and counts["running"] > 0

    await wait_for(some_done, 30, "a quarter of the jobs to complete")
    proc.send_signal(stop_signal)
    code = await asyncio.wait_for(proc.wait(), 15)
    api.close()
    assert code == (-signal.SIGKILL if stop_signal == signal.SIGKILL else 0)
    proc, api = await start_server(db)
    try:
        async def all_done() -> bool:
            return (await api.counts())["completed"] == N_JOBS

        await wait_for(all_done, 60, "every job to complete after the restart")
        finals = [await api.task(t["id"]) for t in tasks]
    finally:
        api.close()
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 15)
    return finals, db


def assert_each_page_fetched_once_or_twice(target) -> None:
    """At least once (nothing lost), at most twice: one stop interrupts at most one attempt of each job."""
    hits = {path: n for path, n in target.state.hits.items() if path.startswith("/page/")}
    assert sorted(hits) == sorted(f"/page/{i}" for i in range(N_JOBS))
    assert {path: n for path, n in hits.items() if n > 2} == {}


@pytest.mark.slow
@pytest.mark.gen_test(timeout=120)
async def test_sigkill_mid_run_loses_nothing_and_stores_each_result_once(tmp_path, target):
    finals, db = await crash_and_recover(tmp_path, target, signal.SIGKILL)
    assert all(t["status"] == "completed" and t["http_status"] == 200 for t in finals)
    results = stored_results(db)
    assert sorted(results) == sorted(t["id"] for t in finals)
    assert_each_page_fetched_once_or_twice(target)


@pytest.mark.slow
@pytest.mark.gen_test(timeout=120)
async def test_sigterm_releases_running_jobs_for_the_next_start(tmp_path, target):
    finals, db = await crash_and_recover(tmp_path, target, signal.SIGTERM)
    assert all(t["status"] == "completed" for t in finals)
    assert len(stored_results(db)) == N_JOBS
    assert all(t["attempts"] == 1 for t in finals)  # a released attempt is not counted
    assert_each_page_fetched_once_or_twice(target)


@pytest.mark.gen_test(timeout=30)
async def test_config_errors_are_one_sentence_and_exit_non_zero(tmp_path):
    cases = [
        (["--database", "postgres://x/y"], "unknown scheme"),
        (["--database", f"sqlite:///{tmp_path}/missing-dir/x.db"], "does not exist"),
        (["--workers", "0"], "--workers must be at least 1"),
    ]
    for args, expected in cases:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, os.path.join(ROOT, "server.py"), "--port", "0", *args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=str(tmp_path),
        )
        _out, err = await asyncio.wait_for(proc.communicate(), 20)
        assert proc.returncode == 2, (args, err)
        assert expected in err.decode() and "Traceback" not in err.decode(), err


@pytest.mark.gen_test(timeout=30)
async def test_healthz_reports_the_backend(api):
    got, payload = await api.call("GET", "/healthz")
    assert got == 200 and payload.pop("rendering")["available"] in (True, False)
    assert payload == {"status": "ok", "database": "sqlite"}
    got, _ = await api.call("GET", f"{API}/queue_tasks")
    assert got == 200
