"""Two figures of the dashboard checked in chromium while jobs flow through a real server: jobs waiting for a host
slot are queued, not running (the status chips and the Hosts view show at most the host's one slot running, as
GET /hosts does), and the p95 fetch time never exceeds the jobs' timeout while an instant 404 that waited for its
host's slot reads milliseconds, not the wait."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser import call, have_chromium, jobs_flowing, patient_expect, running_service  # noqa: F401
from tests.test_dashboard_browser import TIMEOUT, browser  # noqa: F401 (the fixture)
from tests.test_dashboard_crawls import open_dashboard

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not have_chromium(), reason="needs Debian's chromium (apt-get install chromium)")]
HOST = "127.0.0.1"  # the host held to one slot
AT_LEAST_3 = re.compile(r"^([3-9]|[1-9][\d,]+)$")

# Records every value the running chip and the Hosts view's running cell of HOST show, as the page changes them.
WATCH = """() => {
  const seen = window.seenRunning = { chip: [], cell: [] };
  const keep = (list, node) => {
    if (node && list[list.length - 1] !== node.textContent) list.push(node.textContent);
  };
  const record = () => {
    keep(seen.chip, document.querySelector("[data-count=running]"));
    keep(seen.cell, document.querySelector("#hosts-table tbody tr[data-host='127.0.0.1'] [data-cell=running]"));
  };
  record();
  new MutationObserver(record).observe(document.body, { subtree: true, childList: true, characterData: true });
}"""


def host(dashboard: str) -> dict[str, Any]:
    code, body = call(dashboard, "GET", f"/hosts/{HOST}")
    assert code == 200, body
    return body["host"]


def until(what: str, probe: Any, seconds: float = 30) -> Any:
    """Poll the server's API until `probe` answers something true (bounded by a deadline)."""
    deadline = time.monotonic() + seconds
    while not (found := probe()):
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.05)  # polling a child process's API, bounded by the deadline
    return found


def shown_ms(text: str) -> float:
    """A fetch time as the stats panel writes it ("850 ms", "2 s", "1.5 s"), in milliseconds."""
    number, unit = re.fullmatch(r"([\d.,]+) (ms|s)", text).groups()
    return float(number.replace(",", "")) * (1000 if unit == "s" else 1)


def test_jobs_waiting_for_a_host_slot_are_queued_not_running(browser, tmp_path):  # noqa: F811
    """One slow job holds the host's only slot while more jobs for the host keep arriving: they wait, queued. The
    chips, the Hosts view and GET /hosts say 1 running and the rest queued, exactly, and never more running."""
    with running_service(str(tmp_path), "--max-attempts", "1") as (dashboard, target):
        code, body = call(dashboard, "PUT", f"/hosts/{HOST}", {"max_concurrency": 1})
        assert code == 200 and body["host"]["effective"]["max_concurrency"] == 1
        code, holder = call(dashboard, "POST", "/queue_tasks", {"url": f"{target}/slow?delay=120"})
        assert code == 201
        until("the slow job to take the slot", lambda: host(dashboard)["running"] == 1)
        context, page, errors = open_dashboard(browser, dashboard, "#/jobs")
        page.evaluate(WATCH)
        chips = page.get_by_role("navigation", name=re.compile("filter by status"))
        by_api: list[dict[str, Any]] = []
        with jobs_flowing(dashboard, lambda n: {"urls": [f"{target}/page/w{n}x{i}" for i in range(2)]},
                          every=0.1, rounds=15) as flowing:
            expect(chips.locator("[data-count=queued]")).to_have_text(AT_LEAST_3)
            expect(chips.locator("[data-count=running]")).to_have_text("1")
            by_api.append(host(dashboard))
            page.get_by_role("navigation", name="views").get_by_role("link", name="Hosts").click()
            expect(page.locator(f"#hosts-table tbody tr[data-host='{HOST}'] [data-cell=queued]")).to_have_text(
                AT_LEAST_3)
            by_api.append(host(dashboard))
            until("every job to be submitted", lambda: len(flowing) == 30)
        waiting = until("30 jobs waiting", lambda: (h := host(dashboard))["queued"] == 30 and h)
        assert waiting["running"] == 1
        row = page.locator(f"#hosts-table tbody tr[data-host='{HOST}']")
        expect(row.locator("[data-cell=queued]")).to_have_text("30")
        expect(row.locator("[data-cell=running]")).to_have_text("1")
        counts = call(dashboard, "GET", "/queue_tasks?limit=1")[1]["counts"]
        assert counts["queued"] == 30 and counts["running"] == 1, counts
        page.get_by_role("navigation", name="views").get_by_role("link", name="Jobs", exact=True).click()
        expect(chips.locator("[data-count=queued]")).to_have_text("30")
        expect(chips.locator("[data-count=running]")).to_have_text("1")
        expect(page.locator(f'#jobs tbody tr[data-id="{flowing[-1]["id"]}"] .badge')).to_have_text("queued")
        expect(page.locator(f'#jobs tbody tr[data-id="{holder["task"]["id"]}"] .badge')).to_have_text("running")
        seen = page.evaluate("() => window.seenRunning")
        assert set(seen["chip"]) <= {"0", "1"} and set(seen["cell"]) == {"1"}, seen
        assert [h["running"] for h in by_api] == [1, 1], by_api
        assert errors == []
        context.close()


def test_the_p95_fetch_time_stays_within_the_timeout_and_an_instant_404_reads_milliseconds(browser, tmp_path):  # noqa: F811
    with running_service(str(tmp_path), "--max-attempts", "1") as (dashboard, target):
        call(dashboard, "PUT", f"/hosts/{HOST}", {"max_concurrency": 1})
        slow_urls = [f"{target}/slow?delay=30&i={i}" for i in range(3)]
        code, slow = call(dashboard, "POST", "/queue_tasks", {"urls": slow_urls, "fetch": {"timeout": 2}})
        assert code == 201
        code, missing = call(dashboard, "POST", "/queue_tasks", {"url": f"{target}/status/404"})  # waits ~6 s
        assert code == 201
        context, page, errors = open_dashboard(browser, dashboard, "#/jobs")
        port = target.rsplit(":", 1)[1]
        with jobs_flowing(dashboard, lambda n: {"url": f"http://localhost:{port}/page/f{n}"}, every=0.2, rounds=40):
            row = page.locator(f'#jobs tbody tr[data-id="{missing["task"]["id"]}"]')
            expect(row.locator(".badge")).to_have_text("completed", timeout=30_000)
            expect(row.locator("td").nth(4)).to_have_text(re.compile(r"^\d+ ms$"))  # the fetch, not the wait
            for task in slow["tasks"]:
                timed_out = page.locator(f'#jobs tbody tr[data-id="{task["id"]}"]')
                expect(timed_out.locator(".badge")).to_have_text("failed")
            # the statistics sent once every attempt above is in them (the 3 timeouts, the 404)
            summary = page.locator("#stats-summary")
            expect(summary).to_contain_text("(3 failed, 1 HTTP 4xx/5xx)", timeout=20_000)
        p95 = re.search(r"p95 ([\d.,]+ m?s)", summary.text_content()).group(1)
        assert 1000 <= shown_ms(p95) <= 2000, summary.text_content()  # the timeouts' 2 s, not a bucket's bound
        worst = re.search(r"at most ([\d.,]+ m?s)", page.locator("#stats-latency-text").text_content()).group(1)
        assert shown_ms(worst) <= 2000, page.locator("#stats-latency-text").text_content()
        for cell in page.locator("#stats-hosts td:nth-child(4)").all_text_contents():
            assert cell == "—" or shown_ms(cell) <= 2000, cell
        assert errors == []
        context.close()
