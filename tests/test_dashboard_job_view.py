"""The job view in chromium: the URL as its title, local times with UTC on hover, the redirect chain as a
list, labelled timings, a sandboxed preview that keeps inline styles and says what it blocks, an image
preview, and a download named after the URL."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser import call, have_chromium, running_service
from tests.test_dashboard_browser import TIMEOUT, browser, fact  # noqa: F401 (the fixture)

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not have_chromium(), reason="needs Debian's chromium (apt-get install chromium)")]


def finished(dashboard, task_id):
    import time
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        task = call(dashboard, "GET", f"/queue_tasks/{task_id}")[1]["task"]
        if task["status"] == "completed":
            return task
        time.sleep(0.05)  # polling a child process's API, bounded by the deadline
    raise AssertionError(f"{task_id} did not complete")


def test_the_job_view_reads_like_a_report(browser, tmp_path):  # noqa: F811
    with running_service(str(tmp_path)) as (dashboard, target):
        page_job = call(dashboard, "POST", "/queue_tasks", {"url": f"{target}/redirect/2"})[1]["task"]
        image_job = call(dashboard, "POST", "/queue_tasks", {"url": f"{target}/png"})[1]["task"]
        styled_job = call(dashboard, "POST", "/queue_tasks", {"url": f"{target}/styled"})[1]["task"]
        finished(dashboard, styled_job["id"])
        finished(dashboard, page_job["id"])
        finished(dashboard, image_job["id"])
        context = browser.new_context(accept_downloads=True)  # the dashboard's own CSP applies here
        page = context.new_page()
        page.set_default_timeout(TIMEOUT)
        page.goto(f"{dashboard}#/job/{page_job['id']}")
        dialog = page.locator("#detail")
        expect(dialog.get_by_role("heading", level=2)).to_have_text(page_job["url"])
        created = fact(dialog, "Created").locator("time")
        expect(created).to_have_attribute("title", f"{page_job['created_at']} (UTC)")
        expect(fact(dialog, "Redirects").locator("li")).to_have_count(3)  # two hops, then the final URL
        expect(fact(dialog, "Timings")).to_contain_text("DNS")
        expect(dialog.get_by_role("region", name="attempts").locator("li")).to_contain_text(["completed, HTTP 200"])
        expect(fact(dialog, "Timings")).to_contain_text("first byte")
        expect(dialog).to_contain_text("scripts, images, fonts, frames and network requests are blocked")
        frame = dialog.locator("iframe")
        assert frame.get_attribute("sandbox") == ""
        assert "style-src 'unsafe-inline'" in frame.get_attribute("srcdoc")
        with page.expect_download() as download:
            dialog.get_by_role("button", name="Download utf8.html").click()
        assert download.value.suggested_filename == "utf8.html"
        close(page)
        page.goto(f"{dashboard}#/job/{image_job['id']}")
        image = dialog.get_by_role("img", name=f"the image fetched from {image_job['url']}")
        expect(image).to_be_visible()
        page.wait_for_function("(img) => img.complete && img.naturalWidth === 1", arg=image.element_handle())
        close(page)
        page.goto(f"{dashboard}#/job/{styled_job['id']}")
        preview = page.frame_locator("#detail iframe").locator("#x")
        expect(preview).to_have_text("styled")  # its script did not run
        expect(preview).to_have_css("color", "rgb(1, 2, 3)")  # its own inline CSS did apply
        context.close()


def close(page) -> None:
    """Close the job view and let the address step back before the next goto: the close's history.back() is
    asynchronous, and a goto before it lands is undone by it."""
    page.locator("#detail-close").click()
    expect(page.locator("#detail")).to_be_hidden()
    expect(page).not_to_have_url(re.compile(r"#/job/"))
