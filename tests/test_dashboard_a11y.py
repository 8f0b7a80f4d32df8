"""The whole dashboard against axe-core (WCAG 2.2 A/AA, serious and critical) in light and dark mode, with
live statistics arriving, new jobs waiting behind their bar and a deleted row kept in place, and reachable
past the table by its skip link."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser import call, have_chromium, running_service
from tests.test_dashboard_browser import TIMEOUT, browser  # noqa: F401 (the fixture)
from tests.test_dashboard_deliveries import axe_serious

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not have_chromium(), reason="needs Debian's chromium (apt-get install chromium)")]


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_every_part_passes_axe_and_the_statistics_speak(browser, tmp_path, scheme):  # noqa: F811
    with running_service(str(tmp_path), "--max-attempts", "1") as (dashboard, target):
        _, made = call(dashboard, "POST", "/queue_tasks", {"urls": [f"{target}/page/{i}" for i in range(4)]
                                                 + [f"{target}/status/404", "http://127.0.0.1:9/refused"]})
        context = browser.new_context(bypass_csp=True, color_scheme=scheme)
        page = context.new_page()
        page.set_default_timeout(TIMEOUT)
        page.goto(dashboard)
        expect(page.locator("#stats-summary")).to_contain_text("Last minute:", timeout=TIMEOUT)
        expect(page.locator("#stats-summary")).to_contain_text("1 failed, 1 HTTP 4xx/5xx")
        expect(page.locator("#stats-hosts tr")).to_have_count(1)
        expect(page.locator("#stats-chart-text")).to_contain_text("6 jobs finished in the last hour")
        expect(page.locator("#stats-errors-text")).to_contain_text("Error rate over the hour 33.3 %")
        expect(page.locator("#stats-errors rect")).not_to_have_count(0)
        expect(page.locator("#stats-latency-text")).to_contain_text("p95 fetch time per minute: at most")
        expect(page.locator("#stats-latency rect")).not_to_have_count(0)
        failed = page.locator("#jobs tbody tr[data-status=failed] .error-text")
        expect(failed).to_have_text("connection_error")  # a failure says why in its row, not only in a tooltip
        assert axe_serious(page, "body") == []
        page.keyboard.press("Tab")
        skip = page.get_by_role("link", name="Skip past the jobs table to the statistics")
        expect(skip).to_be_focused()
        page.keyboard.press("Enter")
        expect(page.locator("#stats")).to_be_focused()
        expect(page).to_have_url(f"{dashboard}")  # a place in the page, not a view: the address stays

        # while the pointer is over the table: a new job waits behind its bar, a deleted one stays greyed
        page.locator("#jobs tbody tr").first.hover()
        assert call(dashboard, "DELETE", f"/queue_tasks/{made['tasks'][0]['id']}?purge=true")[0] == 200
        call(dashboard, "POST", "/queue_tasks", {"url": f"{target}/page/late"})
        expect(page.locator("#new-jobs")).to_have_text("1 new job")
        expect(page.locator("#jobs tbody tr.gone")).to_have_attribute("data-id", made["tasks"][0]["id"])
        assert axe_serious(page, "body") == []
        context.close()
