"""The dashboard in a real browser (Debian's chromium driven by playwright) against real processes."""

from __future__ import annotations

import json
import os
import re
import urllib.request

import pytest

from tests.browser import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    SERVER_LINE,
    call,
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
    """Debian's chromium; on a failure every open page is saved under test-artifacts/ to look at. Its `expect`
    assertions wait as long as its page operations (playwright's 5 s is short on a loaded 2-core machine)."""
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT)
    request.addfinalizer(lambda: expect.set_options(timeout=5_000))
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


def fact(scope, name: str):
    """The value of one `name: value` line of a facts list."""
    return scope.locator(f"xpath=.//dt[normalize-space()='{name}']/following-sibling::dd[1]").first


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
        assert page.title().endswith(" · jobqueue") and "pwned" not in page.title()
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
        expect(page.get_by_role("alert").filter(has_text="cannot be reached")).to_be_visible()
        expect(page.locator("#submit-form button[type=submit]")).to_be_disabled()  # actions wait for the server
        with child(server_args(str(tmp_path), int(port)), SERVER_LINE):
            expect(page.locator("#link")).to_have_attribute("data-state", "live", timeout=TIMEOUT)
            expect(page.locator("#down-banner")).to_be_hidden()
            page.fill("#urls", f"{target}/utf8")
            page.locator("#urls").press("Control+Enter")  # queues, like the button
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


def test_jobs_show_their_options_tags_and_priority_and_secrets_stay_hidden(browser, tmp_path):
    from playwright.sync_api import expect

    with running_service(str(tmp_path)) as (dashboard, target):
        secret_url, plain_url = f"{target}/utf8?with=options", f"{target}/utf8?plain=1"
        code, body = call(dashboard, "POST", "/queue_tasks", {
            "url": secret_url, "tags": ["nightly", "site:a"], "priority": 5,
            "fetch": {"headers": {"Authorization": "Bearer s3cret", "X-A": "1"}, "user_agent": "probe/1.0",
                      "timeout": 7, "max_bytes": 2048, "follow_redirects": False}})
        assert code == 201, body
        assert call(dashboard, "POST", "/queue_tasks", {"url": plain_url})[0] == 201
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(dashboard)
        expect(page.locator("#link")).to_have_attribute("data-state", "live", timeout=TIMEOUT)

        # the table: tags as chips, the priority because it is not 0; a plain job shows neither
        expect(row(page, secret_url).locator(".tag")).to_have_text(["nightly", "site:a"], timeout=TIMEOUT)
        expect(row(page, secret_url).locator(".prio")).to_have_text("priority 5")
        expect(row(page, plain_url).locator(".tag, .prio")).to_have_count(0)

        # the job view: every fetch option as the API gives it, the secret header as ***
        expect(row(page, secret_url).locator(".badge")).to_have_text("completed", timeout=TIMEOUT)
        row(page, secret_url).locator("td.url a").click()
        expect(page.locator("#detail iframe")).to_be_visible(timeout=TIMEOUT)
        options = page.get_by_role("region", name="fetch options")
        headers = options.locator("table.kv tr")
        expect(headers.filter(has_text="X-A")).to_have_text(re.compile(r"^X-A\s*1$"))
        expect(headers.filter(has_text="Authorization")).to_have_text(re.compile(r"^Authorization\s*\*\*\*$"))
        for name, value in (("Method", "GET"), ("User agent", "probe/1.0"), ("Timeout", "7 s"),
                            ("Max bytes", "2.0 KiB"), ("Follow redirects", "no"), ("Profile", "none")):
            expect(fact(options, name)).to_have_text(value)
        job = page.locator("#detail-body")
        expect(fact(job, "Priority")).to_have_text("5")
        expect(fact(job, "Tags").locator(".tag")).to_have_text(["nightly", "site:a"])
        expect(job.get_by_text("Batch", exact=True)).to_have_count(0)  # not part of a batch
        assert "s3cret" not in page.content()
        os.makedirs(ARTIFACTS, exist_ok=True)
        page.screenshot(path=os.path.join(ARTIFACTS, "job-options.png"))
        page.click("#detail-close")
        assert errors == []


def test_batch_view_follows_progress_cancels_and_retries(browser, tmp_path):
    from playwright.sync_api import expect

    with running_service(str(tmp_path)) as (dashboard, target):
        assert call(dashboard, "POST", "/queue_tasks", {"url": f"{target}/utf8?alone=1"})[0] == 201
        hanging = f"{target}/slow?delay=60"
        lines = ([f"{target}/page/b{i}" for i in range(14)] + [f"{target}/slow?delay=1&n={i}" for i in range(4)]
                 + [f"{target}/loop/0", hanging])
        code, body = call(dashboard, "POST", "/batches?tag=nightly&priority=-2", "\n".join(lines))
        assert code == 201, body
        batch_id = body["batch"]["id"]
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(dashboard)
        expect(page.locator("#link")).to_have_attribute("data-state", "live", timeout=TIMEOUT)

        # a batch's job links to its batch
        first = row(page, lines[0])
        expect(first.locator(".prio")).to_have_text("priority -2", timeout=TIMEOUT)
        first.locator("td.url a").click()
        page.locator("#detail").get_by_role("link", name=batch_id).click()
        expect(page.locator("#detail")).to_be_hidden()
        batch = page.get_by_role("region", name=re.compile("^Batch"))
        expect(batch).to_be_visible()
        assert page.url.endswith(f"#/batch/{batch_id}")

        # the bar moves live to all-but-one done; the table lists this batch's jobs only
        progress = batch.get_by_role("progressbar", name="batch progress")
        expect(progress).to_have_attribute("aria-valuetext", "19 of 20 done, 1 failed", timeout=TIMEOUT)
        expect(progress).to_have_js_property("value", 19)
        expect(progress).to_have_js_property("max", 20)
        expect(batch.locator("[data-batch-count=completed]")).to_have_text("18")
        expect(batch.locator("[data-batch-count=running]")).to_have_text("1")
        expect(page.locator("#jobs tbody tr")).to_have_count(20)
        expect(page.locator("[data-count=all]")).to_have_text("20")

        # keyboard only: Tab to "Cancel batch", which asks first and says how many jobs it stops
        page.locator("#batch-title").focus()
        for _ in range(10):
            if page.evaluate("() => document.activeElement.id") == "batch-cancel":
                break
            page.keyboard.press("Tab")
        assert page.evaluate("() => document.activeElement.id") == "batch-cancel"
        expect(batch.get_by_role("button", name="Cancel batch")).to_be_focused()
        page.keyboard.press("Enter")
        confirm = page.get_by_role("dialog", name=re.compile("1 unfinished job of this batch"))
        expect(confirm).to_be_visible()
        page.keyboard.press("Escape")
        expect(confirm).to_be_hidden()
        assert call(dashboard, "GET", f"/batches/{batch_id}")[1]["batch"]["counts"]["running"] == 1
        batch.get_by_role("button", name="Cancel batch").press("Enter")
        confirm.get_by_role("button", name="Cancel 1 unfinished job").press("Enter")
        expect(progress).to_have_js_property("value", 20, timeout=TIMEOUT)
        expect(progress).to_have_attribute("aria-valuetext", "20 of 20 done, 1 failed, 1 cancelled")
        # the batch's finish (live, or in the answer) follows the action's own message, never replaces it
        expect(batch.get_by_role("status")).to_have_text(
            re.compile(r"^Cancelled 1 unfinished job\.( Batch finished: 20 of 20 done, 1 failed, 1 cancelled\.)?$"))
        expect(batch.get_by_role("button", name="Cancel batch")).to_be_hidden()
        expect(row(page, hanging).locator(".badge")).to_have_text("cancelled", timeout=TIMEOUT)

        # a reload keeps the view; "Retry failed" queues the failed job again
        page.reload()
        expect(progress).to_have_attribute("aria-valuetext", "20 of 20 done, 1 failed, 1 cancelled", timeout=TIMEOUT)
        expect(page.locator("#jobs tbody tr")).to_have_count(20, timeout=TIMEOUT)
        def failed() -> list[dict]:
            return call(dashboard, "GET", f"/queue_tasks?batch={batch_id}&status=failed")[1]["tasks"]

        before = failed()
        assert [t["url"] for t in before] == [f"{target}/loop/0"]
        batch.get_by_role("button", name="Retry failed (1)").press("Enter")
        # the retried job (a redirect loop) fails again, and the batch's new finish follows the retry's message
        expect(batch.get_by_role("status")).to_have_text(
            re.compile(r"^Queued 1 failed job again\.( Batch finished: 20 of 20 done, 1 failed, 1 cancelled\.)?$"),
            timeout=TIMEOUT)
        expect(progress).to_have_attribute("aria-valuetext", "20 of 20 done, 1 failed, 1 cancelled", timeout=TIMEOUT)
        after = failed()
        assert [t["id"] for t in after] == [before[0]["id"]] and after[0]["updated_at"] > before[0]["updated_at"]
        os.makedirs(ARTIFACTS, exist_ok=True)
        page.screenshot(path=os.path.join(ARTIFACTS, "batch-view.png"), full_page=True)
        page.set_viewport_size({"width": 390, "height": 844})  # phone width: nothing wider than the screen
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
        page.screenshot(path=os.path.join(ARTIFACTS, "batch-view-phone.png"), full_page=True)
        page.set_viewport_size({"width": 1280, "height": 900})

        # back to every job
        batch.get_by_role("link", name="All jobs").click()
        expect(batch).to_be_hidden()
        expect(page.locator("#jobs tbody tr")).to_have_count(21, timeout=TIMEOUT)
        expect(page.locator("[data-count=all]")).to_have_text("21")
        assert errors == []


def test_batch_view_applies_batch_messages_from_the_live_link(browser, tmp_path):
    from playwright.sync_api import expect

    with running_service(str(tmp_path), "--shutdown-grace", "0.1") as (dashboard, target):
        lines = [f"{target}/page/m0", f"{target}/page/m1", f"{target}/slow?delay=60"]
        code, body = call(dashboard, "POST", "/batches", "\n".join(lines))
        assert code == 201, body
        batch = body["batch"]
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        sockets = []

        def follow(ws) -> None:
            ws.connect_to_server()  # every real frame still reaches the page
            sockets.append(ws)

        page.route_web_socket(re.compile(r"/jobqueue/api/v1\.0/events"), follow)
        page.goto(f"{dashboard}#/batch/{batch['id']}")
        expect(page.locator("#link")).to_have_attribute("data-state", "live", timeout=TIMEOUT)
        progress = page.get_by_role("progressbar", name="batch progress")
        expect(progress).to_have_attribute("aria-valuetext", "2 of 3 done, 0 failed", timeout=TIMEOUT)

        # what the server will send: grouped in a frame, for this batch and others; another batch's is ignored
        counts = {"queued": 0, "running": 0, "completed": 2, "failed": 0, "cancelled": 1}
        other = {**batch, "id": "0" * 26, "counts": {**counts, "failed": 3}}
        finished = {**batch, "counts": counts, "finished_at": "2030-01-01T00:00:00.000Z"}
        sockets[-1].send(json.dumps({"type": "batch", "messages": [
            {"type": "batch.progress", "batch": other}, {"type": "batch.finished", "batch": finished}]}))
        expect(progress).to_have_attribute("aria-valuetext", "3 of 3 done, 0 failed, 1 cancelled")
        expect(page.get_by_role("status").filter(has_text="Batch finished")).to_have_text(
            "Batch finished: 3 of 3 done, 0 failed, 1 cancelled.")
        expect(page.locator("[data-batch-count=cancelled]")).to_have_text("1")
        expect(page.get_by_role("button", name="Cancel batch")).to_be_hidden()

        # an unknown batch says so, and the way back works
        missing = "0" * 26
        page.goto(f"{dashboard}#/batch/{missing}")
        expect(page.locator("#batch-error")).to_contain_text(missing, timeout=TIMEOUT)
        expect(progress).to_be_hidden()
        expect(page.locator("#jobs tbody tr")).to_have_count(0)
        page.get_by_role("link", name="All jobs").click()
        expect(page.locator("#jobs tbody tr")).to_have_count(3, timeout=TIMEOUT)
        assert errors == []
