"""Firecrawl's crawl, batch scrape and map requests read into jobqueue's crawl, batch and map requests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jobqueue.crawl_scope import MAX_DEPTH, MAX_PAGES
from jobqueue.firecrawl.errors import Refused, flag, strings, whole
from jobqueue.firecrawl.scrape_options import SCRAPE_FIELDS, Shape, read_scrape_options, unknown_fields
from jobqueue.site_map import MAX_MAP_LIMIT

_SDK = frozenset({"origin", "integration"})
CRAWL_FIELDS = frozenset({
    "url", "prompt", "includePaths", "excludePaths", "maxDiscoveryDepth", "sitemap", "ignoreQueryParameters",
    "limit", "crawlEntireDomain", "allowExternalLinks", "allowSubdomains", "delay", "maxConcurrency", "webhook",
    "scrapeOptions", "zeroDataRetention", "regexOnFullURL", "ignoreRobotsTxt", "robotsUserAgent",
    "deduplicateSimilarURLs", *_SDK})
BATCH_FIELDS = frozenset({"urls", "webhook", "appendToId", "ignoreInvalidURLs", "maxConcurrency", *SCRAPE_FIELDS})
MAP_FIELDS = frozenset({"url", "search", "sitemap", "includeSubdomains", "ignoreQueryParameters", "limit",
                        "timeout", "location", *_SDK})
DEFAULT_CRAWL_LIMIT = 10_000
DEFAULT_MAP_LIMIT = 5_000
# Firecrawl's webhook events and the jobqueue events that say the same
_EVENTS = {"page": ("task.completed",), "failed": ("task.failed",), "completed": ("crawl.finished", "batch.finished"),
           "started": ()}


def _nothing(raw: dict[str, Any], name: str, why: str) -> None:
    if raw.get(name) not in (None, False, "", [], {}):
        raise Refused(f"{name}: {why}")


def read_webhook(raw: Any, finished: str) -> dict[str, Any] | None:
    """A Firecrawl webhook (a URL, or {url, events}) as a jobqueue webhook; `finished` is the event its
    "completed" is (crawl.finished or batch.finished)."""
    if raw is None:
        return None
    if isinstance(raw, str):
        return {"url": raw}
    if not isinstance(raw, dict):
        raise Refused("webhook: must be a URL or an object {\"url\": ..., \"events\": [...]}")
    for name in ("headers", "metadata"):
        _nothing(raw, name, "not supported: jobqueue signs its webhooks (Webhook-Signature) and sends its own body")
    unknown = sorted(set(raw) - {"url", "events", "headers", "metadata"})
    if unknown:
        raise Refused(f"webhook.{unknown[0][:64]}: not a webhook field jobqueue supports")
    out: dict[str, Any] = {"url": raw.get("url")}
    events = raw.get("events")
    if events is not None:
        if not isinstance(events, list) or any(e not in _EVENTS for e in events):
            raise Refused(f"webhook.events: must be a list of {', '.join(_EVENTS)}")
        chosen = [e for name in events for e in _EVENTS[name] if name != "completed" or e == finished]
        if not chosen:
            raise Refused("webhook.events: \"started\" alone is not sent by jobqueue; add page, completed or failed")
        out["events"] = list(dict.fromkeys(chosen))
    return out


@dataclass
class CrawlRequest:
    """A Firecrawl crawl as the body of POST /crawls, and the shape of its documents."""

    body: dict[str, Any]
    shape: Shape


def read_crawl(raw: Any) -> CrawlRequest:
    """Read a Firecrawl crawl request; Refused names the first field jobqueue does not do."""
    if not isinstance(raw, dict):
        raise Refused("send a JSON object such as {\"url\": \"https://example.com/\", \"limit\": 10}")
    unknown_fields(raw, CRAWL_FIELDS, "crawl")
    _nothing(raw, "prompt", "prompt (LLM-made crawl options) is not supported by jobqueue; give the options")
    _nothing(raw, "allowExternalLinks", "jobqueue crawls stay on their site (allowSubdomains widens it to its domain)")
    _nothing(raw, "regexOnFullURL", "jobqueue matches includePaths/excludePaths against the path and query")
    _nothing(raw, "zeroDataRetention", "not supported: jobqueue keeps what it fetches")
    _nothing(raw, "delay", "not supported per crawl; pace a host with its min_delay_ms (/hosts)")
    _nothing(raw, "maxConcurrency", "not supported per crawl; a host's concurrency is its max_concurrency (/hosts)")
    _nothing(raw, "robotsUserAgent", "not supported per crawl; the server's --robots-user-agent is used")
    options = raw.get("scrapeOptions") or {}
    if not isinstance(options, dict):
        raise Refused("scrapeOptions: must be an object")
    unknown = sorted(set(options) - SCRAPE_FIELDS)
    if unknown:
        raise Refused(f"scrapeOptions.{unknown[0][:64]}: not a scrape option jobqueue supports")
    scrape = read_scrape_options(options, where="scrapeOptions", narrowing=False)
    if "url" not in raw:
        raise Refused("url: missing")
    body: dict[str, Any] = {"url": raw["url"], **scrape.spec}
    if flag(raw, "allowSubdomains", False):
        body["scope"] = "domain"
    else:
        body["scope"] = "host" if flag(raw, "crawlEntireDomain", False) else "prefix"
    body["max_pages"] = whole(raw, "limit", 1, MAX_PAGES, DEFAULT_CRAWL_LIMIT)
    body["max_depth"] = whole(raw, "maxDiscoveryDepth", 0, MAX_DEPTH, MAX_DEPTH)
    body["include"] = strings(raw, "includePaths", 50)
    body["exclude"] = strings(raw, "excludePaths", 50)
    sitemap = raw.get("sitemap", "include")
    if sitemap not in ("include", "skip", "only"):
        raise Refused("sitemap: must be include, skip or only")
    if sitemap == "only":
        raise Refused("sitemap: \"only\" is not supported by jobqueue crawls; a crawl follows links (use /v2/map "
                      "for a sitemap's URLs)")
    body["sitemap"] = sitemap
    body["robots"] = "ignore" if flag(raw, "ignoreRobotsTxt", False) else "obey"
    body["ignore_query"] = flag(raw, "ignoreQueryParameters", False)
    flag(raw, "deduplicateSimilarURLs", True)  # jobqueue fetches each normalized URL of a crawl once either way
    webhook = read_webhook(raw.get("webhook"), "crawl.finished")
    if webhook is not None:
        body["webhook"] = webhook
    return CrawlRequest(body, scrape.shape)


@dataclass
class BatchRequest:
    """A Firecrawl batch scrape as the body of POST /batches, the URLs it left out, and its documents' shape."""

    body: dict[str, Any]
    invalid: list[str]
    shape: Shape


def read_batch(raw: Any, valid: Any) -> BatchRequest:
    """Read a Firecrawl batch scrape; `valid(url)` says whether jobqueue takes a URL (for ignoreInvalidURLs)."""
    if not isinstance(raw, dict):
        raise Refused("send a JSON object such as {\"urls\": [\"https://example.com/\"]}")
    unknown_fields(raw, BATCH_FIELDS, "batch scrape")
    _nothing(raw, "appendToId", "not supported: each batch scrape is its own batch")
    _nothing(raw, "maxConcurrency", "not supported per batch; a host's concurrency is its max_concurrency (/hosts)")
    urls = raw.get("urls")
    if not isinstance(urls, list) or not urls or not all(isinstance(u, str) for u in urls):
        raise Refused("urls: must be a non-empty list of URLs")
    scrape = read_scrape_options({k: v for k, v in raw.items() if k in SCRAPE_FIELDS}, narrowing=False)
    invalid: list[str] = []
    if flag(raw, "ignoreInvalidURLs", False):
        invalid = [u for u in urls if not valid(u)]
        urls = [u for u in urls if u not in invalid]
        if not urls:
            raise Refused("urls: none of them is a URL jobqueue can fetch")
    body: dict[str, Any] = {"urls": urls, **scrape.spec}
    webhook = read_webhook(raw.get("webhook"), "batch.finished")
    if webhook is not None:
        body["webhook"] = webhook
    return BatchRequest(body, invalid, scrape.shape)


@dataclass
class MapRequest:
    """A Firecrawl map as jobqueue's map: the URL, the limit and the sitemap mode."""

    url: Any
    limit: int
    sitemap: str
    seconds: float
    ignore_query: bool


def read_map(raw: Any) -> MapRequest:
    """Read a Firecrawl map request; Refused names the first field jobqueue does not do."""
    if not isinstance(raw, dict):
        raise Refused("send a JSON object such as {\"url\": \"https://example.com/\"}")
    unknown_fields(raw, MAP_FIELDS, "map")
    _nothing(raw, "search", "not supported: jobqueue's map does not rank URLs by a search")
    _nothing(raw, "location", "not supported by jobqueue (no geolocated proxies)")
    if raw.get("includeSubdomains") is False:
        raise Refused("includeSubdomains: false is not supported; jobqueue's map keeps the site's host and the "
                      "subdomains of its registrable domain")
    flag(raw, "includeSubdomains", True)
    sitemap = raw.get("sitemap", "include")
    if sitemap not in ("include", "skip", "only"):
        raise Refused("sitemap: must be include, skip or only")
    timeout_ms = whole(raw, "timeout", 1000, 60_000, 60_000)
    if "url" not in raw:
        raise Refused("url: missing")
    return MapRequest(raw["url"], whole(raw, "limit", 1, MAX_MAP_LIMIT, DEFAULT_MAP_LIMIT), sitemap,
                      timeout_ms / 1000, flag(raw, "ignoreQueryParameters", True))


def without_queries(links: list[str]) -> list[str]:
    """A map's links with their queries dropped, each once (Firecrawl's ignoreQueryParameters)."""
    return list(dict.fromkeys(link.split("?", 1)[0] for link in links))
