"""One render: a fresh browser context behind its own proxy port, the page loaded and waited for, the DOM
serialized, the captures taken, and the context closed whatever happened."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from jobqueue.errors import FetchError
from jobqueue.render.options import BrowserDied, RenderOptions, RenderResult, RenderTimings
from jobqueue.render.proxy import ProxySession

if TYPE_CHECKING:
    from playwright.async_api import Browser, BrowserContext, Page, Request, Response, Route

CLOSE_TIMEOUT = 5.0  # a context that takes longer to close means the browser stopped answering
_NET_ERROR = re.compile(r"net::(ERR_[A-Z_]+)")
_NET_CODES = {
    "ERR_NAME_NOT_RESOLVED": "dns_error",
    "ERR_NAME_RESOLUTION_FAILED": "dns_error",
    "ERR_TIMED_OUT": "timeout",
    "ERR_CONNECTION_TIMED_OUT": "timeout",
    "ERR_TOO_MANY_REDIRECTS": "too_many_redirects",
    "ERR_INVALID_REDIRECT": "protocol_error",
    "ERR_INVALID_HTTP_RESPONSE": "protocol_error",
    "ERR_UNSAFE_PORT": "invalid_url",
    "ERR_UNSAFE_REDIRECT": "blocked",
    "ERR_ABORTED": "protocol_error",  # a download, or a navigation that the page itself cancelled
}


class PageRender:
    """The state of one render while it runs: main-document navigations and whether the page crashed."""

    def __init__(self, session: ProxySession, options: RenderOptions) -> None:
        self.session = session
        self.options = options
        self.crashed = False
        self.crash = asyncio.Event()
        self.main_request_url: str | None = None  # the latest main-frame document request
        self.main_response: Response | None = None
        self.page: Page | None = None

    def on_request(self, request: Request) -> None:
        """Follow the main frame's document requests (redirect hops, meta refresh, JS navigation)."""
        if self.page is not None and request.is_navigation_request() and request.frame == self.page.main_frame:
            self.main_request_url = request.url

    def on_response(self, response: Response) -> None:
        """Keep the latest main-frame document response."""
        request = response.request
        if self.page is not None and request.is_navigation_request() and request.frame == self.page.main_frame:
            self.main_response = response

    def on_crash(self, _page: Any) -> None:
        """The page's renderer process died."""
        self.crashed = True
        self.crash.set()

    def check_main_document(self, url: str) -> None:
        """Fail `blocked` if the guard refused the document now in the main frame (or one on its way)."""
        for candidate in (self.main_request_url, url):
            if candidate and (refusal := self.session.refused(candidate)) is not None:
                raise FetchError("blocked", f"refused to connect to {refusal.address or refusal.key}: not a public "
                                            "address (see --allow-private-addresses and --allow-network)")


async def render_page(browser: Browser, session: ProxySession, url: str, options: RenderOptions,
                      headers: Mapping[str, str], user_agent: str | None, cookies: Iterable[Mapping[str, Any]],
                      deadline: float, on_stuck: Callable[[], None]) -> RenderResult:
    """Render `url` in a new context of `browser` before `deadline` (loop time); raise FetchError on failure.

    `on_stuck` is called when the browser could not close the context in time: it is to be replaced."""
    started = time.monotonic()
    timings = RenderTimings()
    state = PageRender(session, options)
    context: BrowserContext | None = None
    try:
        async with asyncio.timeout_at(deadline):
            context = await browser.new_context(
                proxy={"server": session.server}, viewport={"width": options.width, "height": options.height},
                user_agent=user_agent, extra_http_headers=dict(headers) or None, accept_downloads=False,
                service_workers="allow")
            if cookies:
                await context.add_cookies(list(cookies))  # type: ignore[arg-type]
            if options.block:
                blocked = frozenset(options.block)

                async def route(route: Route) -> None:
                    if route.request.resource_type in blocked:
                        await route.abort("blockedbyclient")
                    else:
                        await route.continue_()

                await context.route("**/*", route)
            page = await context.new_page()
            state.page = page
            page.on("request", state.on_request)
            page.on("response", state.on_response)
            page.on("crash", state.on_crash)
            result = await _load_and_take(page, state, url, deadline, timings)
    except TimeoutError:
        if state.crashed or not browser.is_connected():
            raise BrowserDied("the browser died during the render") from None
        raise FetchError("timeout", "the render took longer than its timeout") from None
    except FetchError:
        raise
    except Exception as exc:
        if _died(exc, state, browser):
            raise BrowserDied(f"the browser died during the render: {_first_line(exc)}") from None
        raise
    finally:
        if context is not None:
            if not await _close_context(context, browser):
                on_stuck()
    timings.total = time.monotonic() - started
    return result


async def _load_and_take(page: Page, state: PageRender, url: str, deadline: float,
                         timings: RenderTimings) -> RenderResult:
    options = state.options
    loop = asyncio.get_running_loop()
    began = time.monotonic()
    try:
        response = await page.goto(url, wait_until=options.wait_until,  # type: ignore[arg-type]
                                   timeout=max(1, (deadline - loop.time()) * 1000))
    except Exception as exc:
        if _is_timeout(exc):
            raise TimeoutError from None
        if _died(exc, state, page.context.browser):
            raise
        state.check_main_document(url)
        if "net::ERR_ABORTED" in str(exc) and await _crashes(state):
            raise BrowserDied(f"the page's renderer died: {_first_line(exc)}") from None
        failed = state.main_request_url or url
        code = state.session.failure(failed)
        if code is None:
            match = _NET_ERROR.search(str(exc))
            code = _NET_CODES.get(match.group(1), "connection_error") if match else "connection_error"
        raise FetchError(code, f"the page did not load: {_first_line(exc)}") from None
    timings.navigation = time.monotonic() - began
    state.check_main_document(page.url)
    began = time.monotonic()
    if options.wait_for:
        try:
            await page.wait_for_selector(options.wait_for, state="attached",
                                         timeout=max(1, (deadline - loop.time()) * 1000))
        except Exception as exc:
            if _is_timeout(exc):
                raise TimeoutError from None
            raise
    if options.wait_ms:
        crashed = asyncio.ensure_future(state.crash.wait())
        try:
            await asyncio.wait([crashed], timeout=options.wait_ms / 1000)
        finally:
            crashed.cancel()
        if state.crashed:
            raise BrowserDied("the page's renderer died during the render")
    timings.waits = time.monotonic() - began
    body = (await page.content()).encode("utf-8", "surrogatepass")
    state.check_main_document(page.url)
    main = state.main_response or response
    if main is None:
        raise FetchError("protocol_error", "the page has no main document response")
    status, final_url = main.status, page.url
    if state.session.failure(main.url):
        raise FetchError(state.session.failure(main.url) or "connection_error", "the page's server did not answer")
    headers = [(h["name"], h["value"]) for h in await main.headers_array()]
    began = time.monotonic()
    screenshot = pdf = None
    if "screenshot_full" in options.capture:
        screenshot = await page.screenshot(full_page=True, type="png")
    elif "screenshot" in options.capture:
        screenshot = await page.screenshot(type="png")
    if "pdf" in options.capture:
        pdf = await page.pdf(print_background=True)
    timings.capture = time.monotonic() - began
    return RenderResult(body=body, http_status=status, final_url=final_url, headers=headers,
                        blocked_requests=state.session.blocked_requests, timings=timings, screenshot=screenshot,
                        pdf=pdf, blocked_urls=[r.key for r in state.session.refusals])


async def _close_context(context: BrowserContext, browser: Browser) -> bool:
    """Close the context (the page with it); False if the browser could not do that in time."""
    if not browser.is_connected():
        return True
    try:
        await asyncio.wait_for(context.close(), CLOSE_TIMEOUT)
    except TimeoutError:
        return False
    except Exception:
        pass  # the browser died meanwhile: the pool hears of it through `disconnected`
    return True


async def _crashes(state: PageRender, within: float = 2.0) -> bool:
    """Whether the page's renderer turns out to have died: a navigation aborted by a renderer's death
    looks like any aborted navigation, and the crash event comes later."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(state.crash.wait(), within)
    return state.crashed


def _is_timeout(exc: BaseException) -> bool:
    return type(exc).__name__ == "TimeoutError"


def _died(exc: BaseException, state: PageRender, browser: Browser | None) -> bool:
    """Whether an error means the browser or the page's renderer is gone (not the page's own fault)."""
    if state.crashed or browser is None or not browser.is_connected():
        return True
    text = str(exc)
    return (type(exc).__name__ == "TargetClosedError" or "Target crashed" in text or "Page crashed" in text
            or "has been closed" in text)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
