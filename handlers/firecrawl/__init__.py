"""A Firecrawl-compatible API (v2) over jobqueue's jobs, batches and crawls: docs/firecrawl.md.

Served at /v2/... on the server's root (where firecrawl-py's URLs land whatever path its api_url has) and the
same under /firecrawl/v2/.... Each route translates a Firecrawl request into ordinary jobs tagged `firecrawl`
and shapes the results back; nothing here queues, stores or fetches on its own.
"""

from __future__ import annotations

from typing import Any

from .base import UnsupportedHandler
from .jobs import (
    BatchErrorsHandler,
    BatchStartHandler,
    BatchStatusHandler,
    CrawlErrorsHandler,
    CrawlStartHandler,
    CrawlStatusHandler,
)
from .map import MapHandler
from .scrape import ScrapeHandler

PREFIXES = ("", "/firecrawl")


def firecrawl_routes(id_pattern: str) -> list[tuple[Any, ...]]:
    """The Firecrawl routes under each prefix, for make_app."""
    routes: list[tuple[Any, ...]] = []
    for prefix in PREFIXES:
        v2 = f"{prefix}/v2"
        routes += [
            (rf"{v2}/scrape/?", ScrapeHandler),
            (rf"{v2}/map/?", MapHandler),
            (rf"{v2}/crawl/?", CrawlStartHandler),
            (rf"{v2}/crawl/{id_pattern}/?", CrawlStatusHandler),
            (rf"{v2}/crawl/{id_pattern}/errors/?", CrawlErrorsHandler),
            (rf"{v2}/batch/scrape/?", BatchStartHandler),
            (rf"{v2}/batch/scrape/{id_pattern}/?", BatchStatusHandler),
            (rf"{v2}/batch/scrape/{id_pattern}/errors/?", BatchErrorsHandler),
            (rf"{v2}/.*", UnsupportedHandler),
        ]
    return routes
