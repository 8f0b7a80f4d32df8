"""A crawl request read and checked, and the scope its pages must stay in.

`POST /crawls` takes the crawl's own fields (below) beside any job spec field, which every page gets. The scope
decides which links are followed: `host` (a seed's host), `domain` (a seed's registrable domain and every
subdomain of it), or `prefix` (a seed's origin and the path of its directory). `include` and `exclude` are
regular expressions searched in a URL's path and query (an include list: at least one must match; any exclude
match leaves it out). A page is known by its crawl key: its normalized URL, without the query when
`ignore_query` is set, so a page met twice (by a fragment variant, a host-case variant) is fetched once.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from jobqueue.errors import BadRequest, Code
from jobqueue.site_map import registrable_domain

SCOPES = ("host", "domain", "prefix")
SITEMAP_MODES = ("include", "only", "skip")
ROBOTS_MODES = ("obey", "ignore")
MAX_SEEDS = 1000
MAX_DEPTH = 100
MAX_PAGES = 1_000_000
MAX_PATTERNS = 50
MAX_PATTERN_LENGTH = 500
CRAWL_FIELDS = frozenset({"url", "urls", "scope", "max_depth", "max_pages", "include", "exclude", "sitemap",
                          "robots", "ignore_query"})


@dataclass(frozen=True)
class CrawlOptions:
    """A crawl's own fields, checked; `to_json` is how the crawl shows them."""

    scope: str = "host"
    max_depth: int = 2
    max_pages: int = 1000
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    sitemap: str = "include"
    robots: str = "obey"
    ignore_query: bool = False

    def to_json(self) -> dict[str, Any]:
        """The options as stored and shown in the crawl's JSON."""
        return {"scope": self.scope, "max_depth": self.max_depth, "max_pages": self.max_pages,
                "include": list(self.include), "exclude": list(self.exclude), "sitemap": self.sitemap,
                "robots": self.robots, "ignore_query": self.ignore_query}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> CrawlOptions:
        """Rebuild the stored options (of a crawl this server accepted)."""
        return cls(scope=raw.get("scope", "host"), max_depth=int(raw.get("max_depth", 2)),
                   max_pages=int(raw.get("max_pages", 1000)), include=tuple(raw.get("include") or ()),
                   exclude=tuple(raw.get("exclude") or ()), sitemap=raw.get("sitemap", "include"),
                   robots=raw.get("robots", "obey"), ignore_query=bool(raw.get("ignore_query", False)))


def _choice(raw: Mapping[str, Any], name: str, choices: Sequence[str], default: str) -> str:
    value = raw.get(name, default)
    if value not in choices:
        raise BadRequest(Code.INVALID_FIELD, f"{name}: must be one of {', '.join(choices)}")
    return str(value)


def _whole(raw: Mapping[str, Any], name: str, low: int, high: int, default: int) -> int:
    value = raw.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BadRequest(Code.INVALID_FIELD, f"{name}: must be a whole number from {low} to {high}")
    return value


def _patterns(raw: Mapping[str, Any], name: str) -> tuple[str, ...]:
    value = raw.get(name) or []
    if not isinstance(value, list) or len(value) > MAX_PATTERNS:
        raise BadRequest(Code.INVALID_FIELD, f"{name}: must be a list of at most {MAX_PATTERNS} regular expressions")
    for index, pattern in enumerate(value):
        if not isinstance(pattern, str) or not pattern or len(pattern) > MAX_PATTERN_LENGTH:
            raise BadRequest(Code.INVALID_FIELD, f"{name}[{index}]: must be a regular expression of 1 to "
                             f"{MAX_PATTERN_LENGTH} characters")
        try:
            re.compile(pattern)
        except re.error as exc:
            raise BadRequest(Code.INVALID_FIELD, f"{name}[{index}]: not a valid regular expression ({exc}); "
                             "it is searched in the URL's path and query, like /docs/ or \\.pdf$") from None
    return tuple(value)


def parse_options(raw: Mapping[str, Any]) -> CrawlOptions:
    """Check a crawl request's own fields; BadRequest names the one at fault."""
    ignore_query = raw.get("ignore_query", False)
    if not isinstance(ignore_query, bool):
        raise BadRequest(Code.INVALID_FIELD, "ignore_query: must be true or false")
    return CrawlOptions(
        scope=_choice(raw, "scope", SCOPES, "host"), max_depth=_whole(raw, "max_depth", 0, MAX_DEPTH, 2),
        max_pages=_whole(raw, "max_pages", 1, MAX_PAGES, 1000), include=_patterns(raw, "include"),
        exclude=_patterns(raw, "exclude"), sitemap=_choice(raw, "sitemap", SITEMAP_MODES, "include"),
        robots=_choice(raw, "robots", ROBOTS_MODES, "obey"), ignore_query=ignore_query)


_AUTHORITY = re.compile(r"[^:/?#]+://[^/?#]*")  # what decides a host or domain scope: up to the path
_AUTHORITIES = 4096  # authorities a scope remembers (a crawl's links mostly share a few)


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def crawl_key(url: str, ignore_query: bool) -> str:
    """What tells a crawl's pages apart: the URL (normalized by its reader already), without fragment, and without
    its query when the crawl ignores queries."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path or "/", "" if ignore_query else parts.query, ""))


class Scope:
    """Which URLs a crawl follows: built once per crawl from its seeds and options."""

    def __init__(self, seeds: Sequence[str], options: CrawlOptions) -> None:
        self.options = options
        self._hosts: set[str] = set()
        self._domains: set[str] = set()
        self._prefixes: list[str] = []
        for seed in seeds:
            parts = urlsplit(seed)
            host = (parts.hostname or "").rstrip(".")
            self._hosts.add(host)
            domain = None if _is_address(host) else registrable_domain(host)
            self._domains.add(domain or host)
            directory = parts.path[:parts.path.rfind("/") + 1] or "/"
            self._prefixes.append(f"{parts.scheme}://{parts.netloc}{directory}")
        self._by_authority: dict[str, bool] = {}  # `scheme://authority` of URLs met: in the host or domain scope?
        self._include = [re.compile(p) for p in options.include]
        self._exclude = [re.compile(p) for p in options.exclude]

    def contains(self, url: str) -> bool:
        """True when `url` is in the crawl's scope (its host, domain or prefix), whatever its patterns say: where a
        page's links may be followed from (a seed the include patterns leave out is still crawled)."""
        kind = self.options.scope
        if kind != "host" and kind != "domain":
            return any(url.startswith(prefix) for prefix in self._prefixes)
        authority = _AUTHORITY.match(url)
        key = authority.group(0) if authority else url
        known = self._by_authority.get(key)
        if known is None:
            host = (urlsplit(url).hostname or "").rstrip(".")
            if kind == "host":
                known = host in self._hosts
            else:
                known = any(host == d or host.endswith("." + d) for d in self._domains)
            if len(self._by_authority) >= _AUTHORITIES:
                self._by_authority.clear()
            self._by_authority[key] = known
        return known

    def within(self, url: str) -> bool:
        """True when `url` is in the crawl's scope and passes its include and exclude patterns: a page to queue."""
        if not self.contains(url):
            return False
        if not self._include and not self._exclude:
            return True
        parts = urlsplit(url)
        tail = parts.path + ("?" + parts.query if parts.query else "")
        if self._include and not any(p.search(tail) for p in self._include):
            return False
        return not any(p.search(tail) for p in self._exclude)
