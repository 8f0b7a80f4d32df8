"""The OpenAPI description of `/crawls`: start, list, read and stop crawls (their pages are ordinary jobs)."""

from __future__ import annotations

from typing import Any

from jobqueue.crawl_scope import MAX_DEPTH, MAX_PAGES, MAX_PATTERNS, MAX_SEEDS, ROBOTS_MODES, SCOPES, SITEMAP_MODES
from jobqueue.models import CRAWL_SKIPS, STATUSES
from jobqueue.urls import MAX_URL_LENGTH

from .openapi_schemas import ID_PATTERN, ref

API = "/jobqueue/api/v1.0"
_COUNT = {"type": "integer", "minimum": 0}
_TIME = {"type": ["string", "null"], "format": "date-time"}
_PATTERNS = {"type": "array", "maxItems": MAX_PATTERNS, "items": {"type": "string", "minLength": 1},
             "description": "regular expressions searched in a URL's path and query"}
_OPTIONS: dict[str, Any] = {
    "scope": {"type": "string", "enum": list(SCOPES), "default": "host",
              "description": "host: a seed's host; domain: a seed's registrable domain and its subdomains; prefix: "
                             "a seed's origin and the directory of its path"},
    "max_depth": {"type": "integer", "minimum": 0, "maximum": MAX_DEPTH, "default": 2},
    "max_pages": {"type": "integer", "minimum": 1, "maximum": MAX_PAGES, "default": 1000},
    "include": {**_PATTERNS, "description": "a URL is queued only if one of these matches its path and query"},
    "exclude": {**_PATTERNS, "description": "a URL any of these matches is left out"},
    "sitemap": {"type": "string", "enum": list(SITEMAP_MODES), "default": "include"},
    "robots": {"type": "string", "enum": list(ROBOTS_MODES), "default": "obey"},
    "ignore_query": {"type": "boolean", "default": False},
}
CRAWL_SCHEMAS: dict[str, Any] = {
    "Crawl": {
        "type": "object",
        "required": ["id", "status", "seeds", *_OPTIONS, "counts", "discovered", "skipped", "created_at",
                     "finished_at", "tags", "seeding"],
        "properties": {
            "id": {"type": "string"},
            "status": {"type": "string", "enum": ["running", "finished", "cancelled"]},
            "seeds": {"type": "array", "items": {"type": "string"}}, **_OPTIONS,
            "counts": {"type": "object", "properties": {s: _COUNT for s in STATUSES},
                       "description": "its pages by job status"},
            "discovered": {**_COUNT, "description": "pages queued (never more than max_pages)"},
            "skipped": {"type": "object", "properties": {k: _COUNT for k in CRAWL_SKIPS},
                        "description": "links not queued, by reason"},
            "created_at": {"type": "string", "format": "date-time"}, "finished_at": _TIME,
            "tags": {"type": "array", "items": {"type": "string"}},
            "seeding": {"type": "boolean", "description": "its sitemaps are still being read"},
        },
    },
}


def crawl_paths(common: dict[str, Any], limit: dict[str, Any], cursor: dict[str, Any]) -> dict[str, Any]:
    """POST and GET /crawls, GET and DELETE /crawls/{id}."""
    def answer(schema: dict[str, Any], text: str) -> dict[str, Any]:
        return {"description": text, "content": {"application/json": {"schema": schema}}}

    one = answer({"type": "object", "required": ["crawl"], "properties": {"crawl": ref("Crawl")}}, "the crawl")
    seed = {"type": "string", "minLength": 1, "maxLength": MAX_URL_LENGTH}
    request = {"type": "object", "description": "a seed (url) or up to 1,000 (urls), the crawl's fields, and any "
               "job field (applied to every page)", "oneOf": [{"required": ["url"]}, {"required": ["urls"]}],
               "properties": {
                   "url": seed, "urls": {"type": "array", "minItems": 1, "maxItems": MAX_SEEDS, "items": seed},
                   **_OPTIONS}}
    links = {name: {"operationId": name, "parameters": {"id": "$response.body#/crawl/id"}}
             for name in ("getCrawl", "cancelCrawl")}
    links["listCrawlTasks"] = {"operationId": "listTasks", "parameters": {"crawl": "$response.body#/crawl/id"}}
    by_id = {"name": "id", "in": "path", "required": True, "schema": {"type": "string", "pattern": ID_PATTERN},
             "description": "the crawl id"}
    return {
        f"{API}/crawls": {
            "post": {"summary": "Start a crawl: follow links from seed pages within a scope",
                     "operationId": "startCrawl",
                     "requestBody": {"required": True, "content": {"application/json": {"schema": request}}},
                     "responses": {"201": {**one, "headers": {"Location": {"schema": {"type": "string"},
                                                                           "required": True}}, "links": links},
                                   "400": answer(ref("Error"), "a bad field (named in the message)"),
                                   "403": answer(ref("Error"), "a read-only token"),
                                   "413": answer(ref("Error"), "request body too large"), **common}},
            "get": {"summary": "Crawls, newest first", "operationId": "listCrawls", "parameters": [limit, cursor],
                    "responses": {"200": answer({"type": "object", "required": ["crawls", "next"], "properties": {
                        "crawls": {"type": "array", "items": ref("Crawl")}, "next": {"type": ["string", "null"]}}},
                        "a page of crawls"), "400": answer(ref("Error"), "bad limit or cursor"), **common}},
        },
        f"{API}/crawls/{{id}}": {
            "parameters": [by_id],
            "get": {"summary": "One crawl with its pages counted", "operationId": "getCrawl",
                    "responses": {"200": one, "404": answer(ref("Error"), "unknown id"), **common}},
            "delete": {"summary": "Stop a crawl and cancel its unfinished pages", "operationId": "cancelCrawl",
                       "responses": {"200": one, "404": answer(ref("Error"), "unknown id"),
                                     "403": answer(ref("Error"), "a read-only token"), **common}},
        },
    }
