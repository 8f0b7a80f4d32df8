"""Bulk actions in chromium act on exactly what their label and confirmation state: the view's filter plus
the status the label names, counted by the server (a dry run of the same request), while jobs flow."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import expect

from tests.browser import call, have_chromium, jobs_flowing, patient_expect, running_service  # noqa: F401
from tests.test_dashboard_browser import TIMEOUT, browser  # noqa: F401 (the fixture)
from tests.test_dashboard_deliveries import axe_serious

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not have_chromium(), reason="needs Debian's chromium (apt-get install chromium)")]


def finished(dashboard: str, ids: list[str]) -> dict[str, dict]:
    """The jobs of `ids` once every one of them has finished (bounded wait on the API)."""
    deadline = time.monotonic() + 20
    while True:
        tasks = {i: call(dashboard, "GET", f"/queue_tasks/{i}")[1]["task"] for i in ids}
        if all(t["status"] in ("completed", "failed", "cancelled") for t in tasks.values()):
            return tasks
        assert time.monotonic() < deadline, "the jobs never finished"
        time.sleep(0.05)  # polling a child process's API, bounded by the deadline


def unchanged(dashboard: str, before: dict[str, dict]) -> None:
    for task_id, task in before.items():
        now = call(dashboard, "GET", f"/queue_tasks/{task_id}")[1]["task"]
        assert (now["status"], now["updated_at"]) == (task["status"], task["updated_at"]), now["url"]


def test_bulk_actions_add_their_status_to_the_view_and_count_with_the_server(browser, tmp_path):  # noqa: F811
    with running_service(str(tmp_path), "--max-attempts", "1") as (dashboard, target):
        _, bad = call(dashboard, "POST", "/queue_tasks", {"urls": [f"http://127.0.0.1:9/n{i}" for i in range(3)],
                                                          "tags": ["nightly"]})
        _, good = call(dashboard, "POST", "/queue_tasks", {"urls": [f"{target}/page/n{i}" for i in range(6)],
                                                           "tags": ["nightly"]})
        _, five = call(dashboard, "POST", "/queue_tasks", {"urls": [f"{target}/status/503?i={i}" for i in range(4)]})
        _, slow = call(dashboard, "POST", "/queue_tasks", {"url": f"{target}/slow?delay=60", "tags": ["held"]})
        later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
        code, waiting = call(dashboard, "POST", "/queue_tasks", {"urls": [f"{target}/page/w{i}" for i in range(2)],
                                                                 "tags": ["held"], "not_before": later})
        assert code == 201, waiting
        failed = finished(dashboard, [t["id"] for t in bad["tasks"]])
        completed = finished(dashboard, [t["id"] for t in good["tasks"] + five["tasks"]])
        assert {t["status"] for t in failed.values()} == {"failed"}
        assert {t["status"] for t in completed.values()} == {"completed"}  # 503s too: no retry left
        context = browser.new_context(bypass_csp=True, viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.set_default_timeout(TIMEOUT)
        page.goto(dashboard)
        expect(page.locator("#link")).to_have_attribute("data-state", "live")
        search = page.get_by_role("searchbox", name="Search jobs")
        dialog = page.locator("#confirm")
        said = page.locator("#bulk-status")
        # nightly pages keep coming and completing while the test acts: none of them is failed
        with jobs_flowing(dashboard, lambda n: {"url": f"{target}/page/f{n}", "tags": ["nightly"]}):
            search.fill("tag:nightly")
            search.press("Enter")
            page.get_by_role("button", name="Retry failed…").click()
            expect(dialog).to_contain_text('Retry 3 failed jobs matching "tag:nightly"?')
            assert axe_serious(page, "#confirm") == []
            dialog.get_by_role("button", name="Retry them").click()
            expect(said).to_have_text("Retry: 3 of 3 matching jobs changed.")
            unchanged(dashboard, completed)  # not one completed nightly job was queued again
            for task_id, task in failed.items():
                assert call(dashboard, "GET", f"/queue_tasks/{task_id}")[1]["task"]["updated_at"] > task["updated_at"]

            # the 5xx view holds completed jobs only: "Retry failed" finds none and changes none
            page.get_by_role("navigation", name="views").get_by_role("link", name="HTTP 5xx").click()
            expect(page.locator("#jobs tbody tr")).to_have_count(4)
            page.get_by_role("button", name="Retry failed…").click()
            expect(said).to_have_text('No failed job matches "http_status:5xx": nothing to retry.')
            expect(dialog).to_be_hidden()
            unchanged(dashboard, {t["id"]: completed[t["id"]] for t in five["tasks"]})

            # "Cancel queued" cancels the queued ones, not the running one beside them
            search.fill("tag:held")
            search.press("Enter")
            expect(page.locator("#jobs tbody tr")).to_have_count(3)
            expect(page.locator(f'#jobs tbody tr[data-id="{slow["task"]["id"]}"] .badge')).to_have_text("running")
            page.get_by_role("button", name="Cancel queued…").click()
            expect(dialog).to_contain_text('Cancel 2 queued jobs matching "tag:held"?')
            page.keyboard.press("Escape")  # "keep them": nothing happens
            expect(dialog).to_be_hidden()
            assert len(call(dashboard, "GET", "/queue_tasks?tag=held&status=queued")[1]["tasks"]) == 2
            page.get_by_role("button", name="Cancel queued…").click()
            dialog.get_by_role("button", name="Cancel them").click()
            expect(said).to_have_text("Cancel: 2 of 2 matching jobs changed.")
            assert call(dashboard, "GET", f"/queue_tasks/{slow['task']['id']}")[1]["task"]["status"] == "running"
            for task in waiting["tasks"]:
                assert call(dashboard, "GET", f"/queue_tasks/{task['id']}")[1]["task"]["status"] == "cancelled"
        context.close()
