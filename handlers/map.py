"""`POST /map`: a site's URLs from its sitemaps and one page's links, answered within 60 s without crawling."""

from __future__ import annotations

from typing import Any

from jobqueue.addresses import AddressPolicy
from jobqueue.errors import BadRequest, Code
from jobqueue.fetcher import Fetcher, FetchSettings
from jobqueue.robots import Robots
from jobqueue.site_map import DEFAULT_MAP_LIMIT, MAP_SECONDS, MAX_MAP_LIMIT, SITEMAP_MODES, SiteMap, map_site
from jobqueue.sitemaps import sitemap_fetcher
from jobqueue.urls import normalize_url

from .base import BaseAPIHandler

_FIELDS = ("url", "limit", "sitemap")


def read_map_request(body: Any, policy: AddressPolicy) -> tuple[str, int, str]:
    """The checked URL, limit and sitemap mode of a map request, or the 400 that says what is wrong."""
    if not isinstance(body, dict):
        raise BadRequest(Code.INVALID_REQUEST, 'send a JSON object: {"url": "...", "limit": 5000, "sitemap": '
                         '"include"}')
    unknown = [name for name in body if name not in _FIELDS]
    if unknown:
        raise BadRequest(Code.UNKNOWN_FIELD, f"{unknown[0][:64]}: not a field of a map request; the fields are "
                         f"{', '.join(_FIELDS)}")
    if "url" not in body:
        raise BadRequest(Code.INVALID_REQUEST, 'url: missing; send {"url": "https://example.com/"}')
    url = normalize_url(body["url"], policy).url
    limit = body.get("limit", DEFAULT_MAP_LIMIT)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_MAP_LIMIT:
        raise BadRequest(Code.INVALID_FIELD, f"limit: must be a whole number from 1 to {MAX_MAP_LIMIT:,}")
    mode = body.get("sitemap", "include")
    if mode not in SITEMAP_MODES:
        raise BadRequest(Code.INVALID_FIELD, f"sitemap: must be one of {', '.join(SITEMAP_MODES)}")
    return url, limit, mode


async def map_for(handler: BaseAPIHandler, url: str, limit: int, mode: str, seconds: float = MAP_SECONDS) -> SiteMap:
    """Map a site for a request (POST /map, Firecrawl's /v2/map): fetchers that live as long as the request, through
    the address guard, and the server's shared robots.txt copies."""
    config, policy = handler.config, handler.service.policy
    settings = FetchSettings(connect_timeout=config.connect_timeout, total_timeout=config.fetch_timeout,
                             max_body_size=config.max_body_size, user_agent=config.user_agent, max_clients=2)
    page_fetcher = Fetcher(settings, policy)
    sitemaps = sitemap_fetcher(settings, policy)
    shared: Robots | None = handler.application.settings.get("robots")
    # without the server's own Robots, one over the same store still shares its 24 h copy of robots.txt
    robots = shared or Robots(handler.service.store, Robots.fetcher_for(settings, page_fetcher),
                              config.robots_user_agent)
    try:
        return await map_site(url, page_fetcher=page_fetcher, sitemap_fetcher=sitemaps, robots=robots, limit=limit,
                              sitemap=mode, seconds=seconds)
    finally:
        page_fetcher.close()
        sitemaps.close()
        if robots is not shared:
            robots.fetcher.close()


class MapHandler(BaseAPIHandler):
    """POST {url, limit, sitemap}: {links, warnings}."""

    async def post(self) -> None:
        url, limit, mode = read_map_request(self.get_json_body(), self.service.policy)
        found = await map_for(self, url, limit, mode)
        self.write_json({"links": found.links, "warnings": found.warnings})
