"""A site's sitemaps, found and read within bounds: the URLs they list, for crawl seeds and POST /map.

    read = await sitemap_urls(url, fetcher=sitemap_fetcher(settings, policy), robots=robots, limit=5000,
                              deadline=time.monotonic() + 50, keep=lambda u: True)
    read.urls        # http(s) URLs, normalized as crawl links are (extract/links.normalize_link), each once, in order
    read.sitemaps    # the sitemaps read (a 2xx body parsed, even in part), in the order they were fetched
    read.errors      # one sentence per sitemap that failed, was cut, or was left unread, "URL: why"
    read.full        # True when `limit` URLs were found (the rest was not read)

Where the sitemaps come from: the `Sitemap:` lines of the origin's robots.txt (through `Robots`, so its 24 h
shared copy; none without `robots`), then `<origin>/sitemap.xml` unless already listed; or exactly the URLs given
as `sitemaps`. A missing implicit /sitemap.xml (404, 410) is no error: it was a guess. Sitemap indexes are
followed breadth first, MAX_INDEX_DEPTH levels deep; each sitemap is fetched once, MAX_SITEMAPS at most.

What is read: XML `<urlset>` (the `<loc>` of each `<url>`; image and video locs are not pages) and
`<sitemapindex>` (the `<loc>` of each `<sitemap>`), either gzipped (by its magic bytes, whatever the name or the
Content-Type says), and plain-text sitemaps (one URL per line). Parsing is lxml's with no network, no DTD and
no entity expansion (an external entity stays unread), element by element in a thread, so a big sitemap never
holds the IOLoop. Every fetch goes through the guarded fetcher `sitemap_fetcher` makes (the service's address
policy at every hop, at most 5 redirects, bodies cut at MAX_SITEMAP_BYTES); a gzip body is inflated up to
MAX_SITEMAP_BYTES too, so a gzip bomb is cut there. A cut or malformed sitemap keeps the URLs before the cut.

Bounds: `limit` URLs kept (those `keep` accepts), MAX_SITEMAPS fetches, MAX_SITEMAP_BYTES per body before and
after inflating, each fetch at most MAX_FETCH_SECONDS, and nothing started after `deadline` (time.monotonic()).
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import re
import time
import zlib
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from lxml import etree

from jobqueue.addresses import AddressPolicy
from jobqueue.errors import FetchError
from jobqueue.extract.links import normalize_link
from jobqueue.fetcher import Fetcher, FetchResponse, FetchSettings
from jobqueue.robots import Robots, robots_origin
from jobqueue.spec import DEFAULT_FETCH, FetchOptions
from jobqueue.urls import MAX_URL_LENGTH

__all__ = ["MAX_FETCH_SECONDS", "MAX_INDEX_DEPTH", "MAX_SITEMAPS", "MAX_SITEMAP_BYTES", "PageFetcher", "SitemapRead",
           "sitemap_fetcher", "sitemap_urls"]

MAX_SITEMAPS = 50  # sitemap fetches per call, indexes and the implicit /sitemap.xml included
MAX_SITEMAP_BYTES = 50 * 1024 * 1024  # the sitemaps protocol's own limit, applied fetched and inflated
MAX_INDEX_DEPTH = 3  # an index's sitemaps are followed while it is fewer than this many indexes deep
MAX_SITEMAP_REDIRECTS = 5
MAX_FETCH_SECONDS = 30.0
_LEAD = re.compile(rb"(?:\xef\xbb\xbf)?\s*")  # a UTF-8 BOM and blank space before the first character
_LINE = re.compile(rb"[^\r\n]+")
_URL_LINE = re.compile(rb"\s*https?://", re.IGNORECASE)
_GZIP_MAGIC = b"\x1f\x8b"


class PageFetcher(Protocol):
    """What reading sitemaps needs of a fetcher (jobqueue.fetcher.Fetcher is one)."""

    async def fetch(self, url: str, options: FetchOptions = DEFAULT_FETCH) -> FetchResponse:
        """Fetch `url` through the address guard; FetchError on failure."""
        ...


@dataclass
class SitemapRead:
    """What reading a site's sitemaps found (see the module's docstring)."""

    urls: list[str] = field(default_factory=list)
    sitemaps: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    full: bool = False


@dataclass
class _Parsed:
    """One sitemap body read: the sitemaps an index lists, and why it was not read whole (None: it was)."""

    kind: str  # "urlset", "sitemapindex", "text", or "" when it is not a sitemap
    children: list[str]
    error: str | None = None
    dropped: int = 0  # the sitemaps an index lists beyond what may still be fetched


def sitemap_fetcher(settings: FetchSettings, policy: AddressPolicy) -> Fetcher:
    """A fetcher for sitemaps with the workers' guard and timeouts: 5 redirects, bodies cut at 50 MiB (the caller
    closes it)."""
    return Fetcher(dataclasses.replace(settings, max_redirects=MAX_SITEMAP_REDIRECTS, max_body_size=MAX_SITEMAP_BYTES,
                                       cut_long_bodies=True, max_clients=4), policy)


class _Sink:
    """The URLs kept so far, shared by every sitemap of one call (one parse at a time touches it)."""

    def __init__(self, limit: int, keep: Callable[[str], bool] | None) -> None:
        self.limit = limit
        self.keep = keep
        self.urls: list[str] = []
        self.seen: set[str] = set()

    @property
    def full(self) -> bool:
        return len(self.urls) >= self.limit

    def add(self, raw: str, base: str) -> bool:
        """Keep one listed URL if it is a new http(s) URL the caller wants; whether the limit is reached."""
        url = normalize_link(raw.strip(), base) if raw else None
        if url is not None and len(url) <= MAX_URL_LENGTH and url not in self.seen:
            self.seen.add(url)
            if self.keep is None or self.keep(url):
                self.urls.append(url)
        return self.full


def _gunzip(data: bytes, cap: int) -> tuple[bytes, str | None]:
    """Inflate gzip data (several members too) up to `cap` bytes; what came out and why it stopped early."""
    out = bytearray()
    rest = data
    try:
        while rest[:2] == _GZIP_MAGIC:
            inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
            chunk = rest
            while chunk and not inflater.eof:
                out += inflater.decompress(chunk, cap - len(out) + 1)
                if len(out) > cap:
                    del out[cap:]
                    return bytes(out), f"inflates to more than {cap} bytes: cut there"
                chunk = inflater.unconsumed_tail
            if not inflater.eof:
                return bytes(out), "the gzip data ends early"
            rest = inflater.unused_data
    except zlib.error as exc:
        return bytes(out), f"not valid gzip data ({exc})"
    return bytes(out), None


def _local(tag: object) -> str | None:
    """An element's name without its namespace; None for what is not an element (an entity reference)."""
    return tag.rpartition("}")[2] if isinstance(tag, str) else None


def _read_xml(data: bytes, base: str, sink: _Sink, max_children: int) -> _Parsed:
    parsed = _Parsed("", [])
    parser = etree.iterparse(io.BytesIO(data), events=("start", "end"), resolve_entities=False, no_network=True,
                             load_dtd=False, huge_tree=False, remove_comments=True, remove_pis=True)
    try:
        for event, element in parser:
            name = _local(element.tag)
            if event == "start":
                if not parsed.kind:
                    if name not in ("urlset", "sitemapindex"):
                        return _Parsed("", [], f"not a sitemap (its root element is <{name}>)")
                    parsed.kind = name
                continue
            if name == "loc":
                parent = _local(element.getparent().tag) if element.getparent() is not None else None
                text = (element.text or "").strip()
                if parsed.kind == "urlset" and parent == "url":
                    if sink.add(text, base):
                        break
                elif parsed.kind == "sitemapindex" and parent == "sitemap":
                    child = normalize_link(text, base) if text else None
                    if child is None:
                        pass
                    elif len(parsed.children) < max_children:
                        parsed.children.append(child)
                    else:
                        parsed.dropped += 1
            elif name in ("url", "sitemap"):  # done with it: free it and the ones before
                element.clear(keep_tail=False)
                parent_element = element.getparent()
                if parent_element is not None:
                    while element.getprevious() is not None:
                        del parent_element[0]
    except etree.XMLSyntaxError as exc:
        parsed.error = f"not well-formed XML ({exc.msg}); the URLs before the error are kept"
    return parsed


def _read_text(data: bytes, start: int, base: str, sink: _Sink) -> _Parsed:
    for match in _LINE.finditer(data, start):
        line = match.group()
        if _URL_LINE.match(line) and sink.add(line.decode("utf-8", "replace"), base):
            break
    return _Parsed("text", [])


def _parse_sitemap(body: bytes, url: str, sink: _Sink, max_children: int = MAX_SITEMAPS) -> _Parsed:
    """Read one fetched sitemap (XML, gzipped or not, or text) into `sink`; the sitemaps an index lists. Runs in
    a thread: it may take a second on a 50 MiB body."""
    inflate_error = None
    if body[:2] == _GZIP_MAGIC:
        body, inflate_error = _gunzip(body, MAX_SITEMAP_BYTES)
    lead = _LEAD.match(body)
    start = lead.end() if lead else 0
    is_xml = body[start:start + 1] == b"<"
    parsed = _read_xml(body, url, sink, max_children) if is_xml else _read_text(body, start, url, sink)
    if inflate_error is not None:  # the cut explains a syntax error at the end
        parsed.error = inflate_error + "; the URLs before the cut are kept"
    return parsed


async def _sources(site: str, robots: Robots | None, errors: list[str]) -> list[tuple[str, bool]]:
    """The sitemaps to start from: robots.txt's Sitemap lines, then /sitemap.xml (implicit: True)."""
    origin = robots_origin(site)
    found: list[tuple[str, bool]] = []
    if robots is not None:
        try:
            facts = await robots.facts(site)
        except Exception as exc:  # the store or a bug: the implicit sitemap is still worth reading
            errors.append(f"{origin}/robots.txt: could not be read ({type(exc).__name__}: {exc})")
        else:
            for line in facts.sitemaps:
                url = normalize_link(line.strip(), f"{origin}/robots.txt")
                if url is not None:
                    found.append((url, False))
    implicit = f"{origin}/sitemap.xml"
    if all(url != implicit for url, _ in found):
        found.append((implicit, True))
    return found


async def sitemap_urls(site: str, *, fetcher: PageFetcher, robots: Robots | None, limit: int, deadline: float,
                       keep: Callable[[str], bool] | None = None, sitemaps: Sequence[str] | None = None,
                       max_sitemaps: int = MAX_SITEMAPS) -> SitemapRead:
    """The URLs a site's sitemaps list (see the module's docstring): `site` is any http(s) URL of the site,
    `deadline` a time.monotonic() instant, `keep` chooses the URLs that count toward `limit` (the site's own,
    a crawl's scope), `sitemaps` replaces discovery with these sitemap URLs. Never raises for what a site serves."""
    read = SitemapRead()
    sink = _Sink(limit, keep)
    if sitemaps is None:
        start = await _sources(site, robots, read.errors)
    else:
        start = [(url, False) for url in (normalize_link(raw, site) for raw in sitemaps) if url is not None]
    queue: deque[tuple[str, int, bool]] = deque((url, 0, implicit) for url, implicit in start)
    queued = {url for url, _depth, _implicit in queue}
    fetches = 0
    while queue and not sink.full:
        url, depth, implicit = queue.popleft()
        left = deadline - time.monotonic()
        if fetches >= max_sitemaps or left < 0.5:
            why = f"more than {max_sitemaps} sitemaps" if fetches >= max_sitemaps else "out of time"
            read.errors.extend(f"{unread}: not read ({why})" for unread in [url, *(q[0] for q in queue)])
            break
        fetches += 1
        try:
            response = await fetcher.fetch(url, FetchOptions(timeout=min(left, MAX_FETCH_SECONDS)))
        except FetchError as exc:
            read.errors.append(f"{url}: {exc.code} ({exc.message})")
            continue
        status = response.http_status
        if not 200 <= status < 300:
            if not (implicit and status in (404, 410)):
                read.errors.append(f"{url}: HTTP {status}")
            continue
        room = max(0, max_sitemaps - fetches - len(queue))
        parsed = await asyncio.to_thread(_parse_sitemap, response.body, response.final_url, sink, room)
        read.sitemaps.append(url)
        if response.truncated:
            read.errors.append(f"{url}: cut at {MAX_SITEMAP_BYTES} bytes; the URLs before the cut are kept")
        elif parsed.error is not None:
            read.errors.append(f"{url}: {parsed.error}")
        if parsed.dropped:
            read.errors.append(f"{url}: {parsed.dropped} of its sitemaps are not read (at most {max_sitemaps} "
                               "sitemaps)")
        if parsed.children and depth + 1 >= MAX_INDEX_DEPTH:
            read.errors.append(f"{url}: an index {depth + 1} levels deep; its sitemaps are not read")
            continue
        for child in parsed.children:
            if child not in queued:
                queued.add(child)
                queue.append((child, depth + 1, False))
    read.urls, read.full = sink.urls, sink.full
    return read
