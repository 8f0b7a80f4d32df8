"""Truthful numbers in chromium, with jobs flowing over the real websocket: a search says how many jobs it
matches and its chips count the search, not the whole queue; an empty search says which search found nothing.
axe-core: nothing serious in light, dark and at 390 px."""

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
LOOKS = ({"color_scheme": "light"}, {"color_scheme": "dark"},
         {"viewport": {"width": 390, "height": 844}, "is_mobile": True})


def finished(dashboard: str, path: str, n: int) -> None:
    """Wait until `path`'s listing holds `n` finished jobs."""
    deadline = time.monotonic() + 30
    while True:
        tasks = call(dashboard, "GET", path)[1]["tasks"]
        if sum(t["status"] in ("completed", "failed") for t in tasks) >= n:
            return
        assert time.monotonic() < deadline, f"{path} never had {n} finished jobs"
        time.sleep(0.05)  # polling a child process's API, bounded by the deadline


def test_a_search_counts_its_own_jobs_and_an_empty_one_says_why(browser, tmp_path):  # noqa: F811
    with running_service(str(tmp_path), "--max-attempts", "1") as (dashboard, target):
        call(dashboard, "POST", "/queue_tasks", {"urls": [f"{target}/page/a{i}" for i in range(3)]
                                                 + [f"{target}/status/404"], "tags": ["alpha"]})
        finished(dashboard, "/queue_tasks?tag=alpha", 4)
        for options in LOOKS:
            context = browser.new_context(bypass_csp=True, **options)
            page = context.new_page()
            page.set_default_timeout(TIMEOUT)
            with jobs_flowing(dashboard, lambda n: {"url": f"{target}/page/beta{n}", "tags": ["beta"]}, every=0.1):
                page.goto(dashboard + "#/jobs?tag=alpha")
                expect(page.locator("#link")).to_have_attribute("data-state", "live")
                line = page.locator("#matching")
                expect(line).to_have_text("4 jobs match tag:alpha; the chips count this search.")
                chips = page.get_by_role("navigation", name=re.compile("filter by status"))
                expect(chips.locator("[data-count=all]")).to_have_text("4")
                expect(chips.locator("[data-count=completed]")).to_have_text("4")
                # the queue goes on growing (beta jobs): the search's chips do not follow it
                grown = call(dashboard, "GET", "/queue_tasks?limit=1")[1]["counts"]
                assert sum(grown.values()) > 4
                page.wait_for_timeout(1500)  # counts messages arrive meanwhile (not synchronisation)
                expect(chips.locator("[data-count=all]")).to_have_text("4")
                assert axe_serious(page, "#jobs-card") == []
                # a status on top of the search: its count, from the same search
                page.goto(dashboard + "#/jobs?status=completed&tag=alpha")
                expect(line).to_have_text("4 jobs match status:completed tag:alpha; the chips count this search.")
                # nothing matches: the empty list names the search
                search = page.get_by_role("searchbox", name="Search jobs")
                search.fill("tag:nothing-here")
                search.press("Enter")
                expect(page.locator("#empty")).to_have_text("No job matches tag:nothing-here.")
                expect(page.locator("#empty")).to_be_visible()
                expect(line).to_have_text("0 jobs match tag:nothing-here; the chips count this search.")
                # back to every job: no search line, and the chips count the whole queue again
                page.get_by_role("navigation", name="views").get_by_role("link", name="Jobs", exact=True).click()
                expect(line).to_be_hidden()
                expect(chips.locator("[data-count=all]")).not_to_have_text("4")
                assert axe_serious(page, "body") == []
            context.close()


def test_charts_read_the_whole_service_with_axes_and_values(browser, tmp_path):  # noqa: F811
    """Two processes: both tabs give the service's one figure (the jobs the store says finished), the charts
    have clock times, units and the value under the pointer, over the last hour and the last day; an instant
    404 took milliseconds, not the wait before it."""
    with running_service(str(tmp_path), "--processes", "2", "--max-attempts", "1") as (dashboard, target):
        _, made = call(dashboard, "POST", "/queue_tasks", {"urls": [f"{target}/status/404"] +
                                                           [f"{target}/page/n{i}" for i in range(9)], "tags": ["n"]})
        pages = []
        for options in LOOKS:
            context = browser.new_context(bypass_csp=True, **options)
            page = context.new_page()
            page.set_default_timeout(TIMEOUT)
            page.goto(dashboard + "#/jobs?tag=n")
            pages.append(page)
        with jobs_flowing(dashboard, lambda n: {"url": f"{target}/page/more{n}"}, every=0.1, rounds=30) as flowing:
            for page in pages:
                expect(page.locator("#stats-chart text.tick").first).to_be_visible()
            while len(flowing) < 30:
                pages[0].wait_for_timeout(200)  # the submissions go on meanwhile (bounded: 30 rounds)
        finished(dashboard, "/queue_tasks?limit=1000", 40)
        counts = call(dashboard, "GET", "/queue_tasks?limit=1")[1]["counts"]
        done = counts["completed"] + counts["failed"]
        for page in pages:
            # one figure whichever process serves the tab: the service's, as the store counts it
            expect(page.locator("#stats-chart-text")).to_contain_text(f"{done} jobs finished in the last hour",
                                                                      timeout=20_000)
            expect(page.locator("#stats-scope")).to_have_text("of the whole service (every process)")
            ticks = page.locator("#stats-chart text.tick").all_text_contents()
            assert any(re.search(r"\d{1,2}:\d{2}", t) for t in ticks), ticks  # clock times on the time axis
            assert any(t.endswith(" ms") or t.endswith(" s") for t in page.locator("#stats-latency text.tick")
                       .all_text_contents())  # a unit on the fetch time's axis
            assert any(t.endswith(" %") for t in page.locator("#stats-errors text.tick").all_text_contents())
            bar = page.locator("#stats-chart rect.bar").last
            bar.hover(position={"x": 2, "y": 1})  # its top: the red part of the bar is at its foot
            expect(page.locator("#stats-chart + .readout")).to_have_text(re.compile(r"\d+ jobs finished, \d+ failed"))
            assert bar.locator("title").text_content().endswith("failed or HTTP 4xx/5xx")
            # the instant 404 took milliseconds
            row = page.locator(f'#jobs tbody tr[data-id="{made["tasks"][0]["id"]}"]')
            expect(row.locator("td").nth(4)).to_have_text(re.compile(r"^\d+ ms$"))
            assert axe_serious(page, "#stats") == []
        page = pages[0]
        page.get_by_role("button", name="Last day").click()
        expect(page.get_by_role("button", name="Last day")).to_have_attribute("aria-pressed", "true")
        expect(page.locator("#stats-chart-name")).to_contain_text("per hour, the last day")
        expect(page.locator("#stats-chart-text")).to_contain_text(f"{done} jobs finished in the last day")
        page.locator("#stats-chart").focus()
        page.keyboard.press("ArrowLeft")
        expect(page.locator("#stats-chart + .readout")).to_have_text(re.compile(rf"{done} jobs finished"))
        assert axe_serious(page, "#stats") == []
