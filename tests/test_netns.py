"""Non-loopback targets end to end, inside a network namespace that has only loopback."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOSTS = "127.0.0.1 localhost\n::1 localhost\n10.0.0.1 internal.test\n169.254.169.254 metadata.test\n"


def _can_unshare() -> bool:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return False
    probe = subprocess.run(["unshare", "-nm", "true"], capture_output=True)
    return probe.returncode == 0


@pytest.mark.netns
@pytest.mark.skipif(not _can_unshare(), reason="needs root for `unshare -nm` (network + mount namespaces)")
def test_non_loopback_targets_are_blocked_in_an_isolated_namespace(tmp_path):
    hosts = tmp_path / "hosts"
    hosts.write_text(HOSTS)
    script = (
        f"mount --bind {hosts} /etc/hosts && ip link set lo up && "
        f"exec {sys.executable} -m tests.netns_probe {tmp_path}"
    )
    run = subprocess.run(["unshare", "-nm", "sh", "-c", script], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    for name in ("name_to_10.0.0.1", "name_to_metadata", "redirect_to_metadata", "redirect_to_10.0.0.1",
                 "redirect_to_name_to_10"):
        task = report[name]
        assert task["status"] == "failed", (name, task)
        assert task["error"]["code"] == "blocked", (name, task)
    for literal in ("http://10.0.0.1/", "http://169.254.169.254/"):
        assert report[literal]["http"] == 400 and report[literal]["body"]["error"]["code"] == "blocked"
    for hook in ("http://10.0.0.1/hook", "http://169.254.169.254/hook"):  # refused at submission
        answer = report[f"webhook {hook}"]
        assert answer["http"] == 400 and answer["body"]["error"]["code"] == "blocked", answer
        assert answer["body"]["error"]["message"].startswith("webhook.url: ")
    for name in ("webhook_name_to_10", "webhook_name_to_metadata"):  # names resolve to private addresses
        delivery = report[name]
        assert delivery["status"] == "failed" and delivery["last_error"].startswith("blocked"), delivery
        assert delivery["attempts"] == 1, delivery
