"""Rows update in place in chromium: focus and a selection survive hundreds of live events, and new jobs
wait behind an "N new jobs" button while the user works with the table."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser import call, have_chromium, running_service
from tests.test_dashboard_browser import TIMEOUT, browser  # noqa: F401 (the fixture)

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not have_chromium(), reason="needs Debian's chromium (apt-get install chromium)")]


def test_focus_and_selection_survive_500_events_and_new_jobs_wait(browser, tmp_path):  # noqa: F811
    with running_service(str(tmp_path), "--workers", "8") as (dashboard, target):
        code, body = call(dashboard, "POST", "/queue_tasks", {"urls": [f"{target}/page/{i}" for i in range(3)]})
        assert code == 201
        page = browser.new_page()
        page.set_default_timeout(TIMEOUT)
        page.goto(dashboard)
        first = body["tasks"][0]
        row = page.locator(f'#jobs tbody tr[data-id="{first["id"]}"]')
        expect(row.locator(".badge")).to_have_text("completed")
        button = row.get_by_role("button", name=f"Retry {first['url']}")
        button.focus()
        link = page.locator(f'#jobs tbody tr[data-id="{body["tasks"][1]["id"]}"] a')
        handle = button.element_handle()
        for start in range(0, 500, 100):  # 500 jobs: 1,500 events (queued, running, completed)
            code, _ = call(dashboard, "POST", "/queue_tasks",
                           {"urls": [f"{target}/page/{start + i}?n=2" for i in range(100)]})
            assert code == 201
        expect(page.locator("#new-jobs")).to_have_text("500 new jobs")
        counts = call(dashboard, "GET", "/queue_tasks?limit=1")[1]["counts"]
        expect(page.locator("[data-count=completed]")).not_to_have_text(str(counts["completed"] - 1000))
        assert page.evaluate("(el) => document.activeElement === el", handle)  # the very same element
        assert page.locator("#jobs tbody tr").count() == 3  # nothing pushed in above the user's row
        # a selection survives too, with focus elsewhere
        page.keyboard.press("Escape")
        link.evaluate("""(a) => { document.activeElement.blur(); const r = document.createRange();
                                  r.selectNodeContents(a); const s = getSelection();
                                  s.removeAllRanges(); s.addRange(r); }""")
        call(dashboard, "POST", "/queue_tasks", {"urls": [f"{target}/page/{i}?n=3" for i in range(50)]})
        expect(page.locator("#new-jobs")).to_have_text("550 new jobs")
        page.wait_for_timeout(1000)  # let a second of events and the Age tick be applied (not synchronisation)
        assert page.evaluate("() => getSelection().toString()") == body["tasks"][1]["url"]
        # the button shows them, newest first
        page.evaluate("() => getSelection().removeAllRanges()")
        page.locator("#new-jobs").click()
        expect(page.locator("#new-jobs")).to_be_hidden()
        expect(page.locator("#jobs tbody tr")).to_have_count(50)
        page.close()
