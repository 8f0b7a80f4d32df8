"""The OpenAPI 3.1 description of the API: the one place it is written, served as-is."""

from __future__ import annotations

from typing import Any

from jobqueue import __version__
from jobqueue.models import STATUSES

API = "/jobqueue/api/v1.0"
_NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description, "content": {"application/json": {"schema": schema}}}
    if headers:
        out["headers"] = headers
    return out


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


_ID = {"name": "id", "in": "path", "required": True,
       "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"}, "description": "the task id"}
_LIMIT = {"name": "limit", "in": "query", "required": False,
          "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50},
          "description": "page size; an empty value is refused. Beside a cursor it sets the size from there on"}
_STATUS = {"name": "status", "in": "query", "required": False, "schema": {"type": "string", "enum": list(STATUSES)},
           "description": "only tasks in this state; an empty value is refused"}
_CURSOR = {"name": "cursor", "in": "query", "required": False, "schema": {"type": "string"},
           "description": "the `next` value of the previous page, unchanged; empty means the first page. It "
                          "carries the listing's filters and limit, so `?cursor=` alone continues the same query; "
                          "a filter different from the cursor's is refused with 400 `invalid_cursor`"}
_RETRY_AFTER = {"Retry-After": {"schema": {"type": "string"}, "description": "seconds to wait"}}
_URL = {"type": "string", "minLength": 1, "maxLength": 2048,
        "description": "http(s) URL; without a scheme it means https://. A URL naming a private or local "
                       "address, another scheme, or no valid host is refused with 400"}
_FORM = {"type": "object", "anyOf": [{"required": ["url"]}, {"required": ["urls"]}],
         "properties": {"url": {"type": "string", "description": "one URL (or several, one per line)"},
                        "urls": {"type": "string", "description": "URLs, one per line; the answer is a list"}}}
_COMMON = {"401": _error("missing or wrong API token"), "503": _error("the database did not answer")}

SCHEMAS: dict[str, Any] = {
    "ErrorBody": {"type": "object", "required": ["code", "message"],
                  "properties": {"code": {"type": "string"}, "message": {"type": "string"}}},
    "Error": {
        "type": "object", "required": ["error"],
        "properties": {
            "error": _ref("ErrorBody"),
            "task": _ref("Task"),
        },
    },
    "TaskError": {"type": ["object", "null"], "required": ["code", "message"],
                  "properties": {"code": {"type": "string"}, "message": {"type": "string"}}},
    "Task": {
        "type": "object",
        "required": ["id", "url", "status", "attempts", "created_at", "started_at", "finished_at", "http_status",
                     "error"],
        "properties": {
            "id": {"type": "string"}, "url": {"type": "string"},
            "status": {"type": "string", "enum": list(STATUSES)},
            "attempts": {"type": "integer", "minimum": 0},
            "created_at": {"type": "string", "format": "date-time"},
            "updated_at": {"type": "string", "format": "date-time"},
            "started_at": _NULLABLE_TIME, "finished_at": _NULLABLE_TIME,
            "http_status": {"type": ["integer", "null"]},
            "error": _ref("TaskError"),
        },
    },
    "Counts": {"type": "object", "required": list(STATUSES),
               "properties": {s: {"type": "integer", "minimum": 0} for s in STATUSES}},
    "Result": {
        "type": "object",
        "required": ["id", "url", "final_url", "http_status", "headers", "content_type", "encoding", "size",
                     "truncated", "elapsed_ms", "fetched_at"],
        "properties": {
            "id": {"type": "string"}, "url": {"type": "string"}, "final_url": {"type": "string"},
            "http_status": {"type": "integer"},
            "headers": {"type": "object", "additionalProperties": {"type": "string"}},
            "content_type": {"type": ["string", "null"]}, "encoding": {"type": ["string", "null"]},
            "encoding_source": {"type": ["string", "null"], "enum": ["bom", "header", "meta", "detected", "default",
                                                                    None]},
            "size": {"type": "integer", "minimum": 0},
            "truncated": {"type": "boolean", "description": "always false: a body over the server's size limit "
                          "is never stored truncated; its task ends failed with error.code too_large"},
            "elapsed_ms": {"type": "number"}, "fetched_at": {"type": "string", "format": "date-time"},
            "sha256": {"type": "string"},
            "redirects": {"type": "array", "items": {"type": "object", "properties": {
                "url": {"type": "string"}, "status": {"type": "integer"}}}},
            "timings": {"type": "object", "additionalProperties": {"type": "number"}},
            "body": {"type": ["string", "null"], "description": "text for textual types, null for binary ones"},
        },
    },
    "Submission": {
        "oneOf": [
            {"type": "object", "required": ["url"], "properties": {"url": _URL}, "additionalProperties": False},
            {"type": "object", "required": ["urls"], "additionalProperties": False,
             "properties": {"urls": {"type": "array", "minItems": 1, "maxItems": 1000, "items": _URL}}},
        ],
    },
}


def _paths() -> dict[str, Any]:
    task = _json({"type": "object", "required": ["task"], "properties": {"task": _ref("Task")}}, "the task")
    return {
        f"{API}/queue_tasks": {
            "post": {
                "summary": "Queue one URL or many", "operationId": "submitTasks",
                "requestBody": {"required": True, "content": {
                    "application/json": {"schema": _ref("Submission")},
                    "text/plain": {"schema": {
                        "type": "string", "minLength": 1,
                        "description": "one URL per line, at most 1000; blank lines and lines starting with '#' "
                                       "are skipped. The answer is always a list (`tasks`); a bad line is a 400 "
                                       "naming its number"}},
                    "application/x-www-form-urlencoded": {"schema": _FORM},
                    "multipart/form-data": {"schema": _FORM},
                }},
                "responses": {
                    "201": {"description": "queued and stored durably", "content": {"application/json": {"schema": {
                        "oneOf": [
                            {"type": "object", "required": ["task"], "properties": {"task": _ref("Task")}},
                            {"type": "object", "required": ["tasks"],
                             "properties": {"tasks": {"type": "array", "items": _ref("Task")}}},
                        ]}}}, "headers": {"Location": {"schema": {"type": "string"}}},
                        "links": {name: {"operationId": name, "parameters": {"id": "$response.body#/task/id"}}
                                  for name in ("getTask", "cancelTask", "retryTask", "getResult", "getResultBody")}},
                    "400": _error("bad input: invalid JSON, form or text, a bad URL or scheme, a private address, "
                                  "more than 1000 URLs"),
                    "413": _error("request body too large"),
                    "415": _error("a body in another format: send application/json, text/plain or a form"),
                    "429": _json(_ref("Error"), "too many URLs from this client (--rate-limit URLs/s per client); "
                                 "wait Retry-After seconds", _RETRY_AFTER),
                    **_COMMON,
                    "503": _json(_ref("Error"), "the queue is full (queue_full), or the database did not answer",
                                 _RETRY_AFTER),
                },
            },
            "get": {
                "summary": "List tasks, newest first", "operationId": "listTasks",
                "parameters": [_STATUS, _LIMIT, _CURSOR],
                "responses": {
                    "200": _json({"type": "object", "required": ["tasks", "next", "counts"], "properties": {
                        "tasks": {"type": "array", "items": _ref("Task")},
                        "next": {"type": ["string", "null"]}, "counts": _ref("Counts")}}, "a page of tasks"),
                    "400": _error("bad limit, status or cursor"), **_COMMON,
                },
            },
        },
        f"{API}/queue_tasks/{{id}}": {
            "parameters": [_ID],
            "get": {"summary": "One task", "operationId": "getTask",
                    "responses": {"200": task, "404": _error("unknown id"), **_COMMON}},
            "delete": {"summary": "Cancel a task that has not finished", "operationId": "cancelTask",
                       "responses": {"200": task, "404": _error("unknown id"),
                                     "409": _error("already finished"), **_COMMON}},
        },
        f"{API}/queue_tasks/{{id}}/retry": {
            "parameters": [_ID],
            "post": {"summary": "Run a finished task again", "operationId": "retryTask",
                     "responses": {"200": task, "404": _error("unknown id"),
                                   "409": _error("not finished yet"), **_COMMON}},
        },
        f"{API}/results": {
            "get": {"summary": "Results of completed tasks, newest first, without bodies",
                    "operationId": "listResults", "parameters": [_LIMIT, _CURSOR],
                    "responses": {
                        "200": _json({"type": "object", "required": ["results", "next"], "properties": {
                            "results": {"type": "array", "items": _ref("Result")},
                            "next": {"type": ["string", "null"]}}}, "a page of results"),
                        "400": _error("bad limit or cursor"), **_COMMON}},
        },
        f"{API}/results/{{id}}": {
            "parameters": [_ID],
            "get": {"summary": "One result with its body as text", "operationId": "getResult",
                    "responses": {
                        "200": _json({"type": "object", "required": ["result"],
                                      "properties": {"result": _ref("Result")}}, "the result"),
                        "404": _error("unknown id"), "409": _error("the task has no result (yet)"), **_COMMON}},
        },
        f"{API}/results/{{id}}/body": {
            "parameters": [_ID, {"name": "download", "in": "query", "required": False, "schema": {"type": "string"},
                                 "description": "present: sent as an attachment"}],
            "get": {"summary": "The body exactly as fetched, with its original Content-Type",
                    "operationId": "getResultBody",
                    "responses": {
                        "200": {"description": "the raw body, sent with Content-Security-Policy: sandbox",
                                "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}}},
                        "404": _error("unknown id"), "409": _error("the task has no result (yet)"), **_COMMON}},
        },
        f"{API}/events": {
            "get": {"summary": "Websocket of task state changes (upgrade required)", "operationId": "events",
                    "description": "Messages: {type: task, task}, {type: hello}, {type: counts, counts}, "
                                   "{type: resync}. `?task_id=` (repeatable) filters; `?token=` authenticates.",
                    "parameters": [{"name": "task_id", "in": "query", "required": False,
                                    "schema": {"type": "array", "items": {"type": "string"}}, "explode": True}],
                    "responses": {"101": {"description": "switching to the websocket protocol"},
                                  "401": _error("missing or wrong API token"),
                                  "503": _error("too many event streams")}},
        },
        "/healthz": {
            "get": {"summary": "Health of the process and its database", "operationId": "health",
                    "security": [],
                    "responses": {
                        "200": _json({"type": "object", "required": ["status", "database"], "properties": {
                            "status": {"const": "ok"}, "database": {"enum": ["sqlite", "mongodb"]}}}, "healthy"),
                        "503": _json({"type": "object", "required": ["status", "database"], "properties": {
                            "status": {"const": "unavailable"}, "database": {"type": "string"},
                            "error": _ref("ErrorBody")}}, "the database does not answer")}},
        },
        "/metrics": {
            "get": {"summary": "Prometheus metrics", "operationId": "metrics",
                    "responses": {"200": {"description": "text exposition format",
                                          "content": {"text/plain": {"schema": {"type": "string"}}}},
                                  "401": _error("missing or wrong API token")}},
        },
        "/openapi.json": {
            "get": {"summary": "This description", "operationId": "openapi", "security": [],
                    "responses": {"200": _json({"type": "object"}, "the OpenAPI document")}},
        },
    }


def openapi_document(token_required: bool) -> dict[str, Any]:
    """The whole OpenAPI 3.1 document; the bearer scheme exists, and applies, only when the server needs a token.

    Then it is required globally, and /healthz and /openapi.json override that with `security: []`.
    """
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "jobqueue", "version": __version__,
                 "description": "Submit URLs; workers fetch and store them; a websocket streams every change."},
        "paths": _paths(),
        "components": {"schemas": SCHEMAS},
    }
    if token_required:
        doc["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        doc["security"] = [{"bearer": []}]
    return doc
