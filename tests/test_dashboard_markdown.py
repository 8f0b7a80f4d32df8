"""The job view's Markdown tab in chromium, against a real server and its websocket: beside the preview, reached
and chosen by keyboard (WAI-ARIA tabs), showing the main content (or the whole page) as text, "no readable
text" for a binary body, and axe clean."""

from __future__ import annotations

import sys
import time

import pytest
from playwright.sync_api import expect

from tests.browser import SERVER_LINE, call, child, have_chromium, server_args
from tests.readable_site import expected
from tests.test_dashboard_browser import TIMEOUT, browser, row  # noqa: F401 (the fixture)
from tests.test_dashboard_deliveries import axe_serious
from tests.test_dashboard_job_view import close

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not have_chromium(), reason="needs Debian's chromium (apt-get install chromium)")]


def completed(dashboard: str, task_id: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if call(dashboard, "GET", f"/queue_tasks/{task_id}")[1]["task"]["status"] == "completed":
            return
        time.sleep(0.05)  # polling a child process's API, bounded by the deadline
    raise AssertionError(f"{task_id} did not complete")


def test_the_markdown_tab_beside_the_preview(browser, tmp_path):  # noqa: F811
    with child([sys.executable, "-m", "tests.readable_site"], rb"^(\d+)") as (_s, site), \
            child(server_args(str(tmp_path)), SERVER_LINE) as (_d, served):
        dashboard, base = served.group(1).decode(), f"http://127.0.0.1:{int(site.group(1))}"
        context = browser.new_context(bypass_csp=True)  # axe is injected as a script
        page = context.new_page()
        page.set_default_timeout(TIMEOUT)
        page.goto(dashboard)
        article = call(dashboard, "POST", "/queue_tasks", {"url": f"{base}/article"})[1]["task"]
        png = call(dashboard, "POST", "/queue_tasks", {"url": f"{base}/png"})[1]["task"]
        # the rows arrive and complete over the websocket, then the job is opened from its row
        expect(row(page, article["url"])).to_have_attribute("data-status", "completed")
        row(page, article["url"]).locator("td.url a").click()
        dialog = page.locator("#detail")
        views = dialog.get_by_role("tablist", name="page")
        preview, markdown = views.get_by_role("tab", name="Preview"), views.get_by_role("tab", name="Markdown")
        expect(preview).to_have_attribute("aria-selected", "true")
        expect(dialog.locator("iframe")).to_be_visible()
        assert markdown.get_attribute("tabindex") == "-1"  # one stop in the Tab order: the selected tab

        preview.focus()
        page.keyboard.press("ArrowRight")
        expect(markdown).to_be_focused()
        expect(markdown).to_have_attribute("aria-selected", "true")
        expect(preview).to_have_attribute("tabindex", "-1")
        panel = dialog.locator(f"#{markdown.get_attribute('aria-controls')}")
        expect(panel).to_have_attribute("role", "tabpanel")
        expect(panel).to_have_attribute("aria-labelledby", markdown.get_attribute("id"))
        text = panel.get_by_label("the page as Markdown")
        for sentence in expected()["keep"][:2]:
            expect(text).to_contain_text(sentence.split()[0])
        shown = " ".join(text.inner_text().split())
        assert all(sentence in shown for sentence in expected()["keep"])
        assert not any(sentence in shown for sentence in expected()["drop"])
        expect(dialog.locator("iframe")).to_be_hidden()
        assert axe_serious(page, "#detail") == []

        page.keyboard.press("Tab")  # from the tab into its panel, then the checkbox: whole page
        expect(panel).to_be_focused()
        page.keyboard.press("Tab")
        whole = panel.get_by_label("Whole page (navigation, headers and footers kept)")
        expect(whole).to_be_focused()
        page.keyboard.press("Space")
        expect(text).to_contain_text("Sign up for our morning newsletter")

        markdown.focus()
        page.keyboard.press("Home")
        expect(preview).to_have_attribute("aria-selected", "true")
        expect(dialog.locator("iframe")).to_be_visible()
        close(page)  # and let the address step back, or the close's history.back() would undo the next goto

        completed(dashboard, png["id"])
        page.goto(f"{dashboard}#/job/{png['id']}")
        markdown = dialog.get_by_role("tablist", name="page").get_by_role("tab", name="Markdown")
        markdown.click()
        expect(dialog.get_by_role("status").filter(has_text="No readable text")).to_have_text(
            "No readable text: the body is not HTML or text.")
        assert axe_serious(page, "#detail") == []
        context.close()
