"""The Schedules view in chromium, with recurring runs and other jobs flowing over the real websocket: every
recurring URL with its period, next run and last change, stopped only after a confirmation. axe-core: nothing
serious, light, dark and 390 px."""

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


def changed_once(dashboard: str, url: str) -> None:
    """Wait until the history of `url` holds a result marked changed."""
    deadline = time.monotonic() + 30
    while not any(r["changed"] for r in call(dashboard, "GET", f"/history?url={url}")[1]["results"]):
        assert time.monotonic() < deadline, f"{url} never changed"
        time.sleep(0.1)  # polling a child process's API, bounded by the deadline


def test_schedules_list_every_recurring_url_and_stop_after_asking(browser, tmp_path):  # noqa: F811
    with running_service(str(tmp_path), "--min-every", "1", "--max-attempts", "1") as (dashboard, target):
        changing = f"{target}/flaky/sched?fail=1"  # 503 "busy" first, then "ok after 1 failures": a change
        steady = f"{target}/page/steady"
        _, first = call(dashboard, "POST", "/queue_tasks", {"url": changing, "every": 1})
        _, second = call(dashboard, "POST", "/queue_tasks", {"url": steady, "every": 3600})
        changed_once(dashboard, changing)
        for options in ({"color_scheme": "dark"}, {"viewport": {"width": 390, "height": 844}, "is_mobile": True},
                        {"color_scheme": "light"}):  # light last: it stops a schedule
            context = browser.new_context(bypass_csp=True, **options)
            page = context.new_page()
            page.set_default_timeout(TIMEOUT)
            with jobs_flowing(dashboard, lambda n: {"url": f"{target}/page/other{n}"}):
                page.goto(dashboard)
                expect(page.locator("#link")).to_have_attribute("data-state", "live")
                page.get_by_role("navigation", name="views").get_by_role("link", name="Schedules").click()
                expect(page).to_have_url(f"{dashboard}#/schedules")
                expect(page.get_by_role("link", name="Schedules")).to_have_attribute("aria-current", "page")
                expect(page).to_have_title("Schedules · jobqueue")
                expect(page.locator("#jobs-card")).to_be_hidden()
                rows = page.locator("#schedules-table tbody tr")
                expect(rows).to_have_count(2)
                live = page.locator(f'tr[data-schedule="{first["task"]["id"]}"]')
                calm = page.locator(f'tr[data-schedule="{second["task"]["id"]}"]')
                expect(live.locator("td").nth(0)).to_have_text(changing)
                expect(live.locator("td").nth(1)).to_have_text("every second")
                expect(calm.locator("td").nth(1)).to_have_text("every hour")
                expect(calm.locator("td").nth(3).locator("time")).to_have_count(1)  # its next run
                # the last change: a time, a link to the run's History tab
                change = live.locator("td").nth(4).get_by_role("link", name=f"what changed in {changing}")
                expect(change).to_have_attribute("href", re.compile(r"^#/job/[^/]+/history$"))
                expect(calm.locator("td").nth(4)).to_have_text(re.compile(r"^(no change in 1 result|no result yet)$"))
                assert axe_serious(page, "#schedules") == []
                if options.get("color_scheme") != "light":
                    context.close()
                    continue
                # History's "Changes only": the results whose body changed, and this job's
                page.goto(dashboard + f"#/job/{first['task']['id']}/history")
                results = page.locator(".history-list tbody tr")
                expect(results.nth(2)).to_be_attached()  # several runs stored
                total = results.count()
                page.get_by_label("Changes only").check()
                shown = page.locator(".history-list tbody tr:visible")
                expect(shown.locator(".body-changed")).to_have_count(1)
                assert 1 <= shown.count() <= 2 < total  # the change, and this job (the first run)
                assert axe_serious(page, "#detail") == []
                page.get_by_label("Changes only").uncheck()
                expect(shown).to_have_count(results.count())
                page.goto(dashboard + "#/schedules")
                # stop asks first; "Keep it" changes nothing
                stop = calm.get_by_role("button", name=f"Stop fetching {steady}")
                stop.focus()
                page.keyboard.press("Enter")
                dialog = page.locator("dialog#confirm")
                expect(dialog).to_contain_text(f"Stop fetching {steady} every hour?")
                assert axe_serious(page, "dialog#confirm") == []
                page.get_by_role("button", name="Keep it").click()
                expect(dialog).to_be_hidden()
                assert call(dashboard, "GET", f"/schedules/{second['task']['id']}")[1]["schedule"]["active"]
                stop.click()
                page.get_by_role("button", name="Stop schedule").click()
                expect(calm.locator(".badge")).to_have_text("stopped")
                expect(calm.get_by_role("button")).to_have_count(0)
                expect(page.locator("#schedules-status")).to_have_text(f"Stopped: {steady} is no longer fetched.")
                assert not call(dashboard, "GET", f"/schedules/{second['task']['id']}")[1]["schedule"]["active"]
                expect(live.locator(".badge")).to_have_text("active")
            context.close()
