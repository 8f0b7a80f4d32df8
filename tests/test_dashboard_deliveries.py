"""The dashboard's webhook deliveries in chromium: failed first with their error, redelivered by keyboard,
listed in the job's view, and free of serious accessibility violations (axe-core)."""

from __future__ import annotations

import base64
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.browser import ROOT, call, have_chromium, running_service
from tests.test_dashboard_browser import TIMEOUT, browser  # noqa: F401 (the fixture)

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not have_chromium(), reason="needs Debian's chromium (apt-get install chromium)")]
SECRET = "whsec_" + base64.b64encode(b"dashboard test key, 32 bytes!!!!").decode()
AXE = os.path.join(ROOT, "tests", "vendor", "axe.min.js")


class _Hook(BaseHTTPRequestHandler):
    answers: list[int] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        status = self.answers.pop(0) if self.answers else 200
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def axe_serious(page, selector: str) -> list[dict]:
    """axe-core's serious and critical WCAG 2.2 A/AA violations inside `selector`."""
    page.add_script_tag(path=AXE)
    found = page.evaluate("""async (selector) => {
        const r = await axe.run(document.querySelector(selector), {runOnly: {type: "tag",
            values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]}});
        return r.violations.filter(v => v.impact === "serious" || v.impact === "critical")
            .map(v => ({id: v.id, nodes: v.nodes.map(n => n.target.join(" "))}));
    }""", selector)
    return found


def wait_delivery(dashboard: str, task_id: str, status: str) -> dict:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        _, body = call(dashboard, "GET", f"/webhook_deliveries?task_id={task_id}")
        if body["deliveries"] and body["deliveries"][0]["status"] == status:
            return body["deliveries"][0]
        time.sleep(0.05)  # polling a child process's API, bounded by the deadline above
    raise AssertionError(f"no {status} delivery for {task_id}")


def test_deliveries_view_redeliver_by_keyboard_and_job_view(browser, tmp_path):  # noqa: F811
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    _Hook.answers = [410]
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    hook = f"http://127.0.0.1:{receiver.server_address[1]}/hook"
    try:
        with running_service(str(tmp_path), "--webhook-secret", SECRET, "--webhook-retry-delays", "0.05") as (
                dashboard, target):
            code, body = call(dashboard, "POST", "/queue_tasks", {"url": f"{target}/utf8", "webhook": hook})
            assert code == 201, body
            task_id = body["task"]["id"]
            failed = wait_delivery(dashboard, task_id, "failed")
            context = browser.new_context(bypass_csp=True)  # so axe-core can be injected into the page
            page = context.new_page()
            page.set_default_timeout(TIMEOUT)
            page.goto(dashboard + "#/deliveries")
            row = page.locator(f'tr[data-delivery="{failed["id"]}"]')
            row.locator(".badge", has_text="failed").wait_for()
            assert "410" in row.inner_text() and "task.completed" in row.inner_text()
            assert page.locator("#jobs-card").is_hidden()
            assert axe_serious(page, "#deliveries") == []
            button = row.get_by_role("button", name="Redeliver")
            button.focus()
            page.keyboard.press("Enter")
            page.locator("#deliveries-status", has_text="again").wait_for()
            wait_delivery(dashboard, task_id, "delivered")
            row.locator(".badge", has_text="delivered").wait_for()
            page.goto(dashboard + f"#/job/{task_id}")
            section = page.get_by_role("region", name="webhook deliveries")
            section.locator(".badge", has_text="delivered").wait_for()
            assert axe_serious(page, "#detail") == []
            context.close()
    finally:
        receiver.shutdown()
        receiver.server_close()
