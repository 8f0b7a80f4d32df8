"""A rendered job in the dashboard's job view: the "rendered" mark, the blocked requests, the render timings, the
screenshot, a PDF download, and nothing axe-core calls serious."""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import expect

from tests.browser import call, have_chromium, running_service
from tests.test_dashboard_browser import TIMEOUT, browser, fact  # noqa: F401 (the fixture)
from tests.test_dashboard_deliveries import axe_serious

pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.skipif(not have_chromium(), reason="needs Debian's chromium (apt-get install chromium)")]


def completed(dashboard: str, task_id: str) -> dict:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        task = call(dashboard, "GET", f"/queue_tasks/{task_id}")[1]["task"]
        if task["status"] in ("completed", "failed"):
            assert task["status"] == "completed", task
            return task
        time.sleep(0.05)  # polling a child process's API, bounded by the deadline
    raise AssertionError(f"{task_id} did not complete")


def test_the_job_view_shows_a_render(browser, tmp_path):  # noqa: F811
    with running_service(str(tmp_path), "--render-browsers", "1", "--chromium", "/usr/bin/chromium") as (
            dashboard, target):
        code, made = call(dashboard, "POST", "/queue_tasks", {
            "url": f"{target}/page/rendered", "render": {"viewport": {"width": 640, "height": 480}},
            "capture": ["screenshot", "pdf"]})
        assert code == 201, made
        task = completed(dashboard, made["task"]["id"])
        context = browser.new_context(accept_downloads=True)
        page = context.new_page()
        page.set_default_timeout(TIMEOUT)
        page.goto(f"{dashboard}#/job/{task['id']}")
        dialog = page.locator("#detail")
        expect(fact(dialog, "Rendered")).to_have_text("rendered in a browser")
        render = dialog.get_by_role("region", name="render")
        expect(fact(render, "Blocked requests")).to_have_text("0")
        expect(fact(render, "Render timings")).to_contain_text("in all")
        shot = render.get_by_role("img", name=f"screenshot of {task['url']} as rendered")
        expect(shot).to_be_visible()
        page.wait_for_function("(img) => img.complete && img.naturalWidth === 640", arg=shot.element_handle())
        with page.expect_download() as download:
            dialog.get_by_role("button", name="Download PDF").click()
        assert download.value.suggested_filename == f"{task['id']}.pdf"
        context.close()
        context = browser.new_context(bypass_csp=True)  # axe-core is injected as an inline script
        page = context.new_page()
        page.set_default_timeout(TIMEOUT)
        page.goto(f"{dashboard}#/job/{task['id']}")
        expect(page.locator("#detail").get_by_role("img", name=f"screenshot of {task['url']} as rendered")
               ).to_be_visible()
        assert axe_serious(page, "#detail") == []
        context.close()
