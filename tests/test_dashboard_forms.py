"""The submit form and the token dialog in chromium, used by keyboard: bad lines named by number and value,
the valid ones queued only when asked, tags and priority applied; a refused token said so, and forgotten."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser import call, have_chromium, running_service
from tests.test_dashboard_browser import TIMEOUT, browser  # noqa: F401 (the fixture)

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not have_chromium(), reason="needs Debian's chromium (apt-get install chromium)")]
TOKEN = "forms-test-token-0123456789"


def test_bad_lines_are_named_and_valid_ones_queued_when_asked(browser, tmp_path):  # noqa: F811
    with running_service(str(tmp_path)) as (dashboard, target):
        page = browser.new_page()
        page.set_default_timeout(TIMEOUT)
        page.goto(dashboard)
        urls = page.get_by_label("One URL per line")
        urls.fill(f"{target}/page/1\nhtp://x\n\n{target}/page/2")
        page.get_by_label("Tags").fill("nightly, site:a")
        page.get_by_label("Priority").fill("3")
        urls.press("Control+Enter")
        expect(page.locator("#submit-error")).to_contain_text("Line 2 (htp://x):")
        expect(page.locator("#submit-error")).to_contain_text("Nothing was queued")
        assert sum(call(dashboard, "GET", "/queue_tasks?limit=1")[1]["counts"].values()) == 0
        page.get_by_label("Queue the valid lines, skip the bad ones").check()
        urls.press("Control+Enter")
        expect(page.locator("#submit-ok")).to_have_text("Queued 2 jobs. Skipped the 1 line(s) listed.")
        expect(page.locator("#submit-bad li")).to_have_text(["line 2 (htp://x): the scheme 'htp' is not "
                                                              "supported; use http:// or https://"])
        tasks = call(dashboard, "GET", "/queue_tasks")[1]["tasks"]
        assert len(tasks) == 2 and all(t["tags"] == ["nightly", "site:a"] and t["priority"] == 3 for t in tasks)
        page.close()


def test_a_refused_token_is_said_so_and_a_token_can_be_forgotten(browser, tmp_path):  # noqa: F811
    with running_service(str(tmp_path), "--api-token", TOKEN) as (dashboard, _target):
        page = browser.new_page()
        page.set_default_timeout(TIMEOUT)
        page.goto(dashboard)
        dialog = page.get_by_role("dialog", name="API token")
        expect(dialog).to_be_visible()
        expect(dialog.get_by_role("alert")).to_be_hidden()
        dialog.get_by_label("Token").fill("not-the-right-token-000000")
        dialog.get_by_label("Token").press("Enter")
        expect(dialog.get_by_role("alert")).to_have_text("That token was refused: check it and type it again.")
        dialog.get_by_label("Token").fill(TOKEN)
        dialog.get_by_label("Token").press("Enter")
        expect(page.locator("#link")).to_have_attribute("data-state", "live")
        forget = page.get_by_role("button", name="Forget token")
        expect(forget).to_be_visible()
        forget.click()
        expect(dialog).to_be_visible()  # after the reload, the token is asked for again
        assert page.evaluate("() => localStorage.getItem('jobqueue.token')") is None
        page.close()
