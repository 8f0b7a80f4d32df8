"""The guard covers the browser: in a network namespace with only loopback, nothing a rendered page does
reaches 127.0.0.2, which the policy refuses, and a refused main document fails `blocked`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHROMIUM = os.environ.get("JOBQUEUE_TEST_CHROMIUM", "/usr/bin/chromium")
HOSTS = "127.0.0.1 localhost allowed.test\n127.0.0.2 blocked.test\n"
KINDS = ("img", "script", "iframe", "fetch", "xhr", "worker", "meta-refresh", "js-navigation")


def _can_unshare() -> bool:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return False
    return subprocess.run(["unshare", "-nm", "true"], capture_output=True).returncode == 0


pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.netns,
              pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian's chromium"),
              pytest.mark.skipif(not _can_unshare(), reason="needs root for `unshare -nm`")]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    hosts = tmp_path_factory.mktemp("netns") / "hosts"
    hosts.write_text(HOSTS)
    script = (f"mount --bind {hosts} /etc/hosts && ip link set lo up && "
              f"exec {sys.executable} -m tests.render_guard_probe {CHROMIUM}")
    run = subprocess.run(["unshare", "-nm", "sh", "-c", script], cwd=ROOT, capture_output=True, text=True,
                         timeout=240)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_the_refused_address_sees_no_connection(report: dict) -> None:
    assert report["accepts"] == 0


@pytest.mark.parametrize("name", ["reach", "reach_by_name"])
def test_every_way_a_page_reaches_out_is_refused_and_counted(report: dict, name: str) -> None:
    page = report[name]
    assert page["status"] == 200, page
    assert 'id="here"' in page["body"]
    paths = {url.rsplit("/", 1)[-1] for url in page["blocked_urls"] if url.startswith("http://")}
    assert set(KINDS) <= paths, page["blocked_urls"]
    tunnels = [url for url in page["blocked_urls"] if not url.startswith("http://")]
    assert tunnels, "the WebSocket's tunnel was not refused"
    assert page["blocked_requests"] == len(page["blocked_urls"]) >= len(KINDS) + 1


@pytest.mark.parametrize("name", ["main_direct", "main_https", "main_by_name", "main_redirect",
                                  "main_redirect_https", "main_meta_refresh", "main_js_navigation"])
def test_a_refused_main_document_fails_blocked(report: dict, name: str) -> None:
    assert report[name].get("error") == "blocked", report[name]
    assert "127.0.0.2" in report[name]["message"]


def test_names_are_resolved_by_the_guard(report: dict) -> None:
    page = report["allowed_by_name"]
    assert page["status"] == 200 and "made by javascript" in page["body"], page
    assert page["blocked_requests"] == 0
