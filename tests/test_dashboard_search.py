"""Searching and acting on many in chromium: the search bar's filters in the address, a bad search
explained, retry-all-failed with a confirmation that states the count, and read-only tokens."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest
from playwright.sync_api import expect

from tests.browser import call, have_chromium, running_service
from tests.test_dashboard_browser import TIMEOUT, browser  # noqa: F401 (the fixture)
from tests.test_dashboard_deliveries import axe_serious

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not have_chromium(), reason="needs Debian's chromium (apt-get install chromium)")]
FULL = "full-token-for-the-dashboard-0001"
READER = "reader-token-for-the-dashboard-01"


def wait_counts(dashboard, want):
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        counts = call(dashboard, "GET", "/queue_tasks?limit=1")[1]["counts"]
        if all(counts[k] == v for k, v in want.items()):
            return counts
        time.sleep(0.05)  # polling a child process's API, bounded by the deadline
    raise AssertionError(f"counts never reached {want}: {counts}")


def test_search_in_the_address_then_retry_every_failed_match(browser, tmp_path):  # noqa: F811
    with running_service(str(tmp_path), "--max-attempts", "1") as (dashboard, target):
        call(dashboard, "POST", "/queue_tasks", {"urls": [f"{target}/status/404?i={i}" for i in range(3)]
                                                 + [f"{target}/page/{i}" for i in range(2)]
                                                 + ["http://127.0.0.1:9/a", "http://127.0.0.1:9/b"]})
        wait_counts(dashboard, {"completed": 5, "failed": 2})
        context = browser.new_context(bypass_csp=True)
        page = context.new_page()
        page.set_default_timeout(TIMEOUT)
        page.goto(dashboard)
        search = page.get_by_role("searchbox", name="Search jobs")
        search.fill("4xx host:127.0.0.1")
        search.press("Enter")
        expect(page).to_have_url(f"{dashboard}#/jobs?http_status=4xx&host=127.0.0.1")
        expect(page.locator("#jobs tbody tr")).to_have_count(3)
        page.reload()  # the address keeps the search
        expect(page.locator("#jobs tbody tr")).to_have_count(3)
        expect(search).to_have_value("http_status:4xx host:127.0.0.1")
        search.fill("status:done")
        search.press("Enter")
        expect(page.get_by_role("alert")).to_contain_text("status must be one of")
        page.go_back()
        expect(page.locator("#jobs tbody tr")).to_have_count(3)
        search.fill("status:failed")
        search.press("Enter")
        expect(page.locator("#jobs tbody tr")).to_have_count(2)
        assert axe_serious(page, "main") == []
        page.get_by_role("button", name="Retry failed…").click()
        dialog = page.locator("#confirm")
        expect(dialog).to_contain_text("Retry 2 failed jobs matching \"status:failed\"?")
        dialog.get_by_role("button", name="Retry them").click()
        expect(page.get_by_role("status").filter(has_text="Retry:")).to_have_text(
            "Retry: 2 of 2 matching jobs changed.")
        context.close()


def test_a_read_only_token_sees_no_actions(browser, tmp_path):  # noqa: F811
    with running_service(str(tmp_path), "--api-token", FULL, "--read-only-token", READER) as (dashboard, target):
        page = browser.new_page()
        page.set_default_timeout(TIMEOUT)
        page.goto(dashboard)
        page.locator("#token").fill(READER)
        page.locator("#token").press("Enter")
        expect(page.locator("#link")).to_have_attribute("data-state", "live")
        expect(page.locator("#bulk button")).to_have_count(0)
        request = urllib.request.Request(f"{dashboard}jobqueue/api/v1.0/queue_tasks", method="POST",
                                         data=json.dumps({"url": f"{target}/utf8"}).encode(),
                                         headers={"Authorization": f"Bearer {FULL}",
                                                  "Content-Type": "application/json"})
        task_id = json.load(urllib.request.urlopen(request))["task"]["id"]
        row = page.locator(f'#jobs tbody tr[data-id="{task_id}"]')
        expect(row.locator(".badge")).to_have_text("completed")
        expect(row.get_by_role("button")).to_have_count(0)  # no Retry for a token that may only read
        row.get_by_role("link").click()
        expect(page.locator("#detail")).to_contain_text("Final URL")
        expect(page.locator("#detail").get_by_role("button", name="Retry")).to_have_count(0)
        page.close()
