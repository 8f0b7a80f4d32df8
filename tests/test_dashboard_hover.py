"""Rows never move under the pointer, in chromium with jobs flowing over the real websocket: while the pointer
is over the table new rows wait behind "N new jobs", that bar takes no space from the table, and a Retry
click acts on the job that was under the pointer. Keyboard focus on a row holds them the same way."""

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
FOUR_OR_MORE = re.compile(r"^([4-9]|\d{2,}) new jobs$")


def tasks(dashboard: str, ids: list[str]) -> dict[str, dict]:
    return {i: call(dashboard, "GET", f"/queue_tasks/{i}")[1]["task"] for i in ids}


def completed(dashboard: str, ids: list[str]) -> dict[str, dict]:
    deadline = time.monotonic() + 20
    while True:
        found = tasks(dashboard, ids)
        if all(t["status"] == "completed" for t in found.values()):
            return found
        assert time.monotonic() < deadline, f"the first jobs never completed: {[t['status'] for t in found.values()]}"
        time.sleep(0.05)  # polling a child process's API, bounded by the deadline


def rendered(page) -> None:
    """Wait for the page's next two frames: a change it had made before the pointer or focus arrived is
    painted (the table renders once per frame), so what is measured next is what the reader sees."""
    page.evaluate("() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))")


def box(locator) -> tuple[float, float, float, float]:
    b = locator.bounding_box()
    assert b is not None
    return (b["x"], b["y"], b["width"], b["height"])


def test_new_rows_wait_while_the_pointer_is_over_the_table_and_retry_hits_its_job(browser, tmp_path):  # noqa: F811
    with running_service(str(tmp_path), "--workers", "4") as (dashboard, target):
        _, made = call(dashboard, "POST", "/queue_tasks", {"urls": [f"{target}/page/first{i}" for i in range(6)]})
        first = [t["id"] for t in made["tasks"]]
        before = completed(dashboard, first)
        context = browser.new_context(bypass_csp=True, viewport={"width": 1280, "height": 1400})
        page = context.new_page()
        page.set_default_timeout(TIMEOUT)
        page.goto(dashboard)
        expect(page.locator("#link")).to_have_attribute("data-state", "live")
        rows = page.locator("#jobs tbody tr")
        bar = page.locator("#new-jobs")
        expect(rows).to_have_count(6)
        with jobs_flowing(dashboard, lambda n: {"urls": [f"{target}/page/f{n}a", f"{target}/page/f{n}b"]},
                          every=0.25):
            expect(rows).not_to_have_count(6)  # while nobody points at the table, new rows come in live
            intended = first[2]
            row = page.locator(f'#jobs tbody tr[data-id="{intended}"]')
            button = row.get_by_role("button", name=re.compile("^Retry "))
            expect(button).to_be_visible()
            button.hover()
            rendered(page)
            assert page.evaluate("() => scrollY") == 0  # held for the pointer, not for a scrolled page
            shown = rows.count()
            where = box(button)
            table_at = box(page.locator("#jobs"))
            expect(bar).to_have_text(FOUR_OR_MORE)  # at least four new jobs wait behind the bar
            assert rows.count() == shown
            assert box(button) == where, "the row under the pointer moved"
            assert box(page.locator("#jobs")) == table_at, "the bar took space from the table"
            x, y = where[0] + where[2] / 2, where[1] + where[3] / 2
            under = page.evaluate("([x, y]) => document.elementFromPoint(x, y).closest('tr')?.dataset.id", [x, y])
            assert under == intended
            page.mouse.click(x, y)  # where the pointer is, as a hand would
            deadline = time.monotonic() + 15
            while tasks(dashboard, [intended])[intended]["updated_at"] == before[intended]["updated_at"]:
                assert time.monotonic() < deadline, "the Retry under the pointer changed nothing"
                time.sleep(0.05)  # polling a child process's API, bounded by the deadline
            after = tasks(dashboard, first)
            others = [i for i in first if i != intended and after[i]["updated_at"] != before[i]["updated_at"]]
            assert others == [], "a Retry click acted on another job"
            assert axe_serious(page, "#jobs-card") == []

            # the pointer leaves the table (a click elsewhere, so no row keeps focus): the waiting rows come in
            page.get_by_role("heading", name="Fetch URLs").click()
            expect(bar).to_be_hidden()
            expect(rows).not_to_have_count(shown)

            # keyboard focus on a row holds them the same way, and the bar can be reached and used by keys
            focused = page.locator(f'#jobs tbody tr[data-id="{rows.nth(3).get_attribute("data-id")}"]')
            focused.get_by_role("link").focus()
            rendered(page)
            held_at = box(focused)
            expect(bar).to_have_text(FOUR_OR_MORE)
            assert box(focused) == held_at
            expect(focused.get_by_role("link")).to_be_focused()
            page.keyboard.press("Shift+Tab")  # from the first row's link or button back towards the bar
            for _ in range(40):
                if page.evaluate("() => document.activeElement.id") == "new-jobs":
                    break
                page.keyboard.press("Shift+Tab")
            expect(bar).to_be_focused()
            newest = rows.first.get_attribute("data-id")
            page.keyboard.press("Enter")  # shows them, and takes the reader to the newest job
            expect(rows.first).not_to_have_attribute("data-id", newest)
            expect(rows.first.get_by_role("link")).to_be_focused()
        context.close()
