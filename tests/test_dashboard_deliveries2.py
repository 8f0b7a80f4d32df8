"""The webhook deliveries view in chromium, with jobs and their deliveries flowing: every column visible at
1440 px, "next try" apart from "delivered at", jobs as links, the payload and the receiver's answer viewable,
and rows that change by themselves (no Refresh button). axe-core: nothing serious, light, dark and 390 px."""

from __future__ import annotations

import base64
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from playwright.sync_api import expect

from tests.browser import call, have_chromium, jobs_flowing, patient_expect, running_service  # noqa: F401
from tests.test_dashboard_browser import TIMEOUT, browser  # noqa: F401 (the fixture)
from tests.test_dashboard_deliveries import axe_serious, wait_delivery

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not have_chromium(), reason="needs Debian's chromium (apt-get install chromium)")]
SECRET = "whsec_" + base64.b64encode(b"dashboard test key, 32 bytes!!!!").decode()


class _Hook(BaseHTTPRequestHandler):
    """The first request to /first is answered 500 "busy right now", every other one 200."""

    answered: set[str] = set()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        first = self.path == "/first" and self.path not in self.answered
        self.answered.add(self.path)
        body = b"busy right now" if first else b"ok"
        self.send_response(500 if first else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_deliveries_fit_show_their_payload_and_change_live(browser, tmp_path):  # noqa: F811
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    hook = f"http://127.0.0.1:{receiver.server_address[1]}"
    try:
        with running_service(str(tmp_path), "--webhook-secret", SECRET, "--webhook-retry-delays", "4") as (
                dashboard, target):
            code, body = call(dashboard, "POST", "/queue_tasks", {"url": f"{target}/page/hooked",
                                                                  "webhook": f"{hook}/first"})
            assert code == 201, body
            task_id = body["task"]["id"]
            first = wait_delivery(dashboard, task_id, "pending")
            context = browser.new_context(bypass_csp=True, viewport={"width": 1440, "height": 900})
            page = context.new_page()
            page.set_default_timeout(TIMEOUT)
            flow = lambda n: {"url": f"{target}/page/flow{n}", "webhook": f"{hook}/other"}  # noqa: E731
            with jobs_flowing(dashboard, flow, every=0.2):
                page.goto(dashboard + "#/deliveries")
                row = page.locator(f'tr[data-delivery="{first["id"]}"]')
                expect(row.locator(".badge")).to_have_text("pending")
                expect(page.get_by_role("button", name="Refresh")).to_have_count(0)
                # every column visible at 1440 px, nothing scrolled sideways
                heads = page.locator("table.deliveries thead th")
                expect(heads).to_have_text(["Status", "Event", "Endpoint", "Job", "Tries", "Last answer",
                                            "Next try", "Delivered at", "Actions"])
                assert page.evaluate("""() => {
                    const table = document.querySelector("table.deliveries");
                    const wrap = table.closest(".table-wrap");
                    return table.scrollWidth <= wrap.clientWidth && [...table.tHead.rows[0].cells]
                        .every((th) => th.getBoundingClientRect().right <= window.innerWidth);
                }""")
                # waiting for its next try: the receiver's answer, the next try's time, no delivery time
                cells = row.locator("td")
                expect(cells.nth(5)).to_contain_text("HTTP 500")
                expect(cells.nth(5)).to_contain_text("busy right now")
                expect(cells.nth(6).locator("time")).to_have_count(1)
                expect(cells.nth(7)).to_have_text("—")
                # the payload as sent, and the answer
                details = row.get_by_role("button", name=re.compile("^Details"))
                details.focus()
                page.keyboard.press("Enter")
                expect(details).to_have_attribute("aria-expanded", "true")
                payload = page.locator(f'tr[data-details="{first["id"]}"] pre.payload')
                expect(payload).to_contain_text('"type": "task.completed"')
                expect(payload).to_contain_text(task_id)
                assert json.loads(payload.inner_text())["type"] == "task.completed"  # the JSON sent, laid out
                assert axe_serious(page, "#deliveries") == []
                # it turns delivered by itself: the delivery time comes, the next try goes
                expect(row.locator(".badge")).to_have_text("delivered", timeout=20_000)
                expect(row.locator("td").nth(7).locator("time")).to_have_count(1)
                expect(row.locator("td").nth(6)).to_have_text("—")
                expect(row.locator("td").nth(5)).to_contain_text("HTTP 200")
                # the job is a link to its view
                link = row.get_by_role("link", name=f"job {task_id}")
                link.click()
                expect(page).to_have_url(f"{dashboard}#/job/{task_id}")
                expect(page.locator("#detail")).to_be_visible()
            context.close()
            for options in ({"color_scheme": "dark"}, {"viewport": {"width": 390, "height": 844}, "is_mobile": True}):
                context = browser.new_context(bypass_csp=True, **options)
                page = context.new_page()
                page.set_default_timeout(TIMEOUT)
                page.goto(dashboard + "#/deliveries")
                row = page.locator(f'tr[data-delivery="{first["id"]}"]')
                row.get_by_role("button", name=re.compile("^Details")).click()
                expect(page.locator(f'tr[data-details="{first["id"]}"] pre.payload')).to_contain_text(task_id)
                assert axe_serious(page, "#deliveries") == []
                context.close()
    finally:
        receiver.shutdown()
        receiver.server_close()
