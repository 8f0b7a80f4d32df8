"""A site's URLs without crawling it (POST /map): its sitemaps' URLs, then the links of one page.

Which URLs: the site's own, as Firecrawl's map keeps them: the given URL's host and, when that host has a
registrable domain (the public suffix list, through `tld`), that domain and every subdomain of it
(`docs.example.co.uk` maps `example.co.uk`, `www.example.co.uk`, `blog.example.co.uk`); either scheme. A host
with no registrable domain (an IP address, `localhost`) keeps that host only.

In what order: the sitemaps' URLs first, in the order the sitemaps list them (robots.txt's sitemaps, then
/sitemap.xml, indexes breadth first), then the page's links not already listed, in page order; each URL once,
normalized as crawl links are, at most `limit`. `sitemap`: "include" both, "only" the sitemaps (the page is not
fetched), "skip" the page alone (no sitemap is fetched). The page is fetched once, while the sitemaps are read;
its links count only when it answers 2xx with HTML. What could not be read is said in `warnings`, never as a
failure: a map of what was found is still an answer.

robots.txt is read for its Sitemap lines only: a map lists URLs, it fetches none of them but the page.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from tld import get_fld

from jobqueue.charset import parse_content_type
from jobqueue.errors import FetchError
from jobqueue.extract.core import decode, parse
from jobqueue.extract.links import base_url, link_urls
from jobqueue.fetcher import FetchResponse
from jobqueue.robots import Robots
from jobqueue.sitemaps import MAX_FETCH_SECONDS, PageFetcher, sitemap_urls
from jobqueue.spec import FetchOptions
from jobqueue.urls import MAX_URL_LENGTH

__all__ = ["DEFAULT_MAP_LIMIT", "MAP_SECONDS", "MAX_MAP_LIMIT", "SITEMAP_MODES", "SiteMap", "map_site",
           "page_links", "registrable_domain", "same_site"]

MAX_MAP_LIMIT = 100_000
DEFAULT_MAP_LIMIT = 5_000
SITEMAP_MODES = ("include", "only", "skip")
MAP_SECONDS = 50.0  # work stops starting after this; the answer comes within the contract's 60 s
_HTML_TYPES = (None, "text/html", "application/xhtml+xml")


@dataclass
class SiteMap:
    """A map's answer: the URLs found, and one sentence per thing that could not be read."""

    links: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def registrable_domain(host: str) -> str | None:
    """The domain a host was registered under (`www.example.co.uk` -> `example.co.uk`); None for an IP address or
    a name under no public suffix."""
    return get_fld(host.rstrip(".").lower(), fix_protocol=True, fail_silently=True) or None


def _host(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").rstrip(".")
    except ValueError:
        return ""


def same_site(url: str) -> Callable[[str], bool]:
    """The test a URL passes when it belongs to `url`'s site: the same host, or its registrable domain's."""
    host = _host(url)
    domain = registrable_domain(host) if host and not host.startswith("[") else None
    suffix = f".{domain}" if domain else None

    def keep(candidate: str) -> bool:
        other = _host(candidate)
        return other == host or (suffix is not None and (other == domain or other.endswith(suffix)))

    return keep


def page_links(response: FetchResponse) -> list[str]:
    """The links of a fetched HTML page as crawls take them (runs in a thread: a big page takes a while)."""
    media_type, charset = parse_content_type(response.headers.get("content-type"))
    if media_type not in _HTML_TYPES:
        return []
    tree = parse(decode(response.body, charset, media_type))
    if tree is None:
        return []
    return link_urls(tree, base_url(tree, response.final_url))


async def _page(url: str, fetcher: PageFetcher, deadline: float, warnings: list[str]) -> list[str]:
    """The page's links, or none (and a warning) when it cannot be fetched or is not a 2xx."""
    try:
        response = await fetcher.fetch(url, FetchOptions(timeout=max(1.0, min(deadline - time.monotonic(),
                                                                             MAX_FETCH_SECONDS))))
    except FetchError as exc:
        warnings.append(f"{url}: {exc.code} ({exc.message})")
        return []
    if not 200 <= response.http_status < 300:
        warnings.append(f"{url}: HTTP {response.http_status}; its links are not taken")
        return []
    return await asyncio.to_thread(page_links, response)


async def map_site(url: str, *, page_fetcher: PageFetcher, sitemap_fetcher: PageFetcher, robots: Robots | None,
                   limit: int = DEFAULT_MAP_LIMIT, sitemap: str = "include", seconds: float = MAP_SECONDS) -> SiteMap:
    """The site's URLs from its sitemaps and `url`'s links (see the module's docstring); `url` is already checked
    (jobqueue.urls.normalize_url)."""
    deadline = time.monotonic() + seconds
    keep = same_site(url)
    result = SiteMap()
    page_warnings: list[str] = []
    page = (asyncio.ensure_future(_page(url, page_fetcher, deadline, page_warnings)) if sitemap != "only" else None)
    try:
        if sitemap != "skip":
            read = await sitemap_urls(url, fetcher=sitemap_fetcher, robots=robots, limit=limit, deadline=deadline,
                                      keep=keep)
            result.links, result.warnings = read.urls, read.errors
        links = await page if page is not None else []
    finally:
        if page is not None and not page.done():
            page.cancel()
    result.warnings += page_warnings
    seen = set(result.links)
    for link in links:
        if len(result.links) >= limit:
            break
        if link not in seen and len(link) <= MAX_URL_LENGTH and keep(link):
            seen.add(link)
            result.links.append(link)
    return result
