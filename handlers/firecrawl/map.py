"""`POST /v2/map`: jobqueue's map (sitemaps and one page's links, no crawl) in Firecrawl's shape."""

from __future__ import annotations

from jobqueue.fetcher import Fetcher, FetchSettings
from jobqueue.firecrawl.crawl_options import read_map, without_queries
from jobqueue.robots import Robots
from jobqueue.site_map import map_site
from jobqueue.sitemaps import sitemap_fetcher
from jobqueue.urls import normalize_url

from .base import FirecrawlHandler


class MapHandler(FirecrawlHandler):
    """POST {url, limit, sitemap, ...}: {"success": true, "links": [{"url": ...}]}; what could not be read is
    the `warning`. Its fetchers, like /map's, live as long as the request and go through the address guard."""

    async def post(self) -> None:
        request = read_map(self.get_json_body())
        url = normalize_url(request.url, self.service.policy).url
        config = self.config
        settings = FetchSettings(connect_timeout=config.connect_timeout, total_timeout=config.fetch_timeout,
                                 max_body_size=config.max_body_size, user_agent=config.user_agent, max_clients=2)
        page_fetcher = Fetcher(settings, self.service.policy)
        sitemaps = sitemap_fetcher(settings, self.service.policy)
        shared: Robots | None = self.application.settings.get("robots")
        robots = shared or Robots(self.service.store, Robots.fetcher_for(settings, page_fetcher),
                                  config.robots_user_agent)
        try:
            found = await map_site(url, page_fetcher=page_fetcher, sitemap_fetcher=sitemaps, robots=robots,
                                   limit=request.limit, sitemap=request.sitemap, seconds=request.seconds)
        finally:
            page_fetcher.close()
            sitemaps.close()
            if robots is not shared:
                robots.fetcher.close()
        links = without_queries(found.links) if request.ignore_query else found.links
        answer: dict[str, object] = {"links": [{"url": link} for link in links]}
        if found.warnings:
            answer["warning"] = "; ".join(found.warnings)
        self.succeed(answer)
