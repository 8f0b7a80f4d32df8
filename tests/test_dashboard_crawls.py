"""The Crawls views in a real browser against a real server and tests/crawl_site.py's link graph on 127.0.0.1:
a crawl started from the form runs to finished live, with its depth table; a refused field is named beside it;
a slow crawl is cancelled through the confirmation; everything works by keyboard alone, and both views pass
axe-core in light and dark mode at desktop and phone width."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from playwright.sync_api import expect

from tests.browser import call, have_chromium, patient_expect, running_service  # noqa: F401 (the fixture)
from tests.crawl_site import CrawlSite
from tests.test_dashboard_browser import TIMEOUT, browser  # noqa: F401 (the fixture)
from tests.test_dashboard_deliveries import axe_serious

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not have_chromium(), reason="needs Debian's chromium (apt-get install chromium)")]


class ThreadedSite:
    """A CrawlSite served by an event loop of its own in a thread, so a synchronous browser test can use it."""

    def __init__(self, slow: bool = False) -> None:
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.site: CrawlSite | None = None
        self.slow = slow
        self.thread = threading.Thread(target=self._run, name="crawl-site", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def make() -> None:
            self.site = CrawlSite(slow=self.slow)
            self.ready.set()

        self.loop.run_until_complete(make())
        self.loop.run_forever()

    def start(self) -> CrawlSite:
        self.thread.start()
        assert self.ready.wait(10), "the crawl site did not start"
        assert self.site is not None
        return self.site

    def stop(self) -> None:
        if self.site is not None:
            self.loop.call_soon_threadsafe(self.site.stop)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@contextmanager
def crawl_site(slow: bool = False) -> Iterator[CrawlSite]:
    """A crawl site on 127.0.0.1 for the length of a test (a slow one answers only / until it stops)."""
    runner = ThreadedSite(slow)
    site = runner.start()
    try:
        yield site
    finally:
        runner.stop()


def open_dashboard(browser, dashboard: str, address: str = "", scheme: str = "light",  # noqa: F811
                   width: int = 1280):
    context = browser.new_context(bypass_csp=True, color_scheme=scheme, viewport={"width": width, "height": 900})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(dashboard + address)
    expect(page.locator("#link")).to_have_attribute("data-state", "live", timeout=TIMEOUT)
    return context, page, errors


def test_start_a_crawl_from_the_form_and_watch_it_finish_live(browser, tmp_path):  # noqa: F811
    with crawl_site() as site, running_service(str(tmp_path)) as (dashboard, _target):
        context, page, errors = open_dashboard(browser, dashboard)
        frames: list[str] = []
        page.on("websocket", lambda ws: ws.on("framereceived", lambda data: frames.append(str(data))))
        page.reload()  # the listener sees the socket from its start
        expect(page.locator("#link")).to_have_attribute("data-state", "live")
        page.get_by_role("navigation", name="views").get_by_role("link", name="Crawls").click()
        expect(page).to_have_url(f"{dashboard}#/crawls")
        expect(page.locator("#crawls-list")).to_contain_text("No crawls yet")

        # a value the server refuses is named beside its field, and nothing starts
        page.fill("#crawl-url", site.url("/"))
        page.fill("#crawl-max-depth", "101")
        page.get_by_role("button", name="Start crawl").click()
        expect(page.locator("#crawl-max-depth-error")).to_contain_text("a whole number from 0 to 100")
        expect(page.locator("#crawl-max-depth")).to_have_attribute("aria-invalid", "true")
        expect(page.locator("#crawl-max-depth")).to_be_focused()
        assert call(dashboard, "GET", "/crawls")[1]["crawls"] == []
        page.fill("#crawl-url", "ftp://example.com/")
        page.fill("#crawl-max-depth", "2")
        expect(page.locator("#crawl-max-depth")).not_to_have_attribute("aria-invalid", "true")
        page.get_by_role("button", name="Start crawl").click()
        expect(page.locator("#crawl-url-error")).to_contain_text("'ftp' is not supported")
        expect(page.locator("#crawl-url")).to_be_focused()

        # a good one goes to its own view, and reaches finished by itself
        page.fill("#crawl-url", site.url("/"))
        page.fill("#crawl-max-pages", "50")
        page.get_by_role("button", name="Start crawl").click()
        expect(page).to_have_url(re.compile(r"#/crawl/[^/?]+$"))
        crawl_id = page.url.rsplit("/", 1)[1]
        expect(page.locator("#crawl-id")).to_have_text(crawl_id)
        expect(page.locator("#crawl-summary")).to_contain_text("finished", timeout=30_000)
        _, body = call(dashboard, "GET", f"/crawls/{crawl_id}")
        crawl = body["crawl"]
        assert crawl["status"] == "finished"
        pages = crawl["discovered"]
        expect(page.locator("#crawl-summary")).to_contain_text(f"{pages} of {pages} found done (at most 50)")
        expect(page.locator("#crawl-status")).to_contain_text("Crawl finished")  # it was seen changing, live
        assert any('"crawl.progress"' in f for f in frames) and any('"crawl.finished"' in f for f in frames)
        expect(page.locator("[data-crawl-count=completed]")).to_have_text(str(crawl["counts"]["completed"]))
        expect(page.locator("[data-skipped=robots]")).to_have_text("1")
        expect(page.locator("#crawl-progress")).to_have_class("done")
        # the depth table: every page counted at its depth (seeds, links of the seed, their links)
        _, listed = call(dashboard, "GET", f"/queue_tasks?crawl={crawl_id}&limit=500")
        by_depth: dict[int, int] = {}
        for task in listed["tasks"]:
            by_depth[task["depth"]] = by_depth.get(task["depth"], 0) + 1
        for depth, n in by_depth.items():
            expect(page.locator(f"table.depths tr[data-depth='{depth}'] td.num")).to_have_text(str(n))
        expect(page.locator("#crawl-depths-note")).to_have_text(f"All {pages} pages.")
        expect(page.locator("#crawl-cancel")).to_be_hidden()

        # the crawl's pages in the jobs list, filtered by it
        page.get_by_role("link", name="The crawl's pages in the jobs list").click()
        expect(page).to_have_url(f"{dashboard}#/jobs?crawl={crawl_id}")
        expect(page.locator("#search-text")).to_have_value(f"crawl:{crawl_id}")
        expect(page.locator("#jobs tbody tr")).to_have_count(min(pages, 50))
        seed = page.locator("#jobs tbody tr", has=page.locator(f'td.url[title="{site.url("/")}"]'))
        expect(seed.locator(".tag.crawl")).to_have_text("crawl depth 0")  # a crawl's page is marked as one

        # Back comes to the crawl; the list shows it, finished
        page.go_back()
        expect(page.locator("#crawl-id")).to_have_text(crawl_id)
        page.get_by_role("link", name="← All crawls").click()
        row = page.locator(f"#crawls-table tr[data-crawl='{crawl_id}']")
        expect(row.locator(".badge")).to_have_text("finished")
        expect(row).to_contain_text(site.url("/"))
        expect(row).to_contain_text(f"{pages} / {pages} (max 50)")
        expect(row.locator("progress")).to_have_attribute("aria-label", re.compile(f"{pages} of {pages} found done"))
        page.reload()
        expect(row.locator(".badge")).to_have_text("finished")
        assert errors == []
        context.close()


def test_cancel_a_slow_crawl_by_keyboard_through_the_confirmation(browser, tmp_path):  # noqa: F811
    with crawl_site(slow=True) as site, running_service(str(tmp_path)) as (dashboard, _target):
        code, body = call(dashboard, "POST", "/crawls", {"url": site.url("/"), "sitemap": "skip"})
        assert code == 201, body
        crawl_id = body["crawl"]["id"]
        context, page, errors = open_dashboard(browser, dashboard, "#/crawls")
        link = page.get_by_role("link", name=crawl_id)
        expect(link).to_be_visible()
        link.focus()
        page.keyboard.press("Enter")
        expect(page).to_have_url(f"{dashboard}#/crawl/{crawl_id}")
        expect(page.locator("#crawl-title")).to_be_focused()
        expect(page.locator("[data-crawl-count=running]")).not_to_have_text("0")  # the site holds its pages
        expect(page.locator("#crawl-summary .badge")).to_have_text("running")

        # by keyboard: Tab from the title reaches the jobs link, then the Cancel button; Escape keeps the crawl
        cancel = page.get_by_role("button", name="Cancel crawl")
        page.keyboard.press("Tab")
        expect(page.get_by_role("link", name="← All crawls")).to_be_focused()
        page.keyboard.press("Tab")
        expect(page.locator("#crawl-jobs")).to_be_focused()
        page.keyboard.press("Tab")
        expect(cancel).to_be_focused()
        assert cancel.evaluate("b => getComputedStyle(b).backgroundColor") == page.evaluate(
            "() => { const s = document.createElement('span'); s.style.color = 'var(--bad)'; document.body.append(s);"
            " const c = getComputedStyle(s).color; s.remove(); return c; }")  # red: it destroys work
        page.keyboard.press("Space")
        dialog = page.locator("#confirm")
        expect(dialog).to_be_visible()
        expect(dialog).to_contain_text("Cancel this crawl?")
        expect(page.locator("#confirm-no")).to_have_text("Keep crawling")
        page.keyboard.press("Escape")
        expect(dialog).to_be_hidden()
        assert call(dashboard, "GET", f"/crawls/{crawl_id}")[1]["crawl"]["status"] == "running"

        cancel.focus()
        page.keyboard.press("Enter")
        expect(dialog).to_be_visible()
        page.locator("#confirm-yes").focus()
        page.keyboard.press("Enter")
        expect(page.locator("#crawl-summary .badge")).to_have_text("cancelled")
        expect(page.locator("#crawl-status")).to_contain_text("Crawl cancelled")
        expect(cancel).to_be_hidden()
        expect(page.locator("#crawl-title")).to_be_focused()
        expect(page.locator("[data-crawl-count=queued]")).to_have_text("0")
        crawl = call(dashboard, "GET", f"/crawls/{crawl_id}")[1]["crawl"]
        assert crawl["status"] == "cancelled" and crawl["counts"]["queued"] == 0
        assert errors == []
        context.close()


def test_the_start_form_by_keyboard_alone(browser, tmp_path):  # noqa: F811
    with crawl_site() as site, running_service(str(tmp_path)) as (dashboard, _target):
        context, page, errors = open_dashboard(browser, dashboard)
        nav = page.get_by_role("navigation", name="views")
        nav.get_by_role("link", name="Crawls").focus()
        page.keyboard.press("Enter")
        expect(page.locator("#crawls-title")).to_be_focused()
        order = []
        for _ in range(6):
            page.keyboard.press("Tab")
            order.append(page.evaluate("() => document.activeElement.id || document.activeElement.textContent"))
        assert order == ["crawl-url", "crawl-max-pages", "crawl-max-depth", "crawl-scope", "Start crawl",
                         order[5]], order
        page.locator("#crawl-url").focus()
        page.keyboard.type(site.url("/a"))
        page.keyboard.press("Tab")
        page.keyboard.press("Control+A")
        page.keyboard.type("3")
        page.keyboard.press("Tab")
        page.keyboard.press("Control+A")
        page.keyboard.type("0")
        page.keyboard.press("Tab")
        page.keyboard.press("ArrowDown")  # the scope: the whole domain
        expect(page.locator("#crawl-scope")).to_have_value("domain")
        page.keyboard.press("Tab")
        expect(page.get_by_role("button", name="Start crawl")).to_be_focused()
        page.keyboard.press("Enter")
        expect(page).to_have_url(re.compile(r"#/crawl/[^/?]+$"))
        expect(page.locator("#crawl-summary")).to_contain_text("finished", timeout=30_000)
        crawl_id = page.url.rsplit("/", 1)[1]
        crawl = call(dashboard, "GET", f"/crawls/{crawl_id}")[1]["crawl"]
        assert (crawl["max_pages"], crawl["max_depth"], crawl["scope"]) == (3, 0, "domain")
        expect(page.locator("table.depths tr[data-depth='0'] td.num")).to_have_text("1")  # the one seed
        assert errors == []
        context.close()


@pytest.mark.parametrize(("scheme", "width"), [("light", 1280), ("dark", 1280), ("light", 390), ("dark", 390)])
def test_both_crawl_views_pass_axe(browser, tmp_path, scheme, width):  # noqa: F811
    with crawl_site() as site, running_service(str(tmp_path)) as (dashboard, _target):
        code, body = call(dashboard, "POST", "/crawls", {"url": site.url("/"), "max_pages": 20, "tags": ["docs"]})
        assert code == 201, body
        crawl_id = body["crawl"]["id"]
        context, page, errors = open_dashboard(browser, dashboard, f"#/crawl/{crawl_id}", scheme, width)
        expect(page.locator("#crawl-summary")).to_contain_text("finished", timeout=30_000)
        expect(page.locator("table.depths tbody tr")).not_to_have_count(0)
        assert axe_serious(page, "body") == []
        assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
        page.goto(f"{dashboard}#/crawls")
        expect(page.locator(f"#crawls-table tr[data-crawl='{crawl_id}']")).to_be_visible()
        page.get_by_role("button", name="Start crawl").click()  # an empty URL: its error shown
        expect(page.locator("#crawl-url-error")).to_be_visible()
        assert axe_serious(page, "body") == []
        assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
        assert errors == []
        context.close()
