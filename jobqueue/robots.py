"""robots.txt by RFC 9309: fetched once per origin through the guarded fetcher, kept 24 h in the store so every
process shares one copy, and parsed by protego (wildcards, `$`, longest match, Crawl-delay, Sitemap).

What a fetch means (RFC 9309 section 2.3.1, and Google's reading of it):
- 2xx: the rules of the body's first 500 KiB, for the product token of --robots-user-agent;
- 4xx (and any other final status, or more than 5 redirects): "unavailable", everything is allowed;
- 5xx or a network error: "unreachable", nothing is allowed until the entry expires.
Redirects are followed, at most 5, each hop through the address guard.

A job obeys robots.txt only with `"robots": "obey"`, or with the server's --robots=obey and no `robots` of its own;
a disallowed URL then fails `blocked_by_robots` before it is fetched (jobqueue/leased_pool.py).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from protego import Protego

from jobqueue.errors import Code, FetchError
from jobqueue.fetcher import Fetcher, FetchSettings
from jobqueue.models import Task
from jobqueue.redirect_urls import DEFAULT_PORTS
from jobqueue.store.base import RobotsEntry, StoreError
from jobqueue.store.roles import RobotsStore

__all__ = ["MAX_ROBOTS_BYTES", "MAX_ROBOTS_REDIRECTS", "ROBOTS_TTL", "Robots", "RobotsFacts", "RobotsRules",
           "robots_facts", "robots_origin"]

ROBOTS_TTL = 24 * 3600.0  # seconds an origin's robots.txt is kept, whatever its fetch brought
MAX_ROBOTS_BYTES = 500 * 1024  # RFC 9309: at least 500 KiB parsed; the rest is cut
MAX_ROBOTS_REDIRECTS = 5  # RFC 9309: at least five consecutive redirects followed
MAX_REMEMBERED = 10_000  # parsed origins each process keeps in memory besides the store's copy

log = logging.getLogger("jobqueue.robots")


def robots_origin(url: str) -> str:
    """`scheme://host[:port]` of a URL in lower case, the port left out when it is the scheme's default: the key
    an origin's robots.txt is kept under."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".")
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{scheme}://{host}" if port in (None, DEFAULT_PORTS.get(scheme)) else f"{scheme}://{host}:{port}"


@dataclass(frozen=True)
class RobotsFacts:
    """What a crawl needs of robots.txt besides allow/disallow: the agent's Crawl-delay and the Sitemap lines."""

    crawl_delay: float | None
    sitemaps: tuple[str, ...]


def robots_facts(body: str, agent: str) -> RobotsFacts:
    """The Crawl-delay (seconds) that applies to `agent` and every Sitemap URL of a robots.txt body."""
    parser = Protego.parse(body)
    delay = parser.crawl_delay(agent)
    return RobotsFacts(float(delay) if delay is not None else None, tuple(parser.sitemaps))


@dataclass(frozen=True)
class RobotsRules:
    """An origin's robots.txt as its fetch left it, with the parsed rules of a 2xx body."""

    entry: RobotsEntry
    parser: Protego | None

    @classmethod
    def of(cls, entry: RobotsEntry) -> RobotsRules:
        """Parse an entry's body when its fetch was a success (only then do its rules count)."""
        status = entry.status
        return cls(entry, Protego.parse(entry.body) if status is not None and 200 <= status < 300 else None)

    def allows(self, url: str, agent: str) -> bool:
        """Whether `agent` may fetch `url`: by the rules of a 2xx, never after a 5xx or a network error, always
        otherwise (a 4xx, or no robots.txt to be found)."""
        status = self.entry.status
        if status is None or status >= 500:
            return False
        if self.parser is None:
            return True
        return bool(self.parser.can_fetch(url, agent))

    def facts(self, agent: str) -> RobotsFacts:
        """Crawl-delay and Sitemap lines (none without a 2xx body)."""
        return robots_facts(self.entry.body, agent) if self.parser is not None else RobotsFacts(None, ())


class Robots:
    """Answers whether a job may fetch its URL, fetching each origin's robots.txt at most once per period per
    process (concurrent asks wait on one fetch) and sharing it with every process through the store."""

    def __init__(self, store: RobotsStore, fetcher: Fetcher, agent: str = "jobqueue", obey_by_default: bool = False,
                 clock: Callable[[], float] = time.time, ttl: float = ROBOTS_TTL) -> None:
        self.store = store
        self.fetcher = fetcher
        self.agent = agent
        self.obey_by_default = obey_by_default
        self.clock = clock
        self.ttl = ttl
        self.fetches = 0  # robots.txt fetches this process made
        self._known: OrderedDict[str, RobotsRules] = OrderedDict()
        self._pending: dict[str, asyncio.Future[RobotsRules]] = {}

    @staticmethod
    def fetcher_for(settings: FetchSettings, fetcher: Fetcher) -> Fetcher:
        """A fetcher for robots.txt with the workers' guard and timeouts: 5 redirects, bodies cut at 500 KiB."""
        return Fetcher(dataclasses.replace(settings, max_redirects=MAX_ROBOTS_REDIRECTS,
                                           max_body_size=MAX_ROBOTS_BYTES, cut_long_bodies=True, max_clients=4),
                       fetcher.policy)

    def obeys(self, task: Task) -> bool:
        """Whether this job waits on robots.txt: its own `robots`, else the server's --robots."""
        return task.robots == "obey" if task.robots is not None else self.obey_by_default

    async def allows(self, url: str) -> bool:
        """Whether robots.txt lets --robots-user-agent fetch `url`."""
        return (await self.rules(robots_origin(url))).allows(url, self.agent)

    async def facts(self, url: str) -> RobotsFacts:
        """Crawl-delay and Sitemap lines of the robots.txt of `url`'s origin (for crawls)."""
        return (await self.rules(robots_origin(url))).facts(self.agent)

    async def rules(self, origin: str) -> RobotsRules:
        """The origin's rules: this process's copy while fresh, else the store's, else one fetch (shared by the
        asks that come meanwhile)."""
        known = self._known.get(origin)
        if known is not None and known.entry.expires_at > self.clock():
            return known
        pending = self._pending.get(origin)
        if pending is None:
            pending = self._pending[origin] = asyncio.ensure_future(self._look_up(origin))
            pending.add_done_callback(lambda _done: self._pending.pop(origin, None))
        return await asyncio.shield(pending)

    async def _look_up(self, origin: str) -> RobotsRules:
        try:
            entry = await self.store.get_robots(origin)
        except StoreError as exc:
            log.warning("robots.txt of %s: the database did not answer (%s); fetching it", origin, exc)
            entry = None
        if entry is None or entry.expires_at <= self.clock():
            entry = await self._fetch(origin)
            try:
                await self.store.put_robots(origin, entry.status, entry.body, entry.fetched_at, entry.expires_at)
            except StoreError as exc:
                log.warning("robots.txt of %s: could not be kept in the database (%s)", origin, exc)
        rules = RobotsRules.of(entry)
        self._known[origin] = rules
        self._known.move_to_end(origin)
        while len(self._known) > MAX_REMEMBERED:
            self._known.popitem(last=False)
        return rules

    async def _fetch(self, origin: str) -> RobotsEntry:
        """Fetch `origin/robots.txt`; what it brought, as the entry to keep."""
        self.fetches += 1
        now = self.clock()
        status: int | None
        body = ""
        try:
            response = await self.fetcher.fetch(f"{origin}/robots.txt")
        except FetchError as exc:
            # more redirects than RFC 9309 asks to follow: "unavailable" (allowed); anything else: unreachable
            status = 404 if exc.code == Code.TOO_MANY_REDIRECTS else None
            log.info("robots.txt of %s: %s (%s)", origin, exc.code, exc)
        else:
            status = response.http_status
            if 200 <= status < 300:
                body = response.body[:MAX_ROBOTS_BYTES].decode("utf-8", errors="replace")
        return RobotsEntry(origin, status, body, now, now + self.ttl)
