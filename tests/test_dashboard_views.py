"""The operator's views in chromium: running now, failed, HTTP errors and batches from the header's links,
each free of serious axe-core violations, and URLs shortened in the middle at phone width."""

from __future__ import annotations

import os
import re
import time

import pytest
from playwright.sync_api import expect

from tests.browser import ROOT, call, have_chromium, running_service
from tests.test_dashboard_browser import TIMEOUT, browser  # noqa: F401 (the fixture)
from tests.test_dashboard_deliveries import axe_serious

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not have_chromium(), reason="needs Debian's chromium (apt-get install chromium)")]
SHOTS = os.environ.get("JOBQUEUE_SCREENSHOTS") == "1"  # set to refresh the pictures in docs/


def shot(page, name):
    if SHOTS:
        page.screenshot(path=os.path.join(ROOT, "docs", name), full_page=True)


def test_views_from_the_header_and_phone_width(browser, tmp_path):  # noqa: F811
    with running_service(str(tmp_path), "--max-attempts", "1") as (dashboard, target):
        call(dashboard, "POST", "/batches", {"urls": [f"{target}/page/{i}" for i in range(6)]
                                             + [f"{target}/status/404", f"{target}/status/503",
                                                "http://127.0.0.1:9/refused"], "tags": ["nightly"]})
        slow = f"{target}/slow?delay=20&label=a-long-query-string-for-the-phone"
        call(dashboard, "POST", "/queue_tasks", {"url": slow})
        context = browser.new_context(bypass_csp=True, viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.set_default_timeout(TIMEOUT)
        page.goto(dashboard)
        expect(page.locator("#stats-summary")).to_contain_text("Last minute:", timeout=15_000)  # sent every 5 s
        shot(page, "dashboard.png")
        views = page.get_by_role("navigation", name="views")
        for name, rows, picture in (("Running now", 1, "view-running.png"), ("Failed", 1, "view-failed.png"),
                                    ("HTTP 4xx", 1, None), ("HTTP 5xx", 1, "view-http-errors.png")):
            views.get_by_role("link", name=name).click()
            expect(page.locator("#jobs tbody tr")).to_have_count(rows)
            if name == "Running now":  # how long it has been fetching, ticking
                expect(page.locator("#jobs tbody tr td").nth(4)).to_have_text(re.compile(r"^running \d+s$"))
            assert axe_serious(page, "main") == [], name
            if picture:
                shot(page, picture)
        views.get_by_role("link", name="Batches").click()
        batch_row = page.locator("#batches tbody tr")
        expect(batch_row).to_have_count(1)
        expect(batch_row.locator("td").nth(2)).to_have_text("9 / 9")
        expect(batch_row.locator("td").nth(5)).to_have_text("finished")
        assert axe_serious(page, "main") == []
        shot(page, "view-batches.png")
        batch_row.get_by_role("link").click()
        expect(page.locator("#batch")).to_be_visible()
        shot(page, "view-batch.png")
        views.get_by_role("link", name="Webhook deliveries").click()
        expect(page.locator("#deliveries")).to_be_visible()
        views.get_by_role("link", name="Jobs", exact=True).click()
        page.set_viewport_size({"width": 375, "height": 800})
        page.reload()
        link = page.locator("#jobs tbody tr td.url a").first
        host = slow.split("/")[2]
        expect(link).to_have_text(f"{host}/…{slow[-14:]}")  # the host and the end, the middle left out
        expect(link.locator("xpath=..")).to_have_attribute("title", slow)
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 375
        shot(page, "dashboard-phone.png")
        context.close()


def test_failed_by_error_code_running_by_host_and_the_page_in_the_address(browser, tmp_path):  # noqa: F811
    with running_service(str(tmp_path), "--max-attempts", "1") as (dashboard, target):
        call(dashboard, "POST", "/queue_tasks", {"urls": [f"http://127.0.0.1:9/r{i}" for i in range(3)]
                                                 + [f"{target}/loop/{i}" for i in range(2)]})
        call(dashboard, "POST", "/queue_tasks", {"url": f"{target}/slow?delay=20"})
        deadline = time.monotonic() + 15
        while call(dashboard, "GET", "/queue_tasks?limit=1")[1]["counts"]["failed"] < 5:
            assert time.monotonic() < deadline, "the five failures never came"
            time.sleep(0.05)  # polling a child process's API, bounded by the deadline
        page = browser.new_page()
        page.set_default_timeout(TIMEOUT)
        page.goto(f"{dashboard}#/jobs?status=failed")
        groups = page.locator("#groups")
        expect(groups).to_have_text("By error code (all 5): connection_error 3 · too_many_redirects 2")
        page.goto(f"{dashboard}#/jobs?status=running")
        expect(groups).to_contain_text(f"By host (all 1): {target.split('/')[2]} 1 (longest ")
        call(dashboard, "POST", "/queue_tasks", {"urls": [f"{target}/page/{i}" for i in range(120)]})
        page.goto(f"{dashboard}#/jobs?host=127.0.0.1")
        page.get_by_role("button", name="Older →").click()
        expect(page).to_have_url(re.compile(r"#/jobs\?host=127\.0\.0\.1&page=2$"))
        expect(page.locator("#page-info")).to_have_text("page 2")  # the address first, then its page
        second = page.locator("#jobs tbody tr").first.get_attribute("data-id")
        page.reload()  # the address brings back page 2
        expect(page.locator("#page-info")).to_have_text("page 2")
        expect(page.locator("#jobs tbody tr").first).to_have_attribute("data-id", second)
        page.go_back()
        expect(page.locator("#page-info")).to_have_text("page 1")
        page.close()
