"""The OpenAPI description of the Firecrawl-compatible routes (/v2/... and /firecrawl/v2/...): their bodies are
Firecrawl's (docs/firecrawl.md has every field), so they are described as objects, with Firecrawl's answers."""

from __future__ import annotations

from typing import Any

_ERROR = {"type": "object", "required": ["success", "error"], "properties": {
    "success": {"const": False}, "error": {"type": "string", "description": "what is wrong or not supported"},
    "code": {"type": "string", "description": "jobqueue's error code (or Firecrawl's SCRAPE_TIMEOUT)"}}}
_BODY = {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}}
_ANSWER = {"type": "object", "required": ["success"], "properties": {"success": {"const": True}}}
_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"}}
_CURSOR = {"name": "cursor", "in": "query", "required": False, "schema": {"type": "string"},
           "description": "where the previous answer's `next` left off"}


def _json(schema: dict[str, Any], text: str) -> dict[str, Any]:
    return {"description": text, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: str) -> dict[str, Any]:
    said = {"400": "a field or value jobqueue does not do, or a bad one, named", "401": "no valid API token",
            "403": "a read-only token, or a URL the address guard or robots.txt refuses", "404": "no such id",
            "408": "the scrape did not finish within its timeout", "409": "it has finished already",
            "413": "request body too large", "429": "over the rate limit",
            "422": "the fetch failed (the error says why)",
            "503": "the service is unavailable"}
    return {s: _json(_ERROR, said[s]) for s in statuses}


def _operation(summary: str, op_id: str, body: bool, *errors: str, params: list[Any] | None = None) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": summary, "operationId": op_id, "tags": ["firecrawl"],
                                 "description": "Firecrawl API v2 (docs/firecrawl.md)",
                                 "responses": {"200": _json(_ANSWER, "Firecrawl's answer"),
                                               **_errors("401", "429", "503", *errors)}}
    if body:
        operation["requestBody"] = _BODY
    if params:
        operation["parameters"] = params
    return operation


def firecrawl_paths() -> dict[str, Any]:
    """The Firecrawl routes under both prefixes."""
    paths: dict[str, Any] = {}
    for prefix, name in (("", ""), ("/firecrawl", "Prefixed")):
        v2 = f"{prefix}/v2"
        paths.update({
            f"{v2}/scrape": {"post": _operation("Scrape one page, answered when its job is done", f"fcScrape{name}",
                                                True, "400", "403", "408", "413", "422")},
            f"{v2}/map": {"post": _operation("A site's URLs (jobqueue's map)", f"fcMap{name}", True, "400", "403",
                                             "413")},
            f"{v2}/crawl": {"post": _operation("Start a crawl", f"fcCrawl{name}", True, "400", "403", "413")},
            f"{v2}/crawl/{{id}}": {
                "get": _operation("A crawl's status and documents, paged by next", f"fcCrawlStatus{name}", False,
                                  "400", "404", params=[_ID, _CURSOR]),
                "delete": _operation("Cancel a crawl", f"fcCrawlCancel{name}", False, "403", "404", "409",
                                     params=[_ID])},
            f"{v2}/crawl/{{id}}/errors": {"get": _operation("A crawl's failed pages", f"fcCrawlErrors{name}", False,
                                                            "404", params=[_ID])},
            f"{v2}/batch/scrape": {"post": _operation("Start a batch scrape", f"fcBatch{name}", True, "400", "403",
                                                      "413")},
            f"{v2}/batch/scrape/{{id}}": {
                "get": _operation("A batch scrape's status and documents, paged by next", f"fcBatchStatus{name}",
                                  False, "400", "404", params=[_ID, _CURSOR]),
                "delete": _operation("Cancel a batch scrape", f"fcBatchCancel{name}", False, "403", "404", "409",
                                     params=[_ID])},
            f"{v2}/batch/scrape/{{id}}/errors": {"get": _operation("A batch scrape's failed jobs",
                                                                   f"fcBatchErrors{name}", False, "404",
                                                                   params=[_ID])},
        })
    return paths
