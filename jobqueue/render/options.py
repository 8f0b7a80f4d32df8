"""What a render is asked for (`render`, `capture` of a job spec), what it gives back, and how it fails."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from jobqueue.errors import BadRequest, Code, FetchError

WAIT_UNTIL = ("load", "domcontentloaded", "networkidle")
BLOCKABLE = ("image", "media", "font", "stylesheet")
CAPTURES = ("screenshot", "screenshot_full", "pdf")
MAX_WAIT_MS = 30_000
MAX_SELECTOR = 1024
_RENDER_FIELDS = ("wait_until", "wait_for", "wait_ms", "viewport", "block")


@dataclass(frozen=True)
class RenderOptions:
    """One job's `render` and `capture`, checked."""

    wait_until: str = "load"
    wait_for: str | None = None
    wait_ms: int = 0
    width: int = 1280
    height: int = 800
    block: tuple[str, ...] = ()
    capture: tuple[str, ...] = ()

    def to_stored(self) -> dict[str, Any]:
        """The spec's `render` object as stored (defaults left out), without `capture`."""
        stored: dict[str, Any] = {}
        if self.wait_until != "load":
            stored["wait_until"] = self.wait_until
        if self.wait_for is not None:
            stored["wait_for"] = self.wait_for
        if self.wait_ms:
            stored["wait_ms"] = self.wait_ms
        if (self.width, self.height) != (1280, 800):
            stored["viewport"] = {"width": self.width, "height": self.height}
        if self.block:
            stored["block"] = list(self.block)
        return stored


def parse_render(render: Any, capture: Any = None, where: str = "") -> RenderOptions | None:
    """Check a spec's `render` and `capture` (None: not rendered); a 400 names the field at fault."""
    prefix = f"{where}." if where else ""
    if capture is not None and (not isinstance(capture, list) or any(c not in CAPTURES for c in capture)
                                or len(set(capture)) != len(capture)):
        raise BadRequest(Code.INVALID_FIELD, f"{prefix}capture: must be a list of distinct values among "
                                          f"{', '.join(CAPTURES)}")
    if render is None or render is False:
        if capture:
            raise BadRequest(Code.INVALID_FIELD, f"{prefix}capture: needs \"render\"")
        return None
    if render is True:
        render = {}
    if not isinstance(render, dict):
        raise BadRequest(Code.INVALID_FIELD, f"{prefix}render: must be true, false or a JSON object")
    unknown = sorted(set(render) - set(_RENDER_FIELDS))
    if unknown:
        raise BadRequest(Code.UNKNOWN_FIELD, f"{prefix}render.{unknown[0]}: not a render option; the options are "
                                          f"{', '.join(_RENDER_FIELDS)}")
    wait_until = render.get("wait_until", "load")
    if wait_until not in WAIT_UNTIL:
        raise BadRequest(Code.INVALID_FIELD, f"{prefix}render.wait_until: must be one of {', '.join(WAIT_UNTIL)}")
    wait_for = render.get("wait_for")
    if wait_for is not None and (not isinstance(wait_for, str) or not wait_for.strip()
                                 or len(wait_for) > MAX_SELECTOR):
        raise BadRequest(Code.INVALID_FIELD, f"{prefix}render.wait_for: must be a CSS selector of 1-{MAX_SELECTOR} "
                                          "characters")
    wait_ms = render.get("wait_ms", 0)
    if not _whole(wait_ms) or not 0 <= wait_ms <= MAX_WAIT_MS:
        raise BadRequest(Code.INVALID_FIELD, f"{prefix}render.wait_ms: must be a whole number from 0 to {MAX_WAIT_MS}")
    viewport = render.get("viewport", {"width": 1280, "height": 800})
    if (not isinstance(viewport, dict) or set(viewport) != {"width", "height"}
            or not _whole(viewport["width"]) or not 320 <= viewport["width"] <= 3840
            or not _whole(viewport["height"]) or not 240 <= viewport["height"] <= 2160):
        raise BadRequest(Code.INVALID_FIELD, f'{prefix}render.viewport: must be {{"width": 320-3840, '
                                          f'"height": 240-2160}}')
    block = render.get("block", [])
    if not isinstance(block, list) or any(b not in BLOCKABLE for b in block):
        raise BadRequest(Code.INVALID_FIELD, f"{prefix}render.block: must be a list of values among "
                                          f"{', '.join(BLOCKABLE)}")
    return RenderOptions(wait_until, wait_for, wait_ms, viewport["width"], viewport["height"],
                         tuple(dict.fromkeys(block)), tuple(capture or ()))


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass
class RenderTimings:
    """Seconds spent: waiting for a page slot, navigating, in the waits, capturing, and in all."""

    queued: float = 0.0
    navigation: float = 0.0
    waits: float = 0.0
    capture: float = 0.0
    total: float = 0.0

    def to_json(self) -> dict[str, float]:
        """Milliseconds, as the result shows them."""
        return {name: round(value * 1000, 1) for name, value in vars(self).items()}


@dataclass
class RenderResult:
    """A finished render: the DOM after the waits, the main document's response, and the captures."""

    body: bytes  # the serialized DOM, UTF-8
    http_status: int
    final_url: str
    headers: list[tuple[str, str]]
    blocked_requests: int
    timings: RenderTimings
    screenshot: bytes | None = None  # PNG: the viewport, or the whole page for screenshot_full
    pdf: bytes | None = None
    blocked_urls: list[str] = field(default_factory=list)
    content_type: str = "text/html; charset=utf-8"


class BrowserDied(FetchError):
    """The browser (or the page's renderer) crashed or stopped answering during the render: retried like a
    connection error, in a fresh browser."""

    def __init__(self, message: str) -> None:
        super().__init__(Code.CONNECTION_ERROR, message)
        self.browser_died = True

    @property
    def retryable(self) -> bool:
        """Always worth another attempt: the next one gets a new browser."""
        return True


class RenderingUnavailable(BadRequest):
    """A spec asks for `render` but this server runs no browser."""

    def __init__(self) -> None:
        super().__init__(Code.RENDERING_UNAVAILABLE,
                         "render: this server runs no browser; install Chromium (apt-get install chromium) "
                         "or give --chromium=PATH, with --render-browsers=1 or more")
