"""Navigation in chromium with jobs flowing over the real websocket: a row's link opens the job at its own
address (#/job/ID), its tab is in the address too, and Back, Forward and Reload bring back exactly what was
shown, page of the list included; the dialog closes when the view changes; the header marks the view shown
and the tab's title names it with its count. The submit form is folded on the lists and names every bad
line. axe-core finds nothing serious in light, dark and at 390 px."""

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


def settled(dashboard: str, at_least: int) -> dict[str, int]:
    deadline = time.monotonic() + 30
    while True:
        counts = call(dashboard, "GET", "/queue_tasks?limit=1")[1]["counts"]
        if sum(counts.values()) >= at_least and not counts["queued"] and not counts["running"]:
            return counts
        assert time.monotonic() < deadline, f"the queue never settled: {counts}"
        time.sleep(0.05)  # polling a child process's API, bounded by the deadline


def test_every_view_is_its_address_and_back_forward_reload_restore_it(browser, tmp_path):  # noqa: F811
    with running_service(str(tmp_path), "--max-attempts", "1") as (dashboard, target):
        call(dashboard, "POST", "/queue_tasks", {"urls": [f"http://127.0.0.1:9/n{i}" for i in range(3)]})
        call(dashboard, "POST", "/queue_tasks", {"urls": [f"{target}/page/p{i}" for i in range(60)]})
        settled(dashboard, 63)
        context = browser.new_context(bypass_csp=True, viewport={"width": 1440, "height": 900})
        page = context.new_page()
        page.set_default_timeout(TIMEOUT)
        page.goto(dashboard)
        expect(page.locator("#link")).to_have_attribute("data-state", "live")
        views = page.get_by_role("navigation", name="views")
        rows = page.locator("#jobs tbody tr")
        detail = page.locator("#detail")
        search = page.get_by_role("searchbox", name="Search jobs")
        with jobs_flowing(dashboard, lambda n: {"url": f"{target}/page/f{n}"}):
            expect(views.get_by_role("link", name="Jobs", exact=True)).to_have_attribute("aria-current", "page")
            expect(page).to_have_title(re.compile(r"^Jobs \([\d,]+\) · jobqueue$"))
            views.get_by_role("link", name="Failed").click()
            expect(views.get_by_role("link", name="Failed")).to_have_attribute("aria-current", "page")
            expect(views.get_by_role("link", name="Jobs", exact=True)).not_to_have_attribute("aria-current", "page")
            expect(page).to_have_title("Failed (3) · jobqueue")
            expect(rows).to_have_count(3)

            # a row's link opens the job at its address; its tab goes into the address too
            job = rows.first.get_attribute("data-id")
            rows.first.get_by_role("link").click()
            expect(page).to_have_url(f"{dashboard}#/job/{job}")
            expect(detail).to_be_visible()
            detail.get_by_role("tab", name="History").click()
            expect(page).to_have_url(f"{dashboard}#/job/{job}/history")
            page.reload()  # the job and its tab come back
            expect(detail).to_be_visible()
            expect(detail.get_by_role("tab", name="History")).to_have_attribute("aria-selected", "true")
            expect(page).to_have_title(re.compile(rf"^Job {job} · .* · jobqueue$"))
            page.go_back()  # the view beneath, and the dialog closes with the view change
            expect(page).to_have_url(f"{dashboard}#/jobs?status=failed")
            expect(detail).to_be_hidden()
            expect(search).to_have_value("status:failed")
            page.go_forward()
            expect(detail).to_be_visible()
            expect(page).to_have_url(f"{dashboard}#/job/{job}/history")
            page.keyboard.press("Escape")  # closing steps back: the view's address, and Back goes on before it
            expect(detail).to_be_hidden()
            expect(page).to_have_url(f"{dashboard}#/jobs?status=failed")
            page.go_back()
            expect(page).to_have_url(re.compile(rf"^{re.escape(dashboard)}(#/)?$"))  # as it was first typed
            expect(detail).to_be_hidden()
            expect(search).to_have_value("")

            # the page of the list is in the address: Older, Reload, Back
            views.get_by_role("link", name="HTTP 4xx").click()
            views.get_by_role("link", name="Jobs", exact=True).click()
            expect(rows).to_have_count(50)
            page.get_by_role("button", name="Older →").click()
            expect(page).to_have_url(f"{dashboard}#/jobs?page=2")
            expect(page.locator("#page-info")).to_have_text("page 2")
            page.reload()
            expect(page.locator("#page-info")).to_have_text("page 2")
            expect(rows.first).to_be_visible()
            page.go_back()
            expect(page).to_have_url(f"{dashboard}#/")
            expect(page.locator("#page-info")).to_have_text("page 1")
            # a job opened from the second page, and Reload: the job over that page
            page.go_forward()
            expect(page.locator("#page-info")).to_have_text("page 2")
            second = rows.first.get_attribute("data-id")
            rows.first.get_by_role("link").focus()
            page.keyboard.press("Enter")
            expect(page).to_have_url(f"{dashboard}#/job/{second}")
            expect(detail).to_be_visible()
            page.go_back()
            expect(detail).to_be_hidden()
            expect(page.locator("#page-info")).to_have_text("page 2")
            expect(views.get_by_role("link", name="Jobs", exact=True)).to_have_attribute("aria-current", "page")
        context.close()


def test_the_form_is_folded_on_the_lists_and_names_every_bad_line(browser, tmp_path):  # noqa: F811
    with running_service(str(tmp_path)) as (dashboard, target):
        for options in ({"color_scheme": "light", "viewport": {"width": 1440, "height": 900}},
                        {"color_scheme": "dark", "viewport": {"width": 1440, "height": 900}},
                        {"viewport": {"width": 390, "height": 844}, "is_mobile": True}):
            context = browser.new_context(bypass_csp=True, **options)
            page = context.new_page()
            page.set_default_timeout(TIMEOUT)
            page.goto(dashboard)
            expect(page.locator("#link")).to_have_attribute("data-state", "live")
            toggle = page.get_by_role("button", name="Fetch URLs")
            expect(toggle).to_have_attribute("aria-expanded", "false")
            expect(page.get_by_label("Tags")).to_be_hidden()
            assert axe_serious(page, "body") == []
            context.close()
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        page.set_default_timeout(TIMEOUT)
        page.goto(dashboard)
        expect(page.locator("#link")).to_have_attribute("data-state", "live")
        # the folded form leaves the jobs table more room: one line high, the table's top in the window's upper half
        assert page.locator("#submit-card").bounding_box()["height"] < 120
        assert page.locator("#jobs").bounding_box()["y"] < 900 * 0.5
        toggle = page.get_by_role("button", name="Fetch URLs")
        toggle.focus()
        page.keyboard.press("Enter")
        expect(toggle).to_have_attribute("aria-expanded", "true")
        expect(page.get_by_label("Tags")).to_be_visible()
        with jobs_flowing(dashboard, lambda n: {"url": f"{target}/page/f{n}"}):
            urls = page.get_by_label("One URL per line")
            urls.fill(f"{target}/page/1\nhtp://x\n{target}/page/2\nnot a url\n\nftp://y/")
            urls.press("Control+Enter")
            error = page.locator("#submit-error")
            expect(error).to_contain_text("3 lines are refused")
            expect(error).to_contain_text("Nothing was queued")
            expect(page.locator("#submit-bad li")).to_have_count(3)
            expect(page.locator("#submit-bad li").nth(0)).to_contain_text("line 2 (htp://x)")
            expect(page.locator("#submit-bad li").nth(1)).to_contain_text("line 4 (not a url)")
            expect(page.locator("#submit-bad li").nth(2)).to_contain_text("line 6 (ftp://y/)")
            mine = call(dashboard, "GET", "/queue_tasks?url=/page/1&limit=5")[1]["tasks"]
            assert [t for t in mine if t["url"].endswith("/page/1") or t["url"].endswith("/page/2")] == []
        page.close()
