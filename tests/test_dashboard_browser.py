"""The dashboard in a real browser (Debian's chromium driven by playwright) against real processes."""

from __future__ import annotations

import json
import os
import urllib.request

import pytest

from tests.browser import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    SERVER_LINE,
    child,
    have_chromium,
    running_service,
    running_target,
    server_args,
)

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not have_chromium(), reason="needs Debian's chromium (apt-get install chromium)")]
TIMEOUT = 15_000


@pytest.fixture
def browser(request):
    """Debian's chromium; on a failure every open page is saved under test-artifacts/ to look at."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        if getattr(request.node, "failed_call", False):
            os.makedirs(ARTIFACTS, exist_ok=True)
            for i, page in enumerate(p for c in chromium.contexts for p in c.pages):
                page.screenshot(path=os.path.join(ARTIFACTS, f"failure-{request.node.name}-{i}.png"), full_page=True)
        chromium.close()



def counts(dashboard: str) -> dict:
    with urllib.request.urlopen(dashboard + "jobqueue/api/v1.0/queue_tasks?limit=1") as response:
        return json.load(response)["counts"]


def row(page, url: str):
    return page.locator("#jobs tbody tr", has=page.locator(f'td.url[title="{url}"]'))


def test_dashboard_end_to_end(browser, tmp_path):
    from playwright.sync_api import expect

    with running_service(str(tmp_path)) as (dashboard, target):
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(dashboard)
        expect(page.locator("#link")).to_have_attribute("data-state", "live", timeout=TIMEOUT)

        # submit several URLs through the form; rows appear and turn completed without a reload
        ok, missing, hostile = f"{target}/utf8", f"{target}/status/404", f"{target}/script"
        page.fill("#urls", "\n".join([ok, missing, hostile]))
        page.click("#submit-form button[type=submit]")
        for url in (ok, missing, hostile):
            expect(row(page, url).locator(".badge")).to_have_text("completed", timeout=TIMEOUT)
        expect(page.locator("[data-count=completed]")).to_have_text("3", timeout=TIMEOUT)

        # a 404 stands out
        expect(row(page, missing).locator(".http")).to_have_class("http bad-status")
        expect(row(page, ok).locator(".http")).to_have_class("http good")

        # bad input is shown inline, next to the form
        page.fill("#urls", "ftp://example.com/file")
        page.click("#submit-form button[type=submit]")
        expect(page.locator("#submit-error")).to_contain_text("not supported")

        # the hostile page renders in a sandboxed iframe, and its script never runs
        row(page, hostile).locator("td.url a").click()
        frame = page.locator("#detail iframe")
        expect(frame).to_be_visible(timeout=TIMEOUT)
        assert frame.get_attribute("sandbox") == ""
        expect(page.frame_locator("#detail iframe").locator("h1")).to_have_text("hostile")
        assert page.title() == "jobqueue"
        page.get_by_role("button", name="Show source").click()
        expect(page.locator("#detail pre")).to_contain_text("<script>")
        page.click("#detail-close")
        assert counts(dashboard)["completed"] == 3
        assert sum(counts(dashboard).values()) == 3  # the script's POST never happened

        # cancel a slow job from the UI, then retry it
        slow = f"{target}/slow?delay=30"
        page.fill("#urls", slow)
        page.click("#submit-form button[type=submit]")
        expect(row(page, slow).locator(".badge")).to_have_text("running", timeout=TIMEOUT)
        row(page, slow).get_by_role("button", name="Cancel").click()
        expect(row(page, slow).locator(".badge")).to_have_text("cancelled", timeout=TIMEOUT)
        row(page, slow).get_by_role("button", name="Retry").click()
        expect(row(page, slow).locator(".badge")).to_have_text("running", timeout=TIMEOUT)

        # filter by status
        page.click("#filters button[data-status=completed]")
        expect(page.locator("#jobs tbody tr")).to_have_count(3, timeout=TIMEOUT)
        page.click("#filters button[data-status='']")
        expect(page.locator("#jobs tbody tr")).to_have_count(4, timeout=TIMEOUT)

        os.makedirs(ARTIFACTS, exist_ok=True)
        page.screenshot(path=os.path.join(ARTIFACTS, "dashboard.png"), full_page=True)
        row(page, ok).locator("td.url a").click()
        expect(page.frame_locator("#detail iframe").locator("p")).to_contain_text("café", timeout=TIMEOUT)
        page.screenshot(path=os.path.join(ARTIFACTS, "job-view.png"))
        assert errors == []


def test_live_link_shows_a_lost_server_and_reconnects_by_itself(browser, tmp_path):
    from playwright.sync_api import expect

    with running_target() as target:
        with child(server_args(str(tmp_path)), SERVER_LINE) as (_proc, match):
            dashboard, port = match.group(1).decode(), match.group(2).decode()
            page = browser.new_page(viewport={"width": 390, "height": 844})
            page.goto(dashboard)
            expect(page.locator("#link")).to_have_attribute("data-state", "live", timeout=TIMEOUT)
        expect(page.locator("#link")).to_have_attribute("data-state", "down", timeout=TIMEOUT)
        expect(page.locator("#link")).to_contain_text("reconnecting")
        with child(server_args(str(tmp_path), int(port)), SERVER_LINE):
            expect(page.locator("#link")).to_have_attribute("data-state", "live", timeout=TIMEOUT)
            page.fill("#urls", f"{target}/utf8")
            page.click("#submit-form button[type=submit]")
            expect(page.locator("#jobs tbody tr .badge").first).to_have_text("completed", timeout=TIMEOUT)
            # phone width: nothing wider than the screen
            assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
            page.screenshot(path=os.path.join(ARTIFACTS, "dashboard-phone.png"), full_page=True)


def test_dashboard_asks_for_the_token_once_and_keeps_it(browser, tmp_path):
    from playwright.sync_api import expect

    token = "browser-token-0123456789abcdef"
    with running_service(str(tmp_path), "--api-token", token) as (dashboard, target):
        context = browser.new_context()
        page = context.new_page()
        page.goto(dashboard)
        dialog = page.locator("#token-dialog")
        expect(dialog).to_be_visible(timeout=TIMEOUT)
        page.fill("#token", token)
        page.click("#token-form button[type=submit]")
        expect(page.locator("#link")).to_have_attribute("data-state", "live", timeout=TIMEOUT)
        page.fill("#urls", f"{target}/utf8")
        page.click("#submit-form button[type=submit]")
        expect(page.locator("#jobs tbody tr .badge").first).to_have_text("completed", timeout=TIMEOUT)
        page.reload()
        expect(page.locator("#link")).to_have_attribute("data-state", "live", timeout=TIMEOUT)
        expect(dialog).to_be_hidden()
        expect(page.locator("#jobs tbody tr")).to_have_count(1, timeout=TIMEOUT)
        context.close()
