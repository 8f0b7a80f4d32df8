"""The jobs list's rows in chromium, with jobs flowing over the real websocket: live updates can be paused
(no row moves, appears or changes until resumed, wherever the pointer is), the "N new jobs" bar takes no
room from the table, a failure's message is readable in its row, a completed HTTP error shows its class
rather than a green badge, the error-code summary links to each code's jobs, recurring jobs are marked, and
ages give the time in the reader's zone and in UTC on hover. axe-core: nothing serious, light, dark, 390 px."""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import expect

from tests.browser import call, have_chromium, jobs_flowing, patient_expect, running_service  # noqa: F401
from tests.test_dashboard_browser import TIMEOUT, browser  # noqa: F401 (the fixture)
from tests.test_dashboard_deliveries import axe_serious

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not have_chromium(), reason="needs Debian's chromium (apt-get install chromium)")]


def settled(dashboard: str, at_least: int) -> None:
    deadline = time.monotonic() + 30
    while True:
        counts = call(dashboard, "GET", "/queue_tasks?limit=1")[1]["counts"]
        if counts["completed"] + counts["failed"] >= at_least:
            return
        assert time.monotonic() < deadline, f"the queue never settled: {counts}"
        time.sleep(0.05)  # polling a child process's API, bounded by the deadline


def shown(page) -> list[tuple[str, str]]:
    return page.evaluate("""() => [...document.querySelectorAll('#jobs tbody tr')]
        .map((tr) => [tr.dataset.id, tr.dataset.status])""")


def test_paused_rows_stay_put_and_the_new_bar_takes_no_room(browser, tmp_path):  # noqa: F811
    with running_service(str(tmp_path), "--workers", "2") as (dashboard, target):
        call(dashboard, "POST", "/queue_tasks", {"urls": [f"{target}/page/first{i}" for i in range(5)]})
        settled(dashboard, 5)
        context = browser.new_context(bypass_csp=True, viewport={"width": 1280, "height": 1000})
        page = context.new_page()
        page.set_default_timeout(TIMEOUT)
        page.goto(dashboard)
        expect(page.locator("#link")).to_have_attribute("data-state", "live")
        rows = page.locator("#jobs tbody tr")
        bar = page.locator("#new-jobs")
        pause = page.get_by_role("button", name="Pause live updates")
        expect(rows).to_have_count(5)
        top = rows.first.bounding_box()
        with jobs_flowing(dashboard, lambda n: {"url": f"{target}/slow?delay=0.4&n={n}"}, every=0.15):
            pause.focus()
            page.keyboard.press("Space")
            resume = page.get_by_role("button", name="Resume live updates")
            expect(resume).to_have_attribute("aria-pressed", "true")
            page.mouse.move(5, 5)  # the pointer away from the table, focus on the button: only the pause holds
            before = shown(page)
            expect(bar).to_have_text(re.compile(r"^([3-9]|\d{2,}) new jobs"))
            assert rows.first.bounding_box() == top  # the bar came without moving the table
            page.wait_for_timeout(800)  # jobs keep arriving and finishing meanwhile (not synchronisation)
            assert shown(page) == before  # no row moved, appeared, went or changed
            assert axe_serious(page, "#jobs-card") == []
            resume.click()
            expect(page.get_by_role("button", name="Pause live updates")).to_have_attribute("aria-pressed", "false")
            expect(rows.first).not_to_have_attribute("data-id", before[0][0])
            expect(bar).to_be_hidden()
            assert rows.first.bounding_box()["y"] == top["y"]
        context.close()


def test_a_row_says_what_came_of_its_job(browser, tmp_path):  # noqa: F811
    with running_service(str(tmp_path), "--max-attempts", "1") as (dashboard, target):
        _, made = call(dashboard, "POST", "/queue_tasks", {"urls": [f"http://127.0.0.1:9/r{i}" for i in range(2)]
                                                           + [f"{target}/status/404", f"{target}/page/ok"]})
        _, recurring = call(dashboard, "POST", "/queue_tasks", {"url": f"{target}/page/again", "every": 3600})
        settled(dashboard, 5)
        refused, missing, fine = made["tasks"][0], made["tasks"][2], made["tasks"][3]
        for options in ({"color_scheme": "light"}, {"color_scheme": "dark"},
                        {"viewport": {"width": 390, "height": 844}, "is_mobile": True}):
            context = browser.new_context(bypass_csp=True, **options)
            page = context.new_page()
            page.set_default_timeout(TIMEOUT)
            page.goto(dashboard)
            expect(page.locator("#link")).to_have_attribute("data-state", "live")
            row = lambda task, page=page: page.locator(f'#jobs tbody tr[data-id="{task["id"]}"]')  # noqa: E731
            with jobs_flowing(dashboard, lambda n: {"url": f"{target}/page/f{n}"}):
                # the failure's message under its code, visible without hovering
                reason = row(refused).locator(".reason")
                expect(row(refused).locator(".error-text")).to_have_text("connection_error")
                expect(reason).to_be_visible()
                expect(reason).to_contain_text("127.0.0.1")
                # a 404: its class in words beside a badge that is not success's green
                expect(row(missing).locator(".http-class")).to_have_text("HTTP 4xx")
                expect(row(missing).locator(".http-class")).to_be_visible()
                ok_color = row(fine).locator(".badge").evaluate("(b) => getComputedStyle(b).color")
                assert row(missing).locator(".badge").evaluate("(b) => getComputedStyle(b).color") != ok_color
                expect(row(fine).locator(".http-class")).to_have_count(0)
                # a recurring job is marked; an age gives the time, local and UTC, on hover
                expect(row(recurring["task"]).locator(".tag.recurring")).to_have_text("recurring")
                expect(row(fine).locator("td").nth(5)).to_have_attribute("title", re.compile(r"\(.+ UTC\)$"))
                assert axe_serious(page, "body") == []
                if options.get("color_scheme") == "light":
                    # the summary by error code links to each code's failed jobs
                    page.get_by_role("navigation", name="views").get_by_role("link", name="Failed").click()
                    link = page.locator("#groups").get_by_role("link", name="connection_error 2")
                    expect(link).to_be_visible()
                    assert axe_serious(page, "body") == []
                    link.focus()
                    page.keyboard.press("Enter")
                    expect(page).to_have_url(f"{dashboard}#/jobs?status=failed&error=connection_error")
                    expect(page.get_by_role("searchbox", name="Search jobs")).to_have_value(
                        "status:failed error:connection_error")
                    expect(page.locator("#jobs tbody tr")).to_have_count(2)
            context.close()
