"""`POST /v2/map`: jobqueue's map (sitemaps and one page's links, no crawl) in Firecrawl's shape."""

from __future__ import annotations

from jobqueue.firecrawl.crawl_options import read_map, without_queries
from jobqueue.urls import normalize_url

from ..map import map_for
from .base import FirecrawlHandler


class MapHandler(FirecrawlHandler):
    """POST {url, limit, sitemap, ...}: {"success": true, "links": [{"url": ...}]}; what could not be read is
    the `warning`."""

    async def post(self) -> None:
        request = read_map(self.get_json_body())
        url = normalize_url(request.url, self.service.policy).url
        found = await map_for(self, url, request.limit, request.sitemap, request.seconds)
        links = without_queries(found.links) if request.ignore_query else found.links
        answer: dict[str, object] = {"links": [{"url": link} for link in links]}
        if found.warnings:
            answer["warning"] = "; ".join(found.warnings)
        self.succeed(answer)
