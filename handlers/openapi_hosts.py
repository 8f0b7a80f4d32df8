"""The OpenAPI description of `/hosts`: per-host pacing, listed, shown and set (jobqueue/hosts.py)."""

from __future__ import annotations

from typing import Any

from jobqueue.filters import MAX_TEXT
from jobqueue.hosts import MAX_CONCURRENCY, MAX_DELAY_MS, RECENT

from .openapi_schemas import ref

API = "/jobqueue/api/v1.0"


def _policy(nullable: bool) -> dict[str, Any]:
    """The three fields of a policy: stored (null: the server's default) or in effect (defaults filled in)."""
    def kind(name: str) -> list[str] | str:
        return [name, "null"] if nullable else name

    return {"type": "object", "required": ["max_concurrency", "min_delay_ms", "paused"], "properties": {
        "max_concurrency": {"type": kind("integer"), "minimum": 1, "maximum": MAX_CONCURRENCY,
                            "description": "fetches in flight at once to the host (null: --per-host)"},
        "min_delay_ms": {"type": kind("integer"), "minimum": 0, "maximum": MAX_DELAY_MS,
                         "description": "milliseconds between two fetch starts at the host (null: --host-delay)"},
        "paused": {"type": kind("boolean"), "description": "the host's jobs stay queued"}}}


HOST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["host", "policy", "effective", "next_start_at", "queued", "running", "recent"],
    "properties": {
        "host": {"type": "string", "description": "the host name as jobs store it (lower case, ASCII, no port)"},
        "policy": _policy(True) | {"description": "what was set by PUT (null: the server's default)"},
        "effective": _policy(False) | {"description": "what applies, the server's defaults filled in"},
        "next_start_at": {"type": ["string", "null"], "format": "date-time",
                          "description": "no fetch of the host starts before this time (its delay, or a "
                                         "Retry-After); null when one may start now"},
        "queued": {"type": "integer"},
        "running": {"type": "integer"},
        "recent": {"type": "object", "description": f"the jobs of the host that finished in the last {RECENT} s",
                   "properties": {"seconds": {"type": "integer"}, "finished": {"type": "integer"},
                                  "failed": {"type": "integer"}, "http_errors": {"type": "integer"},
                                  "error_rate": {"type": ["number", "null"],
                                                 "description": "(failed + HTTP 4xx/5xx) / finished; null when "
                                                                "none finished"}}},
    },
}


def host_paths(common: dict[str, Any], limit: dict[str, Any], cursor: dict[str, Any]) -> dict[str, Any]:
    """GET /hosts, GET and PUT /hosts/{host}."""
    def answer(schema: dict[str, Any], text: str) -> dict[str, Any]:
        return {"description": text, "content": {"application/json": {"schema": schema}}}

    def error(text: str) -> dict[str, Any]:
        return answer(ref("Error"), text)

    one = answer({"type": "object", "required": ["host"], "properties": {"host": HOST_SCHEMA}}, "the host")
    page = answer({"type": "object", "required": ["hosts", "next"], "properties": {
        "hosts": {"type": "array", "items": HOST_SCHEMA}, "next": {"type": ["string", "null"]}}},
        "a page of hosts with unfinished jobs or a policy, by name")
    change = _policy(True) | {"required": [], "additionalProperties": False,
                              "description": "a field left out stays as it is; null resets it"}
    host = {"name": "host", "in": "path", "required": True,
            "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": r"^[^/\s]+$"},
            "description": "a host name as jobs store it (an internationalized one is also taken in Unicode, and "
                           "made ASCII as submissions make it)"}
    return {
        f"{API}/hosts": {
            "get": {"summary": "Hosts with unfinished jobs or a pacing policy, by name", "operationId": "listHosts",
                    "parameters": [{"name": "q", "in": "query", "required": False,
                                    "schema": {"type": "string", "maxLength": MAX_TEXT},
                                    "description": "only hosts whose name contains this"}, limit, cursor],
                    "responses": {"200": page, "400": error("bad q, limit or cursor"), **common}},
        },
        f"{API}/hosts/{{host}}": {
            "parameters": [host],
            "get": {"summary": "One host's policy, next start time, jobs and recent error rate",
                    "operationId": "getHost",
                    "responses": {"200": one, "400": error("not a host name (invalid_host)"),
                                  "404": error("a host with no unfinished job and no policy"), **common}},
            "put": {"summary": "Set a host's pacing policy, kept for every process", "operationId": "setHostPolicy",
                    "requestBody": {"required": True, "content": {"application/json": {"schema": change}}},
                    "responses": {"200": one,
                                  "400": error("not a host name (invalid_host), not an object (invalid_policy), an "
                                               "unknown field, a value out of range (invalid_field)"),
                                  "403": error("a read-only token"), "413": error("request body too large"),
                                  **common}},
        },
    }
