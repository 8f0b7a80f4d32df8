"""The job view's History tab in chromium, used like a person with the keyboard: the URL's results newest
first (changed / unchanged / first), this result against the one before it by default, two others picked
with the arrow keys, a page's `<script>` shown as text and never run, header changes as a table, the note
of a cut diff, a live result added without moving the focus, and no serious axe-core violation."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from playwright.sync_api import expect

from tests.browser import ROOT, call, have_chromium, running_service
from tests.test_dashboard_browser import TIMEOUT, browser  # noqa: F401 (the fixture)
from tests.test_dashboard_deliveries import axe_serious
from tests.test_dashboard_job_view import finished

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not have_chromium(), reason="needs Debian's chromium (apt-get install chromium)")]
SHOTS = os.environ.get("JOBQUEUE_SCREENSHOTS") == "1"  # set to refresh the pictures in docs/

BEFORE = "<!doctype html>\n<title>watched</title>\n<h1>Prices</h1>\n<p>tea: 10</p>\n<p>coffee: 12</p>\n"
HOSTILE = ('<p>tea: 11 <script>window.__pwned = "script";</script>'
           '<img src=x onerror="window.__pwned = \'img\'"></p>')
AFTER = BEFORE.replace("<p>tea: 10</p>", HOSTILE)


class _Page(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        site: ChangingSite = self.server.site  # type: ignore[attr-defined]
        data = site.body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        for name, value in site.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


class ChangingSite:
    """A page on 127.0.0.1 whose body and headers the test sets between fetches (a thread of this process)."""

    def __init__(self) -> None:
        self.body = BEFORE
        self.headers = {"X-Version": "1"}
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Page)
        self.server.site = self  # type: ignore[attr-defined]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/watched"

    def close(self) -> None:
        """Stop serving and join the thread, so the test leaves nothing running."""
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def site() -> Iterator[ChangingSite]:
    """The changing page, stopped after the test."""
    page = ChangingSite()
    yield page
    page.close()


def fetch(dashboard: str, url: str) -> dict:
    """One job for `url`, run to completion (they finish one after the other, so in order)."""
    code, answer = call(dashboard, "POST", "/queue_tasks", {"url": url})
    assert code in (200, 201), answer
    return finished(dashboard, answer["task"]["id"])


def history_routed(dashboard: str, url: str) -> None:
    """Fail with a clear message, not a browser timeout, when the server does not serve GET /history."""
    code, answer = call(dashboard, "GET", f"/history?url={url}")
    assert code == 200, f"GET /history is not routed by make_app: {code} {answer}"


def test_history_tab_by_keyboard_lists_diffs_safely_and_keeps_focus_on_live_rows(browser, tmp_path, site):  # noqa: F811
    with running_service(str(tmp_path)) as (dashboard, _target):
        history_routed(dashboard, site.url)
        first = fetch(dashboard, site.url)
        same = fetch(dashboard, site.url)
        site.body, site.headers = AFTER, {"X-Version": "2", "X-Added": "yes"}
        changed = fetch(dashboard, site.url)
        sha = call(dashboard, "GET", f"/results/{changed['id']}")[1]["result"]["sha256"]

        context = browser.new_context(bypass_csp=True, viewport={"width": 1280, "height": 900})  # CSP off: the
        page = context.new_page()  # rendering alone must keep the page's markup inert (and axe needs it off)
        page.set_default_timeout(TIMEOUT)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(f"{dashboard}#/job/{changed['id']}")
        dialog = page.locator("#detail")
        expect(dialog.get_by_role("heading", level=2)).to_have_text(site.url)
        expect(page.locator("#link")).to_have_attribute("data-state", "live")

        # the keyboard: from the dialog's close button, Tab reaches the tab list (one stop), Right opens History
        page.locator("#detail-close").focus()
        page.keyboard.press("Tab")
        details_tab = dialog.get_by_role("tab", name="Details")
        expect(details_tab).to_be_focused()
        expect(details_tab).to_have_attribute("aria-selected", "true")
        page.keyboard.press("ArrowRight")
        history_tab = dialog.get_by_role("tab", name="History")
        expect(history_tab).to_be_focused()
        expect(history_tab).to_have_attribute("aria-selected", "true")
        expect(details_tab).to_have_attribute("tabindex", "-1")
        panel = dialog.get_by_role("tabpanel", name="History")
        expect(panel).to_be_visible()
        expect(dialog.get_by_role("tabpanel", name="Details")).to_be_hidden()
        assert page.url.endswith(f"#/job/{changed['id']}/history")  # a reload comes back to this tab

        # the list, newest first: time, HTTP status, size, sha256 short, changed / unchanged / first
        rows = panel.locator("table.history-list tbody tr")
        expect(rows).to_have_count(3)
        assert [rows.nth(i).get_attribute("data-id") for i in range(3)] == [changed["id"], same["id"], first["id"]]
        expect(rows.locator("td:last-child")).to_have_text(["changed", "unchanged", "first"])
        expect(rows.first).to_contain_text("(this job)")
        expect(rows.first.locator("td").nth(3)).to_have_text("200")
        expect(rows.first.locator("td").nth(4)).to_have_text(f"{len(AFTER.encode())} B")
        expect(rows.first.locator("td").nth(5)).to_have_text(sha[:12])

        # by default this result against the one before it, the page's markup as text only
        expect(panel.get_by_role("radio", checked=True)).to_have_count(2)
        expect(rows.nth(0).get_by_role("radio", name="compare to")).to_be_checked()
        expect(rows.nth(1).get_by_role("radio", name="compare from")).to_be_checked()
        diff = panel.locator("pre.diff")
        expect(diff.locator("del")).to_have_text(["removed: -<p>tea: 10</p>"])
        expect(diff.locator("ins")).to_have_text([f"added: +{HOSTILE}"])
        assert page.evaluate("() => window.__pwned") is None  # neither the script nor the onerror ran
        assert panel.locator("script, img, iframe").count() == 0
        assert page.evaluate("() => document.querySelectorAll('script').length") == 1  # the dashboard's own
        header_rows = panel.get_by_role("table", name="Header differences").locator("tbody tr")
        expect(header_rows.filter(has_text="X-Version").locator("td")).to_have_text(["changed", "1", "2"])
        expect(header_rows.filter(has_text="X-Added").locator("td")).to_have_text(["added", "(none)", "yes"])
        expect(panel.get_by_role("status")).to_contain_text("3 results. Changes from")
        expect(panel.get_by_role("status")).to_contain_text("1 line added, 1 removed")
        assert axe_serious(page, "#detail") == []
        if SHOTS:
            page.screenshot(path=os.path.join(ROOT, "docs", "view-history.png"))

        # two others picked with the keyboard: Tab into the panel, then each group's checked radio in page order
        # (To sits on the newer row), and an arrow key moves a group's pick
        page.keyboard.press("Tab")
        expect(panel).to_be_focused()
        page.keyboard.press("Tab")
        to_this = rows.nth(0).get_by_role("radio", name="compare to")
        expect(to_this).to_be_focused()
        page.keyboard.press("Tab")
        expect(rows.nth(1).get_by_role("radio", name="compare from")).to_be_focused()
        page.keyboard.press("ArrowDown")
        expect(rows.nth(2).get_by_role("radio", name="compare from")).to_be_checked()
        expect(panel.get_by_role("status")).to_contain_text("1 line added, 1 removed")  # the first against this one
        expect(diff.locator("ins")).to_have_text([f"added: +{HOSTILE}"])
        page.keyboard.press("Shift+Tab")
        expect(rows.nth(1).get_by_role("link")).to_be_focused()  # the row above: its job, by its time
        page.keyboard.press("Shift+Tab")
        expect(to_this).to_be_focused()
        page.keyboard.press("ArrowDown")
        to_same = panel.locator(f"tr[data-id='{same['id']}']").get_by_role("radio", name="compare to")  # stays put
        expect(to_same).to_be_checked()
        expect(panel).to_contain_text("The two bodies are identical (same SHA-256).")
        expect(panel.get_by_role("status")).to_contain_text("identical bodies")

        # a new result of the URL arrives live: a row on top, the focus and the picks stay where they were
        site.body = AFTER.replace("coffee: 12", "coffee: 13")
        newest = fetch(dashboard, site.url)
        expect(rows).to_have_count(4)
        assert rows.first.get_attribute("data-id") == newest["id"]
        expect(rows.first.locator("td:last-child")).to_have_text("changed")
        expect(to_same).to_be_focused()
        expect(to_same).to_be_checked()
        expect(panel.get_by_role("status")).to_contain_text("1 newer result added at the top (4 in all)")
        expect(panel).to_contain_text("The two bodies are identical (same SHA-256).")
        assert errors == []
        context.close()


def test_a_cut_diff_says_so_the_first_result_says_so_and_the_tab_is_in_the_address(browser, tmp_path, site):  # noqa: F811
    long_page = "".join(f"<p>line {i}</p>\n" for i in range(25_000))  # past the 20,000 lines compared
    site.body = long_page
    with running_service(str(tmp_path)) as (dashboard, _target):
        history_routed(dashboard, site.url)
        first = fetch(dashboard, site.url)
        site.body = long_page.replace("<p>line 7</p>", "<p>line seven</p>")
        second = fetch(dashboard, site.url)
        context = browser.new_context(bypass_csp=True, color_scheme="dark")
        page = context.new_page()
        page.set_default_timeout(TIMEOUT)
        page.goto(f"{dashboard}#/job/{first['id']}/history")  # the address opens the tab
        dialog = page.locator("#detail")
        panel = dialog.get_by_role("tabpanel", name="History")
        expect(panel).to_be_visible()
        rows = panel.locator("table.history-list tbody tr")
        expect(rows.locator("td:last-child")).to_have_text(["changed", "first"])
        expect(panel).to_contain_text("This is the first stored result of this URL: pick another one to compare with.")
        assert axe_serious(page, "#detail") == []

        # the newer result, by its link in the list: its tab stays History, and its diff was cut
        rows.first.get_by_role("link").focus()
        page.keyboard.press("Enter")
        expect(page).to_have_url(f"{dashboard}#/job/{second['id']}/history")
        expect(rows.first).to_contain_text("(this job)")
        note = panel.locator("p.note.cut")
        expect(note).to_contain_text("Incomplete diff: only the first 20000 lines")
        expect(panel.locator("pre.diff del")).to_have_text(["removed: -<p>line 7</p>"])
        expect(panel.locator("pre.diff ins")).to_have_text(["added: +<p>line seven</p>"])
        expect(dialog.get_by_role("tab", name="History")).to_be_focused()  # the focus did not fall out of the view
        assert axe_serious(page, "#detail") == []

        page.set_viewport_size({"width": 375, "height": 800})  # a phone: every column still there, no sideways page
        expect(panel.get_by_role("table", name="Header differences").get_by_role("columnheader", name="After")) \
            .to_be_visible()
        expect(panel.get_by_role("columnheader", name="SHA-256")).to_be_attached()
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 375
        context.close()
