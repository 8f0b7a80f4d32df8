"""Firecrawl's scrape options read into a job spec (as a submission's JSON fields) and the document's shape.

The shape (formats, onlyMainContent, what to warn about) travels with the jobs as one tag, `firecrawl.doc:...`,
so a crawl's or a batch's status shapes its documents from what is stored, in any process, after a restart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from jobqueue.firecrawl.errors import Refused, flag, strings, whole
from jobqueue.firecrawl.html import Selector, read_selectors

FORMATS = {"markdown": "m", "html": "h", "rawHtml": "r", "links": "l", "screenshot": "s"}
FULL_SCREENSHOT = "S"
MAIN = "M"
KEEP_BASE64 = "k"
# what a request asked that jobqueue does not do, told in each document's `warning`
WARNINGS = {
    "f": "fastMode: jobqueue has one way to fetch a page; it was fetched as usual",
    "c": "storeInCache false: jobqueue keeps every result it fetches (its retention settings say how long)",
    "t": "skipTlsVerification: jobqueue always verifies TLS certificates",
    "p": "parsers: jobqueue does not parse PDFs; a PDF's document has no markdown",
    "a": "blockAds: a rendered page's ads are not blocked",
}
TAG = "firecrawl"
SHAPE_PREFIX = "firecrawl.doc:"
REFUSED_FORMATS = {
    "json": "LLM extraction (json) is not supported by jobqueue",
    "summary": "LLM summaries (summary) are not supported by jobqueue",
    "changeTracking": "changeTracking is not supported; jobqueue's recurring jobs (every) report url.changed",
    "branding": "branding is not supported by jobqueue", "images": "images is not supported by jobqueue",
    "attributes": "attributes is not supported by jobqueue", "query": "query (LLM) is not supported by jobqueue",
    "question": "question (LLM) is not supported by jobqueue", "highlights": "highlights (LLM) is not supported",
}
# present with one of these values (the SDK's defaults), a field is accepted as asking nothing jobqueue lacks
_NOTHING: tuple[object, ...] = (None, False, [], {}, "")
_REFUSED_FIELDS = {
    "actions": "actions are not supported by jobqueue (it renders a page, it does not click or type)",
    "location": "location is not supported by jobqueue (no geolocated proxies)",
    "minAge": "minAge is not supported; use maxAge",
    "useMock": "useMock is not supported by jobqueue",
    "jsonOptions": "LLM extraction (jsonOptions) is not supported by jobqueue",
    "changeTrackingOptions": "changeTracking is not supported by jobqueue",
    "zeroDataRetention": "zeroDataRetention is not supported: jobqueue keeps what it fetches",
    "redactPII": "redactPII is not supported by jobqueue",
    "threatProtection": "threatProtection is not supported by jobqueue",
    "profile": "profile (browser profiles) is not supported by jobqueue",
    "lockdown": "lockdown is not supported by jobqueue",
}
SCRAPE_FIELDS = frozenset({
    "formats", "headers", "includeTags", "excludeTags", "onlyMainContent", "timeout", "waitFor", "mobile", "maxAge",
    "parsers", "skipTlsVerification", "removeBase64Images", "fastMode", "blockAds", "storeInCache", "proxy",
    "origin", "integration", *_REFUSED_FIELDS})
MOBILE = {"width": 390, "height": 844}
MAX_TIMEOUT_MS = 300_000
DEFAULT_TIMEOUT_MS = 60_000


@dataclass
class Shape:
    """What a Firecrawl document holds, and what its request asked that jobqueue does not do."""

    formats: tuple[str, ...] = ("markdown",)
    full_screenshot: bool = False
    main_only: bool = True
    keep_base64: bool = False
    warned: str = ""  # keys of WARNINGS
    include: list[Selector] = field(default_factory=list)  # only a synchronous scrape narrows by tags
    exclude: list[Selector] = field(default_factory=list)

    @property
    def tag(self) -> str:
        """The shape as one job tag (without include/exclude, which only a scrape's answer applies)."""
        letters = "".join(FORMATS[f] for f in self.formats if not (f == "screenshot" and self.full_screenshot))
        letters += (FULL_SCREENSHOT if self.full_screenshot else "") + (MAIN if self.main_only else "")
        return SHAPE_PREFIX + letters + (KEEP_BASE64 if self.keep_base64 else "") + self.warned

    @classmethod
    def from_tags(cls, tags: tuple[str, ...] | list[str]) -> Shape:
        """The shape a job's tags carry (the default document when none does)."""
        letters = next((t[len(SHAPE_PREFIX):] for t in tags if t.startswith(SHAPE_PREFIX)), None)
        if letters is None:
            return cls()
        formats = tuple(name for name, letter in FORMATS.items() if letter in letters or
                        (name == "screenshot" and FULL_SCREENSHOT in letters))
        return cls(formats, FULL_SCREENSHOT in letters, MAIN in letters, KEEP_BASE64 in letters,
                   "".join(k for k in WARNINGS if k in letters))

    @property
    def warning(self) -> str | None:
        """The document's `warning`: what was asked and not done, or None."""
        said = [WARNINGS[k] for k in self.warned]
        return "; ".join(said) if said else None


@dataclass
class ScrapeRequest:
    """A Firecrawl scrape's options as jobqueue reads them: the job fields, the shape, the wait."""

    spec: dict[str, Any]
    shape: Shape
    timeout_ms: int


def _formats(raw: Any) -> tuple[tuple[str, ...], bool, dict[str, int] | None]:
    if raw is None:
        return ("markdown",), False, None
    if not isinstance(raw, list):
        raise Refused("formats: must be a list such as [\"markdown\", \"html\"]")
    names: list[str] = []
    full, viewport = False, None
    for item in raw:
        if isinstance(item, dict):
            kind = item.get("type")
            extra = sorted(set(item) - {"type", "fullPage", "viewport"})
            if kind == "screenshot" and not extra:
                full = bool(item.get("fullPage", False))
                viewport = item.get("viewport")
            elif kind == "screenshot":
                raise Refused(f"formats: screenshot's {extra[0]} is not supported by jobqueue")
            item = kind
        if item == "screenshot@fullPage":
            item, full = "screenshot", True
        if not isinstance(item, str):
            raise Refused("formats: each format is a name such as \"markdown\" or an object with a \"type\"")
        if item in REFUSED_FORMATS:
            raise Refused(f"formats: {REFUSED_FORMATS[item]}")
        if item not in FORMATS:
            raise Refused(f"formats: {item[:64]!r} is not supported; jobqueue answers {', '.join(FORMATS)}")
        names.append(item)
    return tuple(dict.fromkeys(names)), full, viewport


def read_scrape_options(raw: dict[str, Any], *, where: str = "", narrowing: bool = True) -> ScrapeRequest:
    """Read Firecrawl scrape options (top level of a scrape or batch, or a crawl's scrapeOptions) into job fields;
    Refused names the first field jobqueue does not do. `narrowing`: includeTags/excludeTags may be given."""
    at = f"{where}." if where else ""
    for name, why in _REFUSED_FIELDS.items():
        if raw.get(name) not in _NOTHING:
            raise Refused(f"{at}{name}: {why}")
    proxy = raw.get("proxy")
    if proxy not in (None, "basic"):
        raise Refused(f"{at}proxy: {str(proxy)[:32]!r} is not supported; jobqueue fetches directly (proxy \"basic\")")
    formats, full, viewport = _formats(raw.get("formats"))
    warned = ""
    if raw.get("fastMode") is True:
        warned += "f"
    if raw.get("storeInCache") is False:
        warned += "c"
    if raw.get("skipTlsVerification") is True:
        warned += "t"
    parsers = raw.get("parsers")
    if parsers not in _NOTHING:
        if not isinstance(parsers, list) or any(p not in ("pdf", {"type": "pdf"}) for p in parsers):
            raise Refused(f"{at}parsers: only \"pdf\" is accepted (and jobqueue does not parse PDFs)")
        warned += "p"
    include = read_selectors(strings(raw, "includeTags"), f"{at}includeTags")
    exclude = read_selectors(strings(raw, "excludeTags"), f"{at}excludeTags")
    if (include or exclude) and not narrowing:
        raise Refused(f"{at}{'includeTags' if include else 'excludeTags'}: only a single scrape (/v2/scrape) narrows "
                      "its page by tags in jobqueue")
    spec: dict[str, Any] = {}
    fetch: dict[str, Any] = {}
    headers = raw.get("headers")
    if headers not in _NOTHING:
        fetch["headers"] = headers  # checked by the job spec, which names fetch.headers
    timeout_ms = whole(raw, "timeout", 1000, MAX_TIMEOUT_MS, DEFAULT_TIMEOUT_MS)
    if raw.get("timeout") is not None:
        fetch["timeout"] = timeout_ms / 1000
    if fetch:
        spec["fetch"] = fetch
    max_age = whole(raw, "maxAge", 0, 10 * 365 * 24 * 3600 * 1000, 0)
    if max_age:
        spec["max_age"] = max_age / 1000
    wait_ms = whole(raw, "waitFor", 0, 30_000, 0)
    mobile = flag(raw, "mobile", False)
    render: dict[str, Any] = {}
    if wait_ms:
        render["wait_ms"] = wait_ms
    if mobile:
        render["viewport"] = dict(MOBILE)
    if viewport is not None:
        render["viewport"] = viewport
    if "screenshot" in formats:
        spec["capture"] = ["screenshot_full" if full else "screenshot"]
    if render or "screenshot" in formats:
        spec["render"] = render or True
        if flag(raw, "blockAds", True):
            warned += "a"
    flag(raw, "removeBase64Images", True)
    flag(raw, "onlyMainContent", True)
    views = [f for f in ("markdown", "links") if f in formats]
    spec["formats"] = [*views, "metadata"]  # computed when the job completes, kept for every later read
    shape = Shape(formats, full, flag(raw, "onlyMainContent", True), not flag(raw, "removeBase64Images", True),
                  warned, include, exclude)
    spec["tags"] = [TAG, shape.tag]
    return ScrapeRequest(spec, shape, timeout_ms)


def unknown_fields(raw: dict[str, Any], known: frozenset[str] | set[str], what: str) -> None:
    """Refuse the first field that is not Firecrawl's (or not one jobqueue reads) for this request."""
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise Refused(f"{unknown[0][:64]}: not a field of a Firecrawl {what} request that jobqueue supports")
