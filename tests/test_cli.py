"""The `jobqueue` command against a real server: submit (--wait), status, export, and every kind of bad input."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import sys
from typing import Any

import pytest

from jobqueue.client import AsyncClient
from tests.helpers import drain_pty

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REFUSED = "http://127.0.0.1:9/refused"


async def run_cli(*args: str, env: dict[str, str] | None = None, stdin: bytes | None = None) -> tuple[int, str, str]:
    """Run `python -m jobqueue ARGS` and return its exit status, stdout and stderr."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("JOBQUEUE_") or k == "JOBQUEUE_TEST_SESSION"}
    environ.update(env or {})
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "jobqueue", *args, cwd=ROOT, env=environ, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(stdin), 40)
    return process.returncode or 0, out.decode(), err.decode()


def url_file(tmp_path: Any, text: str, name: str = "urls.txt") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.mark.gen_test(timeout=60)
async def test_submit_wait_shows_progress_and_exits_1_when_some_failed(jq: Any, target: Any, tmp_path: Any) -> None:
    server = f"http://127.0.0.1:{jq.port}"
    lines = [target.url(f"/page/p{i}") for i in range(30)] + ["# a comment", "", REFUSED]
    path = url_file(tmp_path, "\n".join(lines) + "\n")
    code, out, err = await run_cli("submit", path, "--wait", "--tag", "cli", "--priority", "4", "--server", server)
    assert code == 1, err
    batch_id, summary = out.splitlines()
    assert summary.startswith(f"batch {batch_id} finished: 31 jobs, 30 completed, 1 failed, 0 cancelled in ")
    progress = [line for line in err.splitlines() if " done, " in line]
    assert progress[-1].startswith("jobqueue: 31/31 done, 1 failed, ") and "ETA 0s" in progress[-1]
    async with AsyncClient(server) as client:
        batch = await client.batch(batch_id)
        page = await client.transport.call("GET", "queue_tasks", query={"batch": batch_id, "limit": 1})
        job = await client.get(page["tasks"][0]["id"])
    assert batch.tags == ("cli",) and batch.total == 31 and job.priority == 4 and job.tags == ("cli",)
    ok = url_file(tmp_path, target.url("/utf8") + "\n", "ok.txt")
    code, out, err = await run_cli("submit", ok, "--wait", env={"JOBQUEUE_URL": server})
    assert code == 0 and "1 completed, 0 failed" in out, err


@pytest.mark.gen_test(timeout=60)
async def test_status_and_export(jq: Any, target: Any, tmp_path: Any) -> None:
    server = f"http://127.0.0.1:{jq.port}"
    async with AsyncClient(server) as client:
        tasks = await client.submit_many([target.url("/utf8"), REFUSED])
        for task in tasks:
            await client.wait(task.id, timeout=20)
        batch = await client.submit_batch([target.url("/page/b")])
        await client.wait_batch(batch.id, timeout=20)
    code, out, _ = await run_cli("status", "--server", server)
    assert code == 0 and out.split() == ["queued", "0", "running", "0", "completed", "2", "failed", "1",
                                         "cancelled", "0"]
    code, out, _ = await run_cli("status", tasks[1].id, "--server", server)
    assert code == 0 and out.startswith(f"job {tasks[1].id}: failed, ") and "\n  error " in out
    code, out, _ = await run_cli("--server", server, "status", batch.id, "--json")
    assert code == 0 and json.loads(out)["batch"]["counts"]["completed"] == 1
    code, _, err = await run_cli("status", "nosuchid", "--server", server)
    assert code == 2 and err == f"jobqueue: no job or batch has the id 'nosuchid' on {server}\n"
    target_file = tmp_path / "failed.csv"
    code, _, err = await run_cli("export", "--format", "csv", "--status", "failed", "-o", str(target_file),
                                 "--server", server)
    assert code == 0 and err == f"jobqueue: wrote {target_file} ({target_file.stat().st_size} bytes)\n"
    rows = target_file.read_text().splitlines()
    assert len(rows) == 2 and rows[1].startswith(tasks[1].id)
    code, out, _ = await run_cli("export", "--filter", f"batch={batch.id}", "-o", "-", "--server", server)
    assert code == 0 and [json.loads(line)["task"]["batch_id"] for line in out.splitlines()] == [batch.id]


@pytest.mark.gen_test(timeout=60)
async def test_bad_input_is_one_sentence_and_exit_2(make_server: Any, target: Any, tmp_path: Any) -> None:
    server = await make_server(api_tokens=("s3cret",))
    url = f"http://127.0.0.1:{server.port}"
    auth = {"JOBQUEUE_URL": url, "JOBQUEUE_API_TOKEN": "s3cret"}
    cases = {
        "missing": ([str(tmp_path / "nope.txt")], "cannot read {d}/nope.txt: No such file or directory"),
        "empty": ([url_file(tmp_path, "\n# only a comment\n\n", "empty.txt")],
                  "{d}/empty.txt has no URLs; give one URL per line (blank lines and lines starting with '#' are "
                  "skipped)"),
        "bad lines": ([url_file(tmp_path, f"{target.url('/utf8')}\nhtp://x\n\nftp://y/\n", "bad.txt")],
                      "{d}/bad.txt: 2 bad lines, nothing submitted: line 2 ('htp://x'): the scheme 'htp' is not "
                      "supported; use http:// or https://; line 4 ('ftp://y/'): the scheme 'ftp' is not supported; "
                      "use http:// or https://; fix them or pass --skip-invalid to submit the other 1"),
        "priority": ([url_file(tmp_path, "a.com\n", "one.txt"), "--priority", "11"],
                     "argument --priority: 11 is outside -10..10; see `jobqueue submit --help`"),
    }
    for name, (args, expected) in cases.items():
        code, out, err = await run_cli("submit", *args, env=auth)
        assert (code, out, err) == (2, "", f"jobqueue: {expected.format(d=tmp_path)}\n"), name
    async with AsyncClient(url, "s3cret") as client:
        assert sum((await client.counts()).values()) == 0  # nothing was submitted
    code, out, err = await run_cli("submit", "-", "--skip-invalid", env=auth,
                                   stdin=f"{target.url('/utf8')}\nhtp://x\n".encode())
    assert code == 0 and len(out.split()) == 1 and "skipping 1 bad line: line 2 ('htp://x')" in err
    code, out, err = await run_cli("status", env={"JOBQUEUE_URL": url, "JOBQUEUE_API_TOKEN": "wrong"})
    assert code == 2 and out == "" and len(err.splitlines()) == 1 and "401 unauthorized" in err
    assert "--token or JOBQUEUE_API_TOKEN" in err
    await server.stop()
    code, out, err = await run_cli("status", "--server", url, "--token", "s3cret")
    assert code == 2 and out == "" and err.startswith(f"jobqueue: cannot reach the jobqueue server at {url} ")
    assert len(err.splitlines()) == 1
    code, out, err = await run_cli("frobnicate")
    assert code == 2 and err.startswith("jobqueue: argument COMMAND: invalid choice: 'frobnicate'")


@pytest.mark.gen_test(timeout=60)
async def test_a_terminal_gets_a_live_progress_bar(jq: Any, target: Any, tmp_path: Any) -> None:
    path = url_file(tmp_path, "\n".join(target.url(f"/page/t{i}") for i in range(5)) + "\n")
    leader, follower = pty.openpty()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("JOBQUEUE_") or k == "JOBQUEUE_TEST_SESSION"}
    environ.update({"COLUMNS": "120", "TERM": "xterm"})
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "jobqueue", "submit", path, "--wait", "--server", f"http://127.0.0.1:{jq.port}",
        cwd=ROOT, env=environ, stdout=asyncio.subprocess.PIPE, stderr=follower)
    os.close(follower)
    out, _ = await asyncio.wait_for(process.communicate(), 40)
    screen = drain_pty(leader)
    assert process.returncode == 0
    text = screen.decode(errors="replace")
    assert "━" in text and "5/5" in text and "0 failed" in text and "/s" in text
    assert "finished: 5 jobs, 5 completed" in out.decode()
