"""A row never goes back to an older state of its job when a read answers after the live link moved the job on
(chromium, real server and websocket). Two things keep it so, pinned here: events that arrive while the list is
read are applied after that read (jobs.js `buffered`), and a row new to the page's view gets its job's latest
state from the server (event_reads.py `replay`), so an answer older than the stream is corrected."""

from __future__ import annotations

import json
import re
import time

import pytest
from playwright.sync_api import expect

from tests.browser import call, have_chromium, patient_expect, running_service  # noqa: F401
from tests.test_dashboard_browser import TIMEOUT, browser  # noqa: F401 (the fixture)

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not have_chromium(), reason="needs Debian's chromium (apt-get install chromium)")]
LISTING = re.compile(r"/jobqueue/api/v1\.0/queue_tasks\?limit=")


def says(payload: str | bytes, task_id: str, status: str) -> bool:
    """Whether a websocket frame brings `task_id` in `status`."""
    frame = json.loads(payload)
    messages = frame["messages"] if frame.get("type") == "batch" else [frame]
    return any(m.get("type") == "task" and m["task"]["id"] == task_id and m["task"]["status"] == status
               for m in messages)


def test_a_listing_read_before_running_does_not_roll_the_row_back(browser, tmp_path):  # noqa: F811
    """The list is read while the job is queued and answers after the live link said it runs."""
    with running_service(str(tmp_path), "--processes", "1", "--workers", "1") as (dashboard, target):
        _, made = call(dashboard, "POST", "/queue_tasks", {"url": f"{target}/slow?delay=60&n=blocker"})
        blocker = made["task"]["id"]
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(TIMEOUT)
        sockets = []
        page.on("websocket", lambda ws: sockets.append(ws))
        page.goto(dashboard)
        expect(page.locator("#link")).to_have_attribute("data-state", "live")
        blocker_row = page.locator(f'#jobs tbody tr[data-id="{blocker}"]')
        expect(blocker_row.locator(".badge")).to_have_text("running")
        _, made = call(dashboard, "POST", "/queue_tasks", {"url": f"{target}/slow?delay=60&n=late"})
        late = made["task"]["id"]
        row = page.locator(f'#jobs tbody tr[data-id="{late}"]')
        expect(row.locator(".badge")).to_have_text("queued")

        held = []

        def hold(route) -> None:
            if held:
                route.continue_()
            else:
                held.append((route, route.fetch()))  # the server answers now; the page gets it later

        page.route(LISTING, hold)
        page.locator("#filters button[data-status='']").click()  # reads the list again
        deadline = time.monotonic() + 15
        while not held:
            assert time.monotonic() < deadline, "the list was never read again"
            page.wait_for_timeout(20)
        socket = sockets[-1]
        with socket.expect_event("framereceived", lambda f: says(f, late, "running"), timeout=TIMEOUT):
            call(dashboard, "DELETE", f"/queue_tasks/{blocker}")
        route, response = held[0]
        listed = {t["id"]: t["status"] for t in json.loads(response.body())["tasks"]}
        assert listed[late] == "queued", "the list was read too late to test anything"
        route.fulfill(response=response)
        page.unroute(LISTING)
        expect(row.locator(".badge")).to_have_text("running")



def test_an_answer_that_comes_after_running_does_not_roll_a_held_row_back(browser, tmp_path):  # noqa: F811
    """The stream says `running` while the row waits behind the bar (the table scrolled past its top); the
    form's answer (`queued`) comes after it, once the table is back in sight: the row shows running."""
    with running_service(str(tmp_path), "--processes", "1") as (dashboard, target):
        call(dashboard, "POST", "/queue_tasks", {"urls": [f"{target}/page/p{i}" for i in range(30)]})
        page = browser.new_page(viewport={"width": 1280, "height": 600})
        page.set_default_timeout(TIMEOUT)
        heard: list[str | bytes] = []
        page.on("websocket", lambda ws: ws.on("framereceived", lambda f: heard.append(f)))
        page.goto(dashboard)
        expect(page.locator("#link")).to_have_attribute("data-state", "live")
        expect(page.locator("#jobs tbody tr")).to_have_count(30)
        answers = []
        page.route(re.compile(r"/jobqueue/api/v1\.0/queue_tasks$"),
                   lambda route: answers.append((route, route.fetch())))  # the server answers now, the page later
        page.mouse.move(0, 0)
        page.evaluate("""() => { document.activeElement.blur();
                                 const table = document.getElementById("jobs");
                                 scrollTo(0, scrollY + table.getBoundingClientRect().top + 100); }""")
        page.evaluate("""() => { document.getElementById("urls").value = arguments[0];
                                 document.getElementById("submit-form").requestSubmit(); }""".replace(
            "arguments[0]", json.dumps(f"{target}/slow?delay=60&n=held")))
        deadline = time.monotonic() + 15
        while not answers:
            assert time.monotonic() < deadline, "the form never sent its jobs"
            page.wait_for_timeout(20)
        route, response = answers[0]
        answer = json.loads(response.body())
        job = (answer.get("tasks") or [answer.get("task")])[0]["id"]
        while not any(says(f, job, "running") for f in heard):
            assert time.monotonic() < deadline, "the live link never said the job runs"
            page.wait_for_timeout(20)
        expect(page.locator("#new-jobs")).to_be_visible()  # running came while the table was out of sight
        page.evaluate("() => scrollTo(0, 0)")
        route.fulfill(response=response)
        page.unroute(re.compile(r"/jobqueue/api/v1\.0/queue_tasks$"))
        row = page.locator(f'#jobs tbody tr[data-id="{job}"] .badge')
        expect(row).to_have_text("running")
