"""A big search's count in chromium, with jobs flowing over the real websocket: "N jobs match" and the status
chips give the server's exact count (`matched_counts`) when more jobs match than the page could read itself."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import expect

from tests.browser import call, have_chromium, jobs_flowing, patient_expect, running_service  # noqa: F401
from tests.test_dashboard_browser import TIMEOUT, browser  # noqa: F401 (the fixture)
from tests.test_dashboard_deliveries import axe_serious

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not have_chromium(), reason="needs Debian's chromium (apt-get install chromium)")]
BIG = 1_500  # more than the 1,000 jobs the page would read to count a search on its own


def test_a_big_search_shows_the_servers_exact_count(browser, tmp_path):  # noqa: F811
    with running_service(str(tmp_path), "--max-attempts", "1") as (dashboard, target):
        later = (datetime.now(UTC) + timedelta(days=1)).isoformat()  # they wait: the count is steady
        for start in range(0, BIG, 1000):
            code, _ = call(dashboard, "POST", "/queue_tasks", {
                "urls": [f"{target}/page/big{i}" for i in range(start, min(BIG, start + 1000))],
                "tags": ["big"], "not_before": later})
            assert code == 201
        context = browser.new_context(bypass_csp=True)
        page = context.new_page()
        page.set_default_timeout(TIMEOUT)
        with jobs_flowing(dashboard, lambda n: {"url": f"{target}/page/other{n}", "tags": ["other"]}, every=0.1):
            page.goto(dashboard + "#/jobs?tag=big")
            expect(page.locator("#link")).to_have_attribute("data-state", "live")
            line = page.locator("#matching")
            expect(line).to_have_text("1,500 jobs match tag:big; the chips count this search.")
            chips = page.get_by_role("navigation", name=re.compile("filter by status"))
            expect(chips.locator("[data-count=all]")).to_have_text(re.compile(r"^1,?500$"))
            expect(chips.locator("[data-count=queued]")).to_have_text(re.compile(r"^1,?500$"))
            expect(chips.locator("[data-count=completed]")).to_have_text("0")
            # a status on top of the big search: the server counts that too
            page.goto(dashboard + "#/jobs?status=queued&tag=big")
            expect(line).to_have_text("1,500 jobs match status:queued tag:big; the chips count this search.")
            assert axe_serious(page, "#jobs-card") == []
        context.close()
