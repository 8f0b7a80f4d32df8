"""The `jobqueue` command at a terminal: no raw bytes of a binary export or body reach it, and the end of a
batch lists its failures by reason, a 404 counted as "completed, HTTP 4xx" and not as a failure."""

from __future__ import annotations

import asyncio
import os
import pty
import sys
from typing import Any

import pytest

from jobqueue.cli.reasons import for_terminal
from tests.helpers import drain_pty
from tests.test_cli import REFUSED, ROOT, run_cli, url_file


def test_control_characters_are_written_out_and_a_binary_body_is_not_shown() -> None:
    assert for_terminal("plain\ttext\nline two") == "plain\ttext\nline two"
    assert for_terminal("\x1b[2J\x1b]0;owned\x07 red") == "\\x1b[2J\\x1b]0;owned\\x07 red"
    binary = "".join(chr(b) for b in bytes(range(256)) * 4)
    shown = for_terminal(binary)
    assert shown.startswith("[1024 characters, ") and "binary body, not shown" in shown and "\x00" not in shown


@pytest.mark.gen_test(timeout=60)
async def test_a_warc_export_is_not_written_to_a_terminal(jq: Any, target: Any) -> None:
    leader, follower = pty.openpty()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("JOBQUEUE_") or k == "JOBQUEUE_TEST_SESSION"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "jobqueue", "export", "--format", "warc", "--output", "-",
        "--server", f"http://127.0.0.1:{jq.port}", cwd=ROOT, env=environ, stdout=follower,
        stderr=asyncio.subprocess.PIPE)
    os.close(follower)
    _, err = await asyncio.wait_for(process.communicate(), 40)
    screen = drain_pty(leader)
    assert process.returncode == 2
    assert "gzip-compressed bytes, not for a terminal" in err.decode()
    assert screen == b""


@pytest.mark.gen_test(timeout=60)
async def test_the_end_of_a_batch_lists_failures_by_reason(jq: Any, target: Any, tmp_path: Any) -> None:
    lines = [target.url("/page/fine"), target.url("/status/404"), target.url("/status/404?again=1"),
             target.url("/status/410"), REFUSED]
    code, out, err = await run_cli("submit", url_file(tmp_path, "\n".join(lines) + "\n"), "--wait",
                                   "--server", f"http://127.0.0.1:{jq.port}")
    assert code == 1, err
    assert "5 jobs, 4 completed, 1 failed, 0 cancelled" in out
    assert "jobqueue: failed by reason: connection_error 1" in err
    assert "jobqueue: completed, HTTP 4xx: 3 (404 2, 410 1)" in err
    assert "HTTP 5xx" not in err
