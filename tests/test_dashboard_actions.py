"""Acting on jobs in chromium, with jobs flowing over the real websocket: a selection of rows acts on exactly
the jobs checked, "every matching job" on the view's filter; cancel and retry can be undone for 10 s and the
page says where they cannot; Retry looks like a normal action and only cancel and delete are red; a
read-only token sees a read-only page while jobs flow, with the rows and counts still live. axe-core finds
nothing serious in light, dark and at 390 px."""

from __future__ import annotations

import re
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import expect

from tests.browser import call, have_chromium, jobs_flowing, patient_expect, running_service  # noqa: F401
from tests.test_dashboard_browser import TIMEOUT, browser  # noqa: F401 (the fixture)
from tests.test_dashboard_deliveries import axe_serious

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not have_chromium(), reason="needs Debian's chromium (apt-get install chromium)")]
FULL = "actions-test-full-token-0123456789"
READER = "actions-test-read-token-0123456789"


def status_of(dashboard: str, ids: list[str]) -> dict[str, str]:
    return {i: call(dashboard, "GET", f"/queue_tasks/{i}")[1]["task"]["status"] for i in ids}


def settled(dashboard: str, ids: list[str], want: str) -> None:
    deadline = time.monotonic() + 20
    while set(status_of(dashboard, ids).values()) != {want}:
        assert time.monotonic() < deadline, f"the jobs never became {want}: {status_of(dashboard, ids)}"
        time.sleep(0.05)  # polling a child process's API, bounded by the deadline


def test_a_selection_acts_on_exactly_the_rows_checked_and_can_be_undone(browser, tmp_path):  # noqa: F811
    with running_service(str(tmp_path), "--max-attempts", "1") as (dashboard, target):
        _, bad = call(dashboard, "POST", "/queue_tasks", {"urls": [f"http://127.0.0.1:9/s{i}" for i in range(4)],
                                                          "tags": ["sel"]})
        later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
        _, waiting = call(dashboard, "POST", "/queue_tasks", {"urls": [f"{target}/page/w{i}" for i in range(3)],
                                                              "tags": ["sel"], "not_before": later})
        failed = [t["id"] for t in bad["tasks"]]
        queued = [t["id"] for t in waiting["tasks"]]
        settled(dashboard, failed, "failed")
        context = browser.new_context(bypass_csp=True, viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.set_default_timeout(TIMEOUT)
        page.goto(f"{dashboard}#/jobs?tag=sel")
        expect(page.locator("#link")).to_have_attribute("data-state", "live")
        rows = page.locator("#jobs tbody tr")
        bulk = page.locator("#bulk")
        dialog = page.locator("#confirm")
        said = page.locator("#bulk-status")
        undo = page.locator("#undo")
        expect(rows).to_have_count(7)
        row = lambda task_id: page.locator(f'#jobs tbody tr[data-id="{task_id}"]')  # noqa: E731

        # Retry is a normal action; cancel and delete are red, on the rows and in the bulk actions
        expect(bulk.get_by_role("button", name="Retry failed…")).not_to_have_class(re.compile("danger"))
        expect(bulk.get_by_role("button", name="Cancel queued…")).to_have_class(re.compile("danger"))
        expect(bulk.get_by_role("button", name="Delete finished…")).to_have_class(re.compile("danger"))
        expect(row(failed[0]).get_by_role("button", name=re.compile("^Retry"))).not_to_have_class(re.compile("danger"))
        expect(row(queued[0]).get_by_role("button", name=re.compile("^Cancel"))).to_have_class(re.compile("danger"))

        with jobs_flowing(dashboard, lambda n: {"url": f"{target}/page/f{n}", "tags": ["flow"]}):
            # two failed rows checked, by mouse and by keyboard (Space): the actions say so
            row(failed[0]).get_by_role("checkbox").check()
            row(failed[1]).get_by_role("checkbox").focus()
            page.keyboard.press("Space")
            expect(row(failed[1]).get_by_role("checkbox")).to_be_checked()
            retry = bulk.get_by_role("button", name="Retry selected (2)…")
            expect(retry).to_be_visible()
            expect(retry).not_to_have_class(re.compile("danger"))
            retry.focus()
            page.keyboard.press("Enter")
            expect(page.locator("#confirm-text")).to_have_text("Retry 2 selected jobs?")
            expect(page.locator("#confirm-note")).to_have_text("You can undo it for 10 seconds.")
            expect(page.locator("#confirm-yes")).not_to_have_class(re.compile("danger"))  # retry is not red
            assert axe_serious(page, "#confirm") == []
            before = {i: call(dashboard, "GET", f"/queue_tasks/{i}")[1]["task"]["updated_at"] for i in failed}
            dialog.get_by_role("button", name="Retry them").click()
            expect(said).to_have_text("Retry: 2 of 2 selected jobs changed. Undo for 10 seconds.")
            after = {i: call(dashboard, "GET", f"/queue_tasks/{i}")[1]["task"]["updated_at"] for i in failed}
            assert [i for i in failed if after[i] != before[i]] == failed[:2]  # those two, and no other
            expect(page.locator("#jobs tbody input.pick:checked")).to_have_count(0)  # the selection is spent
            assert axe_serious(page, "#jobs-card") == []

            # cancel two queued rows and a failed one: only the two unfinished are cancelled; Undo queues them again
            settled(dashboard, failed, "failed")
            for task_id in [*queued[:2], failed[2]]:
                row(task_id).get_by_role("checkbox").check()
            bulk.get_by_role("button", name="Cancel selected (3)…").click()
            expect(page.locator("#confirm-text")).to_have_text(
                "Cancel 2 selected jobs (1 of the selected is not unfinished: left as it is)?")
            expect(page.locator("#confirm-yes")).to_have_class(re.compile("danger"))
            dialog.get_by_role("button", name="Cancel them").click()
            expect(said).to_have_text("Cancel: 2 of 2 selected jobs changed. Undo for 10 seconds.")
            assert status_of(dashboard, queued[:2]) == {i: "cancelled" for i in queued[:2]}
            assert status_of(dashboard, [failed[2]]) == {failed[2]: "failed"}
            expect(undo).to_have_text("Undo: queue 2 jobs again")
            undo.focus()
            page.keyboard.press("Enter")
            expect(said).to_have_text("Undone: 2 jobs queued again.")
            expect(undo).to_be_hidden()
            # queued again (now, not tomorrow: a retry runs at once), so they left "cancelled" behind
            assert "cancelled" not in status_of(dashboard, queued[:2]).values()

            # a row's own Cancel can be undone too, and the offer ends after 10 s
            row(queued[2]).get_by_role("button", name=re.compile("^Cancel")).click()
            expect(undo).to_have_text("Undo: queue 1 job again")
            expect(row(queued[2]).locator(".badge")).to_have_text("cancelled")
            expect(undo).to_be_hidden(timeout=15_000)
            expect(said).to_contain_text("(too late to undo)")

            # "every matching job": the filter actions, whose confirmation says they cannot be undone
            row(failed[3]).get_by_role("checkbox").check()
            bulk.get_by_role("button", name="Select every matching job").click()
            expect(bulk).to_contain_text("Every job matching this view is selected.")
            expect(page.locator("#jobs tbody input.pick:not(:checked)")).to_have_count(0)
            bulk.get_by_role("button", name="Retry failed…").click()
            expect(page.locator("#confirm-text")).to_have_text('Retry 4 failed jobs matching "tag:sel"?')
            expect(page.locator("#confirm-note")).to_contain_text("cannot be undone")
            page.keyboard.press("Escape")
            expect(dialog).to_be_hidden()
            bulk.get_by_role("button", name="Clear selection").click()
            expect(bulk.get_by_role("button", name="Retry failed…")).to_be_visible()
            expect(page.locator("#jobs tbody input.pick:checked")).to_have_count(0)
        context.close()

        # the same view passes axe in dark mode and at phone width, with a selection made
        for options in ({"color_scheme": "dark"}, {"viewport": {"width": 390, "height": 844}, "is_mobile": True}):
            context = browser.new_context(bypass_csp=True, **options)
            page = context.new_page()
            page.set_default_timeout(TIMEOUT)
            page.goto(f"{dashboard}#/jobs?tag=sel")
            expect(page.locator("#jobs tbody tr")).to_have_count(7)
            page.locator(f'#jobs tbody tr[data-id="{failed[0]}"]').get_by_role("checkbox").check()
            expect(page.locator("#bulk").get_by_role("button", name="Retry selected (1)…")).to_be_visible()
            assert axe_serious(page, "body") == []
            assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
            context.close()


@contextmanager
def calls_with_token(token: str) -> Iterator[None]:
    """While inside, this process's API calls (tests.browser.call, jobs_flowing's thread) send `token`."""
    opener = urllib.request.build_opener()
    opener.addheaders = [("Authorization", f"Bearer {token}")]
    urllib.request.install_opener(opener)
    try:
        yield
    finally:
        urllib.request.install_opener(None)


def submitted_since(flowing: list[dict], n: int) -> dict:
    """The first job jobs_flowing submitted after its first `n` (bounded wait: it submits every 0.2 s)."""
    deadline = time.monotonic() + 20
    while len(flowing) <= n:
        assert time.monotonic() < deadline, "no job was submitted while the page was open"
        time.sleep(0.05)  # waiting for the submitting thread, bounded by the deadline
    return flowing[n]


def test_a_read_only_session_looks_read_only_while_jobs_flow(browser, tmp_path):  # noqa: F811
    """Jobs are submitted (with the full token) and finish while a read-only session looks on: no form, no
    action on any row (the new ones too), "read-only" in the header, and the rows and counts still go live."""
    with (running_service(str(tmp_path), "--api-token", FULL, "--read-only-token", READER) as (dashboard, target),
          calls_with_token(FULL),
          jobs_flowing(dashboard, lambda n: {"url": f"{target}/page/ro{n}", "tags": ["ro"]}, every=0.2) as flowing):
        submitted_since(flowing, 2)
        context = browser.new_context(bypass_csp=True)
        page = context.new_page()
        page.set_default_timeout(TIMEOUT)
        page.goto(dashboard)
        page.locator("#token").fill(READER)
        page.locator("#token").press("Enter")
        expect(page.locator("#link")).to_have_attribute("data-state", "live")
        expect(page.locator("header")).to_contain_text("read-only")
        expect(page.locator("#read-only")).to_be_visible()
        expect(page.get_by_role("heading", name="Fetch URLs")).to_be_hidden()
        expect(page.locator("#urls")).to_be_hidden()
        expect(page.locator("#bulk button")).to_have_count(0)
        expect(page.locator("#jobs thead input[type=checkbox]")).to_be_hidden()
        all_count = page.get_by_role("navigation", name=re.compile("filter by status")).locator("[data-count=all]")
        expect(all_count).to_have_text(re.compile(r"\d"))
        shown = all_count.text_content()
        # live updates still arrive: a job submitted now shows up and finishes in the list, without actions
        newest = submitted_since(flowing, len(flowing))
        row = page.locator(f'#jobs tbody tr[data-id="{newest["id"]}"]')
        expect(row.locator(".badge")).to_have_text("completed")
        expect(all_count).not_to_have_text(shown)  # the counts went on too
        expect(page.locator("#jobs tbody tr").first).to_be_visible()
        expect(page.locator("#jobs tbody button")).to_have_count(0)
        expect(page.locator("#jobs tbody input[type=checkbox]:visible")).to_have_count(0)
        expect(page.locator("#bulk button")).to_have_count(0)
        expect(page.locator("#submit-card")).to_be_hidden()
        assert axe_serious(page, "body") == []
        context.close()
