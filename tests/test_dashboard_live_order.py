"""The jobs table in chromium when live rows arrive out of creation order: with several processes, a job
created a moment before another can be committed, and so reach the dashboard, after it. Both belong on the first
page, each in its place by id, and the view the page sends the server must still ask for the older one."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest
from playwright.sync_api import expect

from jobqueue.models import Task, TaskIds
from tests.browser import SERVER_LINE, child, have_chromium, server_args
from tests.test_dashboard_browser import TIMEOUT, browser, row  # noqa: F401 (the fixture)

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not have_chromium(), reason="needs Debian's chromium (apt-get install chromium)")]


def task_json(task_id: str, url: str, status: str) -> dict[str, Any]:
    now = time.time()
    return Task(id=task_id, url=url, host="127.0.0.1", status=status, attempts=0, created_at=now,
                updated_at=now).to_json()


def test_an_older_job_arriving_after_a_newer_one_gets_its_row_and_its_updates(browser, tmp_path):  # noqa: F811
    ids = TaskIds()
    older, newer = ids.new(), ids.new()
    assert older < newer
    with child(server_args(str(tmp_path)), SERVER_LINE) as (_d, served):
        dashboard = served.group(1).decode()
        page = browser.new_page()
        page.set_default_timeout(TIMEOUT)
        sockets: list[Any] = []
        views: list[dict[str, Any]] = []

        def stand_in(ws: Any) -> None:  # the page's live link talks to the test instead of the server
            ws.on_message(lambda message: views.append(json.loads(message)))
            sockets.append(ws)

        page.route_web_socket(re.compile(r"/jobqueue/api/v1\.0/events"), stand_in)
        page.goto(dashboard)
        expect(page.locator("#jobs tbody tr")).to_have_count(0)
        deadline = time.monotonic() + 15
        while not sockets and time.monotonic() < deadline:
            page.wait_for_timeout(50)  # the live link connects once the page's modules have loaded
        assert sockets, "the page opened no live link"
        sockets[-1].send(json.dumps({"type": "hello", "server_time": time.time(), "batch": False}))
        expect(page.locator("#link")).to_have_attribute("data-state", "live")

        older_url, newer_url = "http://127.0.0.1:9/older", "http://127.0.0.1:9/newer"
        sockets[-1].send(json.dumps({"type": "task", "task": task_json(newer, newer_url, "queued")}))
        expect(row(page, newer_url)).to_have_attribute("data-status", "queued")
        sockets[-1].send(json.dumps({"type": "task", "task": task_json(older, older_url, "queued")}))
        expect(row(page, older_url)).to_have_attribute("data-status", "queued")
        urls = page.locator("#jobs tbody tr td.url").evaluate_all("cells => cells.map(c => c.title)")
        assert urls == [newer_url, older_url]  # newest first, each in its place by id

        # the view the page asks the server for covers the older row's later states and other late arrivals
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not any(
                older in v.get("task_ids", []) and newer in v.get("task_ids", []) for v in views):
            page.wait_for_timeout(50)  # the view is sent after the next render
        last = [v for v in views if v.get("type") == "view"][-1]
        assert set(last["task_ids"]) == {older, newer} and last["after_id"] == "", last
        sockets[-1].send(json.dumps({"type": "task", "task": task_json(older, older_url, "completed")}))
        expect(row(page, older_url)).to_have_attribute("data-status", "completed")
        page.close()
