"""Crawls: starting one (its seeds, then its sitemaps' pages) and the links a completed page adds to it.

Every page is an ordinary job (`crawl_id`, `depth`, `parent_id`) with the spec the crawl request gave. When a
page completes with a 2xx HTML answer whose final URL is in scope and above `max_depth`, its worker takes its
links (as `/links` gives them), keeps those in scope that robots.txt allows (when the crawl obeys it), and hands
them to the store with the completion (`Result.crawl_links`), which queues each new one once while the crawl has
room. Nothing about a crawl lives only in this process: its options, frontier and counts are in the store, so a
crawl survives restarts and is shared by every process.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from jobqueue.addresses import AddressPolicy
from jobqueue.crawl_scope import CRAWL_FIELDS, MAX_SEEDS, CrawlOptions, Scope, crawl_key, parse_options
from jobqueue.errors import BadRequest, Code, InvalidURL
from jobqueue.extract.core import decode, parse
from jobqueue.extract.links import base_url, link_urls
from jobqueue.fetcher import FetchSettings
from jobqueue.hosts import MAX_DELAY_MS
from jobqueue.models import Crawl, CrawlLinks, Result, Task, TaskIds
from jobqueue.robots import Robots
from jobqueue.sitemaps import sitemap_fetcher, sitemap_urls
from jobqueue.spec import SPEC_FIELDS, JobSpec
from jobqueue.store.base import NewCrawl, NewTask, Store, StoreError, TaskFilter
from jobqueue.submission import SubmissionReader
from jobqueue.urls import normalize_url

log = logging.getLogger("jobqueue.crawler")
HTML_TYPES = ("text/html", "application/xhtml+xml")
INLINE_PARSE_BYTES = 16 * 1024  # a page this small is parsed on the IOLoop (~0.1-0.5 ms): cheaper than a thread
MAX_LINKS_PER_PAGE = 10_000  # links of one page looked at; the rest count as over the limit
SEEDING_SECONDS = 300.0  # how long a crawl waits for its sitemaps before it may finish without them
_CACHED = 256  # crawls whose scope this process keeps
_FRESH = 1.0  # seconds a cached crawl is trusted (a cancel is seen by the store at once anyway)

RESUME_EVERY = 30.0  # seconds between two looks for crawls whose sitemap reading stopped with its process
# Reads a site's sitemaps: (a seed URL, how many URLs at most, which to keep, a time.monotonic() deadline) -> the
# URLs, in order
SitemapReader = Callable[[str, int, Callable[[str], bool], float], Awaitable[list[str]]]


def sitemap_reader(settings: FetchSettings, policy: AddressPolicy, robots: Robots | None) -> SitemapReader:
    """How crawls read a site's sitemaps: through a guarded fetcher of their own, closed after each site."""
    async def read(site: str, limit: int, keep: Callable[[str], bool], deadline: float) -> list[str]:
        fetcher = sitemap_fetcher(settings, policy)
        try:
            found = await sitemap_urls(site, fetcher=fetcher, robots=robots, limit=limit, keep=keep,
                                       deadline=deadline)
        finally:
            fetcher.close()
        for error in found.errors:
            log.info("sitemap of %s: %s", site, error)
        return found.urls

    return read


def page_links(result: Result) -> list[str]:
    """A stored HTML page's links, resolved and normalized as `/links` gives them (runs in a thread)."""
    if result.body is None:
        return []
    tree = parse(decode(result.body, result.encoding, result.content_type))
    if tree is None:
        return []
    return link_urls(tree, base_url(tree, result.final_url))


def spec_of(task: Task) -> JobSpec:
    """The spec a page's links are queued with: its own, as the crawl request gave it."""
    render = task.render
    return JobSpec(fetch=task.fetch, priority=task.priority, tags=task.tags, webhook=task.webhook, render=render,
                   capture=render.capture if render is not None else (), formats=task.formats,
                   changed_on=task.changed_on, robots=task.robots)


class Crawler:
    """Starts crawls and finds the pages a completed crawl page adds; one per server, built in main()."""

    def __init__(self, store: Store, reader: SubmissionReader, robots: Robots | None = None,
                 sitemaps: SitemapReader | None = None, publish: Callable[[Task], None] | None = None) -> None:
        self.store = store
        self.reader = reader
        self.robots = robots
        self.sitemaps = sitemaps
        self.publish = publish
        self.ids = TaskIds()
        self._scopes: OrderedDict[str, tuple[float, Scope | None, Crawl | None]] = OrderedDict()
        self._reading: dict[str, asyncio.Future[tuple[Scope | None, Crawl | None]]] = {}
        self._seeding: set[asyncio.Task[None]] = set()
        self._paced: OrderedDict[tuple[str, str], None] = OrderedDict()  # hosts whose Crawl-delay was applied

    async def start(self, body: Any, max_seeds: int = MAX_SEEDS) -> tuple[Crawl, list[Task]]:
        """Check a crawl request, store the crawl with its seeds, and begin reading its sitemaps."""
        if not isinstance(body, dict):
            raise BadRequest(Code.INVALID_REQUEST, 'send a JSON object like {"url": "https://example.org/docs/", '
                             '"max_pages": 100}')
        unknown = sorted(set(body) - CRAWL_FIELDS - SPEC_FIELDS)
        if unknown:
            raise BadRequest(Code.UNKNOWN_FIELD, f"{unknown[0]}: not a crawl field; the fields are "
                             f"{', '.join(sorted(CRAWL_FIELDS))} and any job field")
        if body.get("every") is not None:
            raise BadRequest(Code.INVALID_FIELD, "every: a crawl's pages are fetched once; to crawl again on a "
                             "schedule, start a new crawl")
        given = [k for k in ("url", "urls") if k in body]
        if len(given) != 1:
            raise BadRequest(Code.INVALID_REQUEST, 'give exactly one of "url" or "urls" (up to 1,000 seeds)')
        options = parse_options(body)
        fields = {k: v for k, v in body.items() if k in SPEC_FIELDS}
        fields.setdefault("robots", options.robots)
        submission = await self.reader.from_json({given[0]: body[given[0]], **fields}, max_seeds)
        crawl_id = self.ids.new()
        pages = [dataclasses.replace(t, crawl_id=crawl_id, depth=0, crawl_key=crawl_key(t.url, options.ignore_query))
                 for t in submission.tasks]
        # a sitemap's pages are depth 1: a crawl of its seeds alone (max_depth 0) reads none
        reading = options.sitemap != "skip" and options.max_depth > 0 and self.sitemaps is not None
        crawl = NewCrawl(crawl_id, [t.url for t in pages], options.to_json(), options.max_pages,
                         tags=submission.tags, webhook=submission.webhook,
                         seeding_seconds=SEEDING_SECONDS if reading else 0.0)
        made, queued = await self.store.create_crawl(crawl, pages)
        if reading and queued:
            self._start_reading(made, options, queued[0])
        return made, queued

    def _in_background(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._seeding.add(task)
        task.add_done_callback(self._seeding.discard)

    async def _pace(self, crawl_id: str, url: str, host: str) -> None:
        """Before a crawl first queues pages of a host (in this process), give the host its robots.txt's
        Crawl-delay as its min_delay_ms when it has no delay of its own: a host policy, kept and shared like one a
        user sets, so every process paces it; a delay someone set wins."""
        assert self.robots is not None
        if (crawl_id, host) in self._paced:
            return
        delay = (await self.robots.facts(url)).crawl_delay
        if delay and delay > 0:
            known = await self.store.get_host(host)
            if known is None or known.policy.min_delay_ms is None:
                await self.store.set_host_policy(host, None, min(round(delay * 1000), MAX_DELAY_MS), None,
                                                 keep=("max_concurrency", "paused"))
                log.info("crawl %s: %s asks for a Crawl-delay of %gs; its fetches start that far apart", crawl_id,
                         host, delay)
        self._paced[(crawl_id, host)] = None
        while len(self._paced) > _CACHED * 16:
            self._paced.popitem(last=False)
    def _start_reading(self, crawl: Crawl, options: CrawlOptions, template: Task) -> None:
        self._in_background(self._read_sitemaps(crawl, options, template))

    async def resume_loop(self) -> None:
        """Forever: read again the sitemaps of crawls whose reading stopped with its process (killed, crashed),
        one process each, so a crawl neither loses its sitemaps' pages nor waits for them for good."""
        while True:
            await asyncio.sleep(RESUME_EVERY)
            await self.resume_stalled()

    async def resume_stalled(self) -> int:
        """One look for crawls whose sitemap reading stalled; how many were taken over."""
        taken = await self.store.take_stalled_seeding(SEEDING_SECONDS, 5)
        for crawl in taken:
            pages = await self.store.list(TaskFilter(crawl=crawl.id), 1, None)
            if not pages.items:  # no page to take the spec from: nothing to read for
                await self.store.add_crawl_pages(crawl.id, CrawlLinks([]), seeded=True)
                continue
            log.info("crawl %s: reading its sitemaps again (the process reading them stopped)", crawl.id)
            self._start_reading(crawl, CrawlOptions.from_json(crawl.options), pages.items[0])
        return len(taken)

    async def stop(self) -> None:
        """Stop reading sitemaps (a crawl whose reading stopped may finish once its seeding time is over)."""
        for task in list(self._seeding):
            task.cancel()
        await asyncio.gather(*self._seeding, return_exceptions=True)

    async def _read_sitemaps(self, crawl: Crawl, options: CrawlOptions, template: Task) -> None:
        """Queue the in-scope pages of the seeds' sitemaps (depth 1), then let the crawl finish."""
        assert self.sitemaps is not None
        scope = Scope(crawl.seeds, options)
        found: list[str] = []
        deadline = time.monotonic() + SEEDING_SECONDS * 0.8  # done before another process may take it over
        try:
            for origin in dict.fromkeys(_origin(seed) for seed in crawl.seeds):
                if time.monotonic() >= deadline:
                    break
                found += await self.sitemaps(origin, options.max_pages, scope.within, deadline)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("crawl %s: reading its sitemaps failed; it goes on with its seeds' links", crawl.id)
        links = await self._pages(found, template, crawl.id, options, scope, depth=1, parent=None)
        try:
            added = await self.store.add_crawl_pages(crawl.id, links, seeded=True)
        except StoreError as exc:
            log.warning("crawl %s: its sitemaps' pages could not be stored (%s); it goes on without them", crawl.id,
                        exc)
            return
        if self.publish is not None:
            for task in added:
                self.publish(task)

    async def links_for(self, task: Task, result: Result) -> CrawlLinks | None:
        """The pages a completed crawl page adds (None: not a crawl page, or one whose links are not followed)."""
        if task.crawl_id is None or not 200 <= result.http_status < 300 or result.content_type not in HTML_TYPES:
            return None
        scope, crawl = await self._scope(task.crawl_id)
        if scope is None or crawl is None or crawl.status != "running":
            return None
        options = scope.options
        depth = task.depth or 0
        if options.sitemap == "only" or depth >= options.max_depth or not scope.contains(result.final_url):
            return None  # a redirect out of scope keeps its result; its links are not followed
        if crawl.discovered >= options.max_pages:  # full when last read, so full now: its links are not read
            return None
        small = result.body is not None and len(result.body) <= INLINE_PARSE_BYTES
        urls = page_links(result) if small else await asyncio.to_thread(page_links, result)
        return await self._pages(urls, task, task.crawl_id, options, scope, depth + 1, task.id)

    async def _pages(self, urls: list[str], template: Task, crawl_id: str, options: CrawlOptions, scope: Scope,
                     depth: int, parent: str | None) -> CrawlLinks:
        """New pages for the URLs in scope (each once) that robots.txt allows, and how many were left out why."""
        spec = spec_of(template)
        skipped: Counter[str] = Counter()
        pages: list[NewTask] = []
        seen: set[str] = set()
        obey = options.robots == "obey" and self.robots is not None
        for number, url in enumerate(urls):
            if number >= MAX_LINKS_PER_PAGE:
                skipped["limit"] += len(urls) - number
                break
            try:
                clean = normalize_url(url, self.reader.policy)
            except InvalidURL:
                skipped["scope"] += 1
                continue
            if not scope.within(clean.url):
                skipped["scope"] += 1
                continue
            key = crawl_key(clean.url, options.ignore_query)
            if key in seen:
                skipped["duplicate"] += 1
                continue
            seen.add(key)
            if obey and self.robots is not None:
                if not await self.robots.allows(clean.url):
                    skipped["robots"] += 1
                    continue
                await self._pace(crawl_id, clean.url, clean.host)
            pages.append(NewTask(self.ids.new(), clean.url, clean.host, spec, crawl_id=crawl_id, depth=depth,
                                 parent_id=parent, crawl_key=key))
        return CrawlLinks(pages, dict(skipped))

    async def _scope(self, crawl_id: str) -> tuple[Scope | None, Crawl | None]:
        """A crawl's scope (built once) and state, read again at most once a second per process, by one read
        however many of its pages complete meanwhile (crawls are few; pages are many)."""
        cached = self._scopes.get(crawl_id)
        if cached is not None and time.monotonic() - cached[0] < _FRESH:
            return cached[1], cached[2]
        reading = self._reading.get(crawl_id)
        if reading is None:
            reading = self._reading[crawl_id] = asyncio.ensure_future(self._read_crawl(crawl_id, cached))
            reading.add_done_callback(lambda _done: self._reading.pop(crawl_id, None))
        return await asyncio.shield(reading)

    async def _read_crawl(self, crawl_id: str, cached: tuple[float, Scope | None, Crawl | None] | None
                          ) -> tuple[Scope | None, Crawl | None]:
        read_at = time.monotonic()
        crawl = await self.store.get_crawl(crawl_id, counted=False)
        if crawl is None:
            scope = None
        elif cached is not None and cached[1] is not None:
            scope = cached[1]  # a crawl's seeds and options never change
        else:
            scope = Scope(crawl.seeds, CrawlOptions.from_json(crawl.options))
        self._scopes[crawl_id] = (read_at, scope, crawl)
        self._scopes.move_to_end(crawl_id)
        while len(self._scopes) > _CACHED:
            self._scopes.popitem(last=False)
        return scope, crawl


def _origin(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}/"
