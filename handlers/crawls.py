"""`/crawls`: follow links from seed pages within a scope; every page is an ordinary job (jobqueue/crawler.py)."""

from __future__ import annotations

from .base import BaseAPIHandler
from .paging import PAGING, continue_listing


class CrawlListHandler(BaseAPIHandler):
    """POST starts a crawl (201 with the crawl); GET lists crawls, newest first."""

    query_parameters = {"GET": PAGING}

    async def post(self) -> None:
        crawl = await self.service.start_crawl(self.get_json_body(), self.client_key)
        self.set_header("Location", f"{self.request.path.rstrip('/')}/{crawl.id}")
        self.write_json({"crawl": crawl.to_json()}, 201)

    async def get(self) -> None:
        query = continue_listing(self, "crawls", {})
        page = await self.service.crawls(query.limit, query.store_cursor)
        self.write_json({"crawls": [c.to_json() for c in page.items], "next": query.next(page.next_cursor)})


class CrawlHandler(BaseAPIHandler):
    """GET one crawl with its counts; DELETE stops it and cancels its unfinished pages (finished ones stay)."""

    async def get(self, crawl_id: str) -> None:
        self.write_json({"crawl": (await self.service.crawl(crawl_id)).to_json()})

    async def delete(self, crawl_id: str) -> None:
        self.write_json({"crawl": (await self.service.cancel_crawl(crawl_id)).to_json()})


def crawl_routes(api: str, id_pattern: str) -> list[tuple[str, type[BaseAPIHandler]]]:
    """The routes of this module, for make_app."""
    return [(rf"{api}/crawls/?", CrawlListHandler), (rf"{api}/crawls/{id_pattern}/?", CrawlHandler)]
