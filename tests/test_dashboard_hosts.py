"""The Hosts view in a real browser against a real server and target site on 127.0.0.1: pausing a host keeps its
jobs queued and resuming lets them run; the policy form sets a host's pacing and names a refused field beside it;
the search and the open form live in the address; rows never move under the pointer; everything works by keyboard,
and the view passes axe-core in light and dark mode at desktop and phone width."""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import expect

from tests.browser import call, have_chromium, patient_expect, running_service  # noqa: F401 (the fixture)
from tests.test_dashboard_browser import TIMEOUT, browser  # noqa: F401 (the fixture)
from tests.test_dashboard_crawls import open_dashboard
from tests.test_dashboard_deliveries import axe_serious

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not have_chromium(), reason="needs Debian's chromium (apt-get install chromium)")]
HOST = "127.0.0.1"


def host_row(page, host: str):
    return page.locator(f"#hosts-table tbody tr[data-host='{host}']")


def cell(page, host: str, name: str):
    return host_row(page, host).locator(f"[data-cell={name}]")


def statuses(dashboard: str, ids: list[str]) -> list[str]:
    return [call(dashboard, "GET", f"/queue_tasks/{i}")[1]["task"]["status"] for i in ids]


def wait_status(dashboard: str, task_id: str, status: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if statuses(dashboard, [task_id]) == [status]:
            return
        time.sleep(0.05)  # polling a child process's API, bounded by the deadline above
    raise AssertionError(f"{task_id} never became {status}")


def test_pause_a_host_by_keyboard_its_jobs_stay_queued_then_resume_and_they_run(browser, tmp_path):  # noqa: F811
    with running_service(str(tmp_path)) as (dashboard, target):
        code, _ = call(dashboard, "POST", "/queue_tasks", {"url": f"{target}/slow?delay=20"})  # the host, busy
        assert code == 201
        context, page, errors = open_dashboard(browser, dashboard)
        page.get_by_role("navigation", name="views").get_by_role("link", name="Hosts").focus()
        page.keyboard.press("Enter")
        expect(page).to_have_url(f"{dashboard}#/hosts")
        expect(page.locator("#hosts-title")).to_be_focused()
        expect(cell(page, HOST, "running")).to_have_text("1")
        expect(cell(page, HOST, "state")).to_have_text("active")

        # by keyboard: the search box, its button, then the row's Pause and Edit buttons
        page.keyboard.press("Tab")
        expect(page.locator("#hosts-q")).to_be_focused()
        page.keyboard.press("Tab")
        expect(page.locator("#hosts-search button")).to_be_focused()
        page.keyboard.press("Tab")
        pause = page.get_by_role("button", name=f"Pause {HOST}")
        expect(pause).to_be_focused()
        page.keyboard.press("Space")
        resume = page.get_by_role("button", name=f"Resume {HOST}")
        expect(resume).to_be_focused()  # the same button, now saying what it will do
        expect(cell(page, HOST, "state")).to_have_text("paused")
        expect(page.locator("#hosts-status")).to_contain_text(f"Paused {HOST}")
        assert call(dashboard, "GET", f"/hosts/{HOST}")[1]["host"]["policy"]["paused"] is True

        # jobs of a paused host wait: the view counts them queued, and they stay so
        code, body = call(dashboard, "POST", "/queue_tasks", {"urls": [f"{target}/page/held{i}" for i in range(3)]})
        assert code == 201, body
        held = [t["id"] for t in body["tasks"]]
        expect(cell(page, HOST, "queued")).to_have_text("3")
        expect(cell(page, HOST, "next")).to_have_text("paused")
        # another host's job, queued after them, runs to the end while they still wait
        local = target.replace("127.0.0.1", "localhost")
        code, body = call(dashboard, "POST", "/queue_tasks", {"url": f"{local}/page/other"})
        assert code == 201, body
        wait_status(dashboard, body["task"]["id"], "completed")
        expect(cell(page, HOST, "queued")).to_have_text("3")
        assert statuses(dashboard, held) == ["queued"] * 3

        # Resume by Enter: the jobs run, and the view follows by itself
        resume.focus()
        page.keyboard.press("Enter")
        expect(cell(page, HOST, "state")).to_have_text("active")
        expect(page.locator("#hosts-status")).to_contain_text(f"Resumed {HOST}")
        expect(cell(page, HOST, "queued")).to_have_text("0")
        assert statuses(dashboard, held) == ["completed"] * 3
        assert errors == []
        context.close()


def test_edit_a_policy_search_hosts_and_rows_stay_under_the_pointer(browser, tmp_path):  # noqa: F811
    with running_service(str(tmp_path), "--per-host", "4") as (dashboard, target):
        local = target.replace("127.0.0.1", "localhost")
        for base in (target, local):
            assert call(dashboard, "POST", "/queue_tasks", {"url": f"{base}/slow?delay=20"})[0] == 201
        context, page, errors = open_dashboard(browser, dashboard, "#/hosts")
        expect(cell(page, "localhost", "running")).to_have_text("1")
        expect(cell(page, HOST, "concurrency")).to_have_text("4 (default)")

        # the policy form: opened by its button, kept in the address, a refused value named beside its field
        host_row(page, HOST).get_by_role("button", name=f"Edit the policy of {HOST}").click()
        expect(page).to_have_url(f"{dashboard}#/hosts?edit={HOST}")
        form = page.locator("#host-policy")
        expect(page.locator("#host-policy-title")).to_be_focused()
        expect(page.locator("#host-policy-host")).to_have_text(HOST)
        page.fill("#host-max-concurrency", "0")
        page.get_by_role("button", name="Save policy").click()
        expect(page.locator("#host-max-concurrency-error")).to_contain_text("a whole number from 1 to")
        expect(page.locator("#host-max-concurrency")).to_have_attribute("aria-invalid", "true")
        expect(page.locator("#host-max-concurrency")).to_be_focused()
        page.reload()  # the open form is in the address
        expect(form).to_be_visible()
        page.fill("#host-max-concurrency", "2")
        page.fill("#host-min-delay", "1500")
        page.locator("#host-min-delay").press("Enter")
        expect(form).to_be_hidden()
        expect(page).to_have_url(f"{dashboard}#/hosts")
        expect(cell(page, HOST, "concurrency")).to_have_text("2")
        expect(cell(page, HOST, "delay")).to_have_text("1,500 ms")
        expect(host_row(page, HOST).get_by_role("button", name=f"Edit the policy of {HOST}")).to_be_focused()
        policy = call(dashboard, "GET", f"/hosts/{HOST}")[1]["host"]["policy"]
        assert policy == {"max_concurrency": 2, "min_delay_ms": 1500, "paused": False}
        # a blank field gives the server's default back
        host_row(page, HOST).get_by_role("button", name=f"Edit the policy of {HOST}").click()
        expect(page.locator("#host-max-concurrency")).to_have_value("2")
        page.fill("#host-max-concurrency", "")
        page.get_by_role("button", name="Save policy").click()
        expect(cell(page, HOST, "concurrency")).to_have_text("4 (default)")

        # rows stay put under the pointer: a host that sorts before the hovered one waits until the pointer leaves
        row = host_row(page, "localhost")
        row.hover()
        box = row.bounding_box()
        assert call(dashboard, "PUT", "/hosts/a.example", {"min_delay_ms": 5})[0] == 200
        expect(cell(page, "localhost", "concurrency")).to_have_text("4 (default)")
        call(dashboard, "PUT", "/hosts/localhost", {"max_concurrency": 3})  # seen in place by the next refresh
        expect(cell(page, "localhost", "concurrency")).to_have_text("3")
        assert host_row(page, "a.example").count() == 0 and row.bounding_box() == box
        page.mouse.move(5, 5)
        expect(host_row(page, "a.example")).to_have_count(0)  # focus is still in the table (on Edit): it waits
        page.locator("#hosts-q").focus()
        expect(page.locator("#hosts-table tbody tr")).to_have_count(3)
        order = page.locator("#hosts-table tbody tr").evaluate_all("rows => rows.map(r => r.dataset.host)")
        assert order == [HOST, "a.example", "localhost"]

        # the search lives in the address: reload and Back find it again
        page.fill("#hosts-q", "local")
        page.locator("#hosts-q").press("Enter")
        expect(page).to_have_url(f"{dashboard}#/hosts?q=local")
        expect(page.locator("#hosts-table tbody tr")).to_have_count(1)
        page.reload()
        expect(page.locator("#hosts-q")).to_have_value("local")
        expect(page.locator("#hosts-table tbody tr")).to_have_count(1)
        page.fill("#hosts-q", "nothing-like-it")
        page.locator("#hosts-q").press("Enter")
        expect(page.locator("#hosts-empty")).to_have_text('No host matches "nothing-like-it".')
        page.go_back()
        expect(page.locator("#hosts-q")).to_have_value("local")
        expect(host_row(page, "localhost")).to_be_visible()
        assert errors == []
        context.close()


@pytest.mark.parametrize(("scheme", "width"), [("light", 1280), ("dark", 1280), ("light", 390), ("dark", 390)])
def test_the_hosts_view_passes_axe(browser, tmp_path, scheme, width):  # noqa: F811
    with running_service(str(tmp_path)) as (dashboard, target):
        assert call(dashboard, "POST", "/queue_tasks", {"url": f"{target}/slow?delay=20"})[0] == 201
        assert call(dashboard, "PUT", "/hosts/paused.example", {"paused": True, "min_delay_ms": 200})[0] == 200
        context, page, errors = open_dashboard(browser, dashboard, f"#/hosts?edit={HOST}", scheme, width)
        expect(cell(page, HOST, "running")).to_have_text("1")
        expect(cell(page, "paused.example", "state")).to_have_text("paused")
        page.fill("#host-min-delay", "-1")
        page.get_by_role("button", name="Save policy").click()
        expect(page.locator("#host-min-delay-error")).to_be_visible()
        assert axe_serious(page, "body") == []
        assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
        expect(page).to_have_url(re.compile(r"#/hosts\?edit="))
        assert errors == []
        context.close()
