"""The OpenAPI description of `POST /map`: a site's URLs from its sitemaps and one page's links."""

from __future__ import annotations

from typing import Any

from jobqueue.site_map import DEFAULT_MAP_LIMIT, MAX_MAP_LIMIT, SITEMAP_MODES
from jobqueue.urls import MAX_URL_LENGTH

from .openapi_schemas import ref

API = "/jobqueue/api/v1.0"


def map_paths(common: dict[str, Any]) -> dict[str, Any]:
    """POST /map."""
    def answer(schema: dict[str, Any], text: str) -> dict[str, Any]:
        return {"description": text, "content": {"application/json": {"schema": schema}}}

    request = {"type": "object", "required": ["url"], "additionalProperties": False, "properties": {
        "url": {"type": "string", "minLength": 1, "maxLength": MAX_URL_LENGTH,
                "description": "a page of the site, checked as a submitted URL (a missing scheme means https)"},
        "limit": {"type": "integer", "minimum": 1, "maximum": MAX_MAP_LIMIT, "default": DEFAULT_MAP_LIMIT,
                  "description": "at most this many links"},
        "sitemap": {"type": "string", "enum": list(SITEMAP_MODES), "default": "include",
                    "description": "include: sitemaps' URLs then the page's links; only: the sitemaps alone (the "
                                   "page is not fetched); skip: the page's links alone"}}}
    links = {"type": "object", "required": ["links", "warnings"], "properties": {
        "links": {"type": "array", "items": {"type": "string"},
                  "description": "the site's URLs (its host, or its registrable domain and subdomains): the "
                                 "sitemaps' first (robots.txt's Sitemap lines, then /sitemap.xml, indexes followed), "
                                 "then the page's links; normalized, each once"},
        "warnings": {"type": "array", "items": {"type": "string"},
                     "description": "what could not be read (a sitemap or the page), one sentence each"}}}
    return {
        f"{API}/map": {
            "post": {"summary": "A site's URLs from its sitemaps and one page's links, without crawling",
                     "operationId": "mapSite",
                     "description": "Answers within 60 s. Sitemaps are XML (urlset, sitemapindex), gzipped or not, "
                                    "or text; at most 50 are read, each up to 50 MiB. Every fetch goes through the "
                                    "address guard.",
                     "requestBody": {"required": True, "content": {"application/json": {"schema": request}}},
                     "responses": {
                         "200": answer(links, "the links found, and what could not be read"),
                         "400": answer(ref("Error"), "bad JSON, an unknown field, a bad limit or sitemap mode, a "
                                       "URL that cannot be fetched (a bad URL or scheme, a private address)"),
                         "403": answer(ref("Error"), "a read-only token"),
                         "413": answer(ref("Error"), "request body too large"), **common}},
        },
    }
