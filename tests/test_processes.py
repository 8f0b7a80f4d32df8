"""`--processes=N`: real server processes forked by one parent over one socket and one SQLite file."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from typing import Any

import pytest
from tornado.websocket import websocket_connect

from jobqueue.config import ConfigError, Settings, load_settings, process_count
from jobqueue.processes import ProcessRole
from tests.helpers import API, Api, wait_for

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMPLETED = re.compile(r'msg="task state" task=(\S+) status=completed .*\bproc=(\d+)')


class Service:
    """server.py --processes=N as a child of the test: its parent's pid, API client, and log file."""

    def __init__(self, proc: asyncio.subprocess.Process, api: Api, log_path: str, first_line: bytes) -> None:
        self.proc = proc
        self.api = api
        self.log_path = log_path
        self.first_line = first_line

    @property
    def port(self) -> int:
        return int(self.api.base_url.rsplit(":", 1)[1])

    def children(self) -> list[int]:
        """The pids whose parent is the service's parent process."""
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == self.proc.pid and fields[0] != "Z":
                found.append(int(entry))
        return sorted(found)

    def log(self) -> str:
        with open(self.log_path, encoding="utf-8") as handle:
            return handle.read()

    def completed_by(self) -> dict[str, int]:
        """Task id -> the process that logged its completion."""
        return {m.group(1): int(m.group(2)) for m in COMPLETED.finditer(self.log())}

    async def stop(self) -> int:
        self.api.close()
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.proc.wait(), 30)


async def start(tmp_path: Any, *extra: str) -> Service:
    log_path = str(tmp_path / f"server-{time.monotonic_ns()}.log")
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, os.path.join(ROOT, "server.py"), "--port", "0",
            "--database", f"sqlite:///{tmp_path}/jobqueue.db", "--allow-private-addresses", "--workers", "8",
            "--per-host", "8", "--retry-base-delay", "0.05", "--shutdown-grace", "0.5", *extra,
            stdout=asyncio.subprocess.PIPE, stderr=log, cwd=ROOT)
    finally:
        os.close(log)
    line = await asyncio.wait_for(proc.stdout.readline(), 30)
    match = re.search(rb"http://127\.0\.0\.1:(\d+)/", line)
    if not match:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"no start line: {line!r}")
    return Service(proc, Api(f"http://127.0.0.1:{int(match.group(1))}"), log_path, line)


def gone(pids: list[int]) -> bool:
    """Whether none of these processes runs any more (a zombie counts as gone)."""
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as handle:
                if handle.read().rsplit(")", 1)[1].split()[0] != "Z":
                    return False
        except OSError:
            continue
    return True


async def until_gone(pids: list[int], timeout: float, what: str) -> None:
    async def probe() -> bool:
        return gone(pids)

    await wait_for(probe, timeout, what)


@pytest.mark.gen_test(timeout=90)
async def test_two_processes_share_the_work_the_socket_and_the_live_stream(tmp_path, target):
    service = await start(tmp_path, "--processes", "2")
    try:
        assert b"8 workers in 2 processes" in service.first_line
        children = service.children()
        assert len(children) == 2, children
        stream = await websocket_connect(f"ws://127.0.0.1:{service.port}{API}/events")
        assert json.loads(await stream.read_message())["type"] == "hello"
        streaming = int(stream.headers["X-Jobqueue-Process"])  # the process this websocket is served by

        urls = [target.url(f"/page/{i}?delay=0.05") for i in range(160)]
        ids = [t["id"] for chunk in range(0, 160, 40) for t in await service.api.submit_many(urls[chunk:chunk + 40])]

        async def all_done() -> bool:
            return (await service.api.counts())["completed"] == len(ids)

        await wait_for(all_done, 40, "every job to complete")
        pages = {path: n for path, n in target.state.hits.items() if path.startswith("/page/")}
        assert len(pages) == len(ids) and set(pages.values()) == {1}, "each page fetched once"

        async def logged() -> dict[str, int] | None:
            found = service.completed_by()
            return found if len(found) == len(ids) else None

        by = await wait_for(logged, 10, "every completion to be logged")
        assert set(by.values()) == {1, 2}, f"one process did all the fetching: {set(by.values())}"
        answered = {int((await service.api.raw("GET", "/healthz")).headers["X-Jobqueue-Process"]) for _ in range(40)}
        assert answered <= {1, 2}

        # the websocket's process hears of the other's completions through the shared database's change feed
        others = {task_id for task_id, index in by.items() if index != streaming}
        end = time.monotonic() + 20
        while others:
            try:
                raw = await asyncio.wait_for(stream.read_message(), max(end - time.monotonic(), 0.01))
            except TimeoutError:
                raise AssertionError(f"{len(others)} jobs the other process completed never reached the "
                                     "websocket") from None
            event = json.loads(raw)
            if event["type"] == "task" and event["task"]["status"] == "completed":
                others.discard(event["task"]["id"])
        stream.close()
    finally:
        code = await service.stop()
    assert code == 0
    await until_gone(children, 10, "every child to exit with the parent")
    rest = await service.proc.stdout.read()
    assert b"dashboard on" not in rest, "the start line is printed once, by the parent"
    log = service.log()
    assert log.count("shutting down: finishing running fetches") == 2  # each child stopped cleanly
    assert "Traceback" not in log


@pytest.mark.gen_test(timeout=90)
async def test_a_killed_child_is_started_again_and_loses_nothing(tmp_path, target):
    service = await start(tmp_path, "--processes", "2", "--lease-seconds", "1")
    try:
        before = service.children()
        tasks = await service.api.submit_many([target.url(f"/page/{i}?delay=0.2") for i in range(60)])

        async def some_running() -> bool:
            return (await service.api.counts())["running"] >= 4

        await wait_for(some_running, 20, "jobs to be running")
        os.kill(before[0], signal.SIGKILL)

        async def replaced() -> list[int] | None:
            now = service.children()
            return now if len(now) == 2 and before[0] not in now else None

        after = await wait_for(replaced, 20, "the parent to start a new child")
        assert before[1] in after

        async def all_done() -> bool:
            return (await service.api.counts())["completed"] == len(tasks)

        await wait_for(all_done, 40, "every job, those the killed child held included, to complete")
        assert re.search(rf"process \d \(pid {before[0]}\) died \(killed by SIGKILL\); starting it again",
                         service.log())
    finally:
        code = await service.stop()
    assert code == 0
    await until_gone(after, 10, "every child to exit with the parent")


@pytest.mark.gen_test(timeout=60)
async def test_a_killed_parent_takes_its_children_with_it(tmp_path):
    service = await start(tmp_path, "--processes", "2")
    children = service.children()
    assert len(children) == 2
    service.proc.kill()
    # 255: asyncio's answer when its watcher finds the pid reaped already (seen once in a CI run, reaper unknown);
    # what this test is about is below: the children do not outlive their killed parent
    assert await service.stop() in (-signal.SIGKILL, 255)
    await until_gone(children, 15, "the children to stop after their parent was killed")


@pytest.mark.gen_test(timeout=60)
async def test_sighup_reaches_every_process(tmp_path):
    profiles = tmp_path / "profiles.json"
    profiles.write_text(json.dumps({"site": {"headers": {"X-Api-Key": "k-1"}}}))
    service = await start(tmp_path, "--processes", "2", "--fetch-profiles", str(profiles))
    try:
        profiles.write_text(json.dumps({"other": {"headers": {"X-Api-Key": "k-2"}}}))
        service.proc.send_signal(signal.SIGHUP)

        async def both_reloaded() -> bool:
            return service.log().count('msg="fetch profiles reloaded"') == 2

        await wait_for(both_reloaded, 10, "both processes to re-read the profiles")
    finally:
        assert await service.stop() == 0


@pytest.mark.gen_test(timeout=60)
async def test_a_child_that_cannot_start_stops_the_service_with_one_sentence(tmp_path):
    log_path = tmp_path / "err.log"
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, os.path.join(ROOT, "server.py"), "--port", "0", "--processes", "2",
            "--database", f"sqlite:///{tmp_path}/jobqueue.db", "--fetch-profiles", str(tmp_path / "missing.toml"),
            stdout=asyncio.subprocess.PIPE, stderr=log, cwd=ROOT)
    finally:
        os.close(log)
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2 and out == b""
    last = log_path.read_text().strip().splitlines()[-1]
    assert last.startswith("jobqueue: ") and "missing.toml" in last, last
    assert "Traceback" not in log_path.read_text()


@pytest.mark.gen_test(timeout=30)
async def test_a_bad_database_is_reported_once_before_any_child_starts(tmp_path):
    proc = await asyncio.create_subprocess_exec(
        sys.executable, os.path.join(ROOT, "server.py"), "--port", "0", "--processes", "2",
        "--database", f"sqlite:///{tmp_path}/no/such/folder/jobqueue.db",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=ROOT)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2 and out == b""
    assert err.decode().count("jobqueue: cannot use the database") == 1, err


def test_workers_and_per_host_are_split_among_the_processes():
    for total in (1, 2, 4, 7, 32):
        for count in range(1, 9):
            shares = [ProcessRole(i, count).share(total) for i in range(1, count + 1)]
            assert sum(shares) == max(total, count) and max(shares) - min(shares) <= 1


def test_the_default_is_one_process_per_core_when_the_database_can_be_shared(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1, 2, 3})
    assert process_count(Settings()) == 4
    assert process_count(Settings(workers=2)) == 2
    assert process_count(Settings(database="mongodb://127.0.0.1:27017/jq")) == 4
    assert process_count(Settings(database="sqlite:///:memory:")) == 1
    assert process_count(load_settings(["--processes", "1"], environ={})) == 1
    assert load_settings([], environ={"JOBQUEUE_PROCESSES": "3"}).processes == 3


@pytest.mark.parametrize("argv, says", [
    (["--processes", "0"], "at least 1"),
    (["--processes", "3", "--workers", "2"], "at least 3 --workers"),
    (["--processes", "2", "--database", "sqlite:///:memory:"], "in-memory"),
])
def test_process_counts_that_cannot_work_are_refused(argv, says):
    with pytest.raises(ConfigError, match=says):
        load_settings(argv, environ={})


def test_a_forked_child_does_not_repeat_its_parents_ids():
    from jobqueue.models import TaskIds

    ids = TaskIds()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: the same moment, so only the random part tells the ids apart
        os.close(read)
        os.write(write, ids.new(1_000.0).encode())
        os._exit(0)
    os.close(write)
    theirs = os.read(read, 100).decode()
    os.close(read)
    os.waitpid(pid, 0)
    assert theirs and theirs != ids.new(1_000.0)


_GROUP_SCRIPT = """
import dataclasses, os, signal, sys, threading, time
sys.path.insert(0, {root!r})
from jobqueue import processes
from jobqueue.config import load_settings
settings = dataclasses.replace(load_settings(["--database", "sqlite:///" + {db!r}, "--port", "0", "--workers", "4",
                                              "--processes", "4"]), shutdown_grace=1.0)
processes.STOP_MARGIN = 1.0
scenario = {scenario!r}
together = time.time() + 1.0
if scenario == "die-together":
    step = processes.ProcessGroup._step
    processes.ProcessGroup._step = lambda self, timeout: (time.sleep(0.3), step(self, timeout))[1]

def child(role, sockets, ready):
    if scenario == "die-together":  # every child fails at the same instant, as under the OOM killer
        time.sleep(max(0.0, together - time.time()))
        return 1
    time.sleep(1.5)  # still starting when the reload arrives
    signal.signal(signal.SIGHUP, lambda *_: None)
    ready()
    time.sleep(30)
    return 0

if scenario == "reload-while-starting":
    def poke():
        time.sleep(0.7)
        os.kill(os.getpid(), signal.SIGHUP)
        time.sleep(2.5)
        os.kill(os.getpid(), signal.SIGTERM)
    threading.Thread(target=poke, daemon=True).start()
print("exit", processes.ProcessGroup(settings, 4, child).run(lambda port: print("ready", flush=True)), flush=True)
"""


@pytest.mark.parametrize(("scenario", "code", "said"), [("die-together", 2, "ended while starting"),
                                                        ("reload-while-starting", 0, "ready")])
def test_the_parent_ends_cleanly_when_children_die_together_or_a_reload_comes_early(tmp_path, scenario, code, said):
    script = _GROUP_SCRIPT.format(root=ROOT, db=str(tmp_path / "group.db"), scenario=scenario)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=40)
    assert run.returncode == 0 and f"exit {code}" in run.stdout, (run.stdout, run.stderr[-2000:])
    assert said in run.stdout + run.stderr
