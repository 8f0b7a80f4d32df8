"""The dashboard at phone width (390 px) in chromium, with jobs flowing over the real websocket: tables are
stacked cards with every column inside the screen, no button is clipped, a job's URL shows its host and the end
of its path, and nothing needs a sideways scroll. axe-core: nothing serious, light and dark."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser import call, have_chromium, jobs_flowing, patient_expect, running_service  # noqa: F401
from tests.test_dashboard_browser import TIMEOUT, browser  # noqa: F401 (the fixture)
from tests.test_dashboard_deliveries import axe_serious
from tests.test_dashboard_numbers import finished

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not have_chromium(), reason="needs Debian's chromium (apt-get install chromium)")]
WIDTH = 390

# Every cell, button and link of the view shown that is cut by the screen's edge or by its own box.
OUTSIDE = """(width) => {
    const bad = [];
    for (const node of document.querySelectorAll("main td, main tbody th, main button, main a, main input")) {
        const r = node.getBoundingClientRect();
        if (!r.width || !node.checkVisibility()) continue;
        if (r.left < -0.5 || r.right > width + 0.5) bad.push(`${node.tagName} ${node.textContent.trim().slice(0, 40)} `
            + `at ${Math.round(r.left)}..${Math.round(r.right)}`);
        if (node.tagName === "BUTTON" && node.scrollWidth > node.clientWidth + 1) {
            bad.push(`clipped button ${node.textContent}`);
        }
        let box = node.parentElement;  // a wrapper that scrolls or clips sideways hides part of it
        while (box && box !== document.body) {
            const b = box.getBoundingClientRect();
            const style = getComputedStyle(box);
            if (style.overflowX !== "visible" && (r.right > b.right + 0.5 || r.left < b.left - 0.5)) {
                bad.push(`${node.tagName} ${node.id || node.className} ${node.textContent.trim().slice(0, 40)} `
                    + `cut by ${box.tagName}#${box.id}.${box.className}`);
                break;
            }
            box = box.parentElement;
        }
    }
    if (document.documentElement.scrollWidth > width) bad.push(`page ${document.documentElement.scrollWidth} px wide`);
    return bad;
}"""


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_every_view_fits_a_phone(browser, tmp_path, scheme):  # noqa: F811
    with running_service(str(tmp_path), "--max-attempts", "1") as (dashboard, target):
        long_path = f"{target}/page/a_rather_long_name_for_a_page?with=query&and=more"
        call(dashboard, "POST", "/queue_tasks", {"urls": [long_path, f"{target}/status/404",
                                                          "http://127.0.0.1:9/refused"], "tags": ["phone"]})
        finished(dashboard, "/queue_tasks?tag=phone", 3)
        context = browser.new_context(bypass_csp=True, color_scheme=scheme, is_mobile=True,
                                      viewport={"width": WIDTH, "height": 844})
        page = context.new_page()
        page.set_default_timeout(TIMEOUT)
        with jobs_flowing(dashboard, lambda n: {"url": f"{target}/slow?delay=0.3&n={n}", "tags": ["flow"]}):
            page.goto(dashboard)
            expect(page.locator("#link")).to_have_attribute("data-state", "live")
            for address, ready in (("#/", "#jobs tbody tr"), ("#/jobs?status=failed", "#jobs tbody tr"),
                                   ("#/jobs?tag=phone", "#jobs tbody tr"), ("#/hosts", "#hosts-table tbody tr"),
                                   ("#/batches", "#batches"), ("#/crawls", "#crawls"), ("#/deliveries", "#deliveries")):
                page.goto(dashboard + address)
                expect(page.locator(ready).first).to_be_visible()
                page.wait_for_timeout(300)  # rows keep arriving meanwhile (not synchronisation)
                assert page.evaluate(OUTSIDE, WIDTH) == [], address
                assert axe_serious(page, "body") == [], address
            # a job's URL: its host and the end of its path, whole, not "127.0.0.1:880…"
            page.goto(dashboard + "#/jobs?tag=phone")
            link = page.locator("#jobs tbody tr", has_text="and=more").get_by_role("link").first
            host = target.removeprefix("http://")
            expect(link).to_have_text(re.compile(rf"^{re.escape(host)}/….*and=more$"))
            # a job's card names each of its figures
            row = page.locator("#jobs tbody tr").first
            expect(row.locator("td").nth(3)).to_have_attribute("data-label", "Tries")
            shown = row.locator("td").nth(3).evaluate("(td) => getComputedStyle(td, '::before').content")
            assert shown == '"Tries"'
        context.close()
