"""The jobs view's state comes from the address only, in chromium with jobs flowing: the search box, the
status chips and the bulk actions follow every change of the address (header links, chips, Back, a
search inside a batch), and nothing else changes what the view lists or acts on."""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import expect

from tests.browser import call, have_chromium, jobs_flowing, patient_expect, running_service  # noqa: F401
from tests.test_dashboard_browser import TIMEOUT, browser  # noqa: F401 (the fixture)

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not have_chromium(), reason="needs Debian's chromium (apt-get install chromium)")]


def settled(dashboard: str, want: dict[str, int]) -> dict[str, int]:
    deadline = time.monotonic() + 20
    while True:
        counts = call(dashboard, "GET", "/queue_tasks?limit=1")[1]["counts"]
        if all(counts[k] >= v for k, v in want.items()) and not counts["queued"] and not counts["running"]:
            return counts
        assert time.monotonic() < deadline, f"the queue never settled: {counts}"
        time.sleep(0.05)  # polling a child process's API, bounded by the deadline


def test_the_address_alone_says_what_the_jobs_view_lists_and_acts_on(browser, tmp_path):  # noqa: F811
    with running_service(str(tmp_path), "--max-attempts", "1") as (dashboard, target):
        call(dashboard, "POST", "/queue_tasks", {"urls": [f"http://127.0.0.1:9/q{i}" for i in range(2)]
                                                 + [f"{target}/page/q{i}" for i in range(3)]})
        _, made = call(dashboard, "POST", "/batches", {"urls": [f"http://127.0.0.1:9/b{i}" for i in range(2)]
                                                       + [f"{target}/page/b{i}" for i in range(4)]})
        batch = made["batch"]["id"]
        settled(dashboard, {"failed": 4, "completed": 7})
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(TIMEOUT)
        page.goto(dashboard)
        expect(page.locator("#link")).to_have_attribute("data-state", "live")
        views = page.get_by_role("navigation", name="views")
        search = page.get_by_role("searchbox", name="Search jobs")
        chips = page.get_by_role("navigation", name="filter by status")
        rows = page.locator("#jobs tbody tr")
        dialog = page.locator("#confirm")
        with jobs_flowing(dashboard, lambda n: {"url": f"{target}/page/f{n}"}):
            views.get_by_role("link", name="Failed").click()
            expect(search).to_have_value("status:failed")
            expect(chips.get_by_role("button", name=re.compile("^failed"))).to_have_attribute("aria-pressed", "true")
            expect(rows).to_have_count(4)

            # the header's Jobs link: every part of the view forgets the failed filter
            views.get_by_role("link", name="Jobs", exact=True).click()
            expect(page).to_have_url(f"{dashboard}#/")
            expect(search).to_have_value("")
            expect(chips.get_by_role("button", name=re.compile("^all"))).to_have_attribute("aria-pressed", "true")
            expect(rows.filter(has=page.locator(".badge.completed"))).not_to_have_count(0)
            page.get_by_role("button", name="Delete finished…").click()
            whole = re.compile(r"^Delete \d+ finished jobs in the whole queue\?$")  # not only the failed ones
            expect(page.locator("#confirm-text")).to_have_text(whole)
            page.keyboard.press("Escape")
            expect(dialog).to_be_hidden()

            # a status chip writes the address; Back restores the view before it
            chips.get_by_role("button", name=re.compile("^completed")).click()
            expect(page).to_have_url(f"{dashboard}#/jobs?status=completed")
            expect(search).to_have_value("status:completed")
            expect(rows.filter(has=page.locator(".badge:not(.completed)"))).to_have_count(0)
            page.go_back()
            expect(page).to_have_url(f"{dashboard}#/")
            expect(search).to_have_value("")
            expect(chips.get_by_role("button", name=re.compile("^all"))).to_have_attribute("aria-pressed", "true")

            # a job opened by its address over a filtered view gives the filter back when it closes
            views.get_by_role("link", name="Failed").click()
            expect(rows).to_have_count(4)
            job = rows.first.get_attribute("data-id")
            page.evaluate("(id) => { location.hash = `#/job/${id}`; }", job)
            expect(page.locator("#detail")).to_be_visible()
            page.keyboard.press("Escape")
            expect(page.locator("#detail")).to_be_hidden()
            expect(page).to_have_url(f"{dashboard}#/jobs?status=failed")
            expect(search).to_have_value("status:failed")

            # searching inside a batch stays in the batch: the box shows it, as a person typing sees it
            page.goto(f"{dashboard}#/batch/{batch}")
            expect(page.locator("#batch")).to_be_visible()
            expect(rows).to_have_count(6)
            expect(search).to_have_value(f"batch:{batch}")
            search.click()
            page.keyboard.press("End")
            page.keyboard.type(" status:failed")
            page.keyboard.press("Enter")
            expect(page).to_have_url(f"{dashboard}#/batch/{batch}?status=failed")
            expect(page.locator("#batch")).to_be_visible()
            expect(rows).to_have_count(2)
            for url in rows.locator("td.url").all():
                assert "/b" in (url.get_attribute("title") or "")
            expect(chips.get_by_role("button", name=re.compile("^failed"))).to_have_attribute("aria-pressed", "true")
            page.get_by_role("button", name="Retry failed…").click()
            expect(dialog).to_contain_text(f'Retry 2 failed jobs matching "batch:{batch} status:failed"?')
            page.keyboard.press("Escape")
            page.reload()  # the address alone brings it all back
            expect(page.locator("#batch")).to_be_visible()
            expect(rows).to_have_count(2)
            expect(search).to_have_value(f"batch:{batch} status:failed")
            # a chip inside the batch keeps the batch too
            chips.get_by_role("button", name=re.compile("^completed")).click()
            expect(page).to_have_url(f"{dashboard}#/batch/{batch}?status=completed")
            expect(rows).to_have_count(4)
            page.get_by_role("link", name="All jobs").click()
            expect(page).to_have_url(f"{dashboard}#/")
            expect(page.locator("#batch")).to_be_hidden()
            expect(search).to_have_value("")
        page.close()
