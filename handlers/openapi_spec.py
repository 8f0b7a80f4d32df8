"""The OpenAPI 3.1 description of the API: the one place it is written, served as-is."""

from __future__ import annotations

from typing import Any

from jobqueue import __version__
from jobqueue.models import STATUSES
from jobqueue.service import MAX_BATCH, MAX_BATCH_URLS
from jobqueue.spec import SpecLimits

from .openapi_crawls import CRAWL_SCHEMAS, crawl_paths
from .openapi_firecrawl import firecrawl_paths
from .openapi_history import HISTORY_SCHEMAS, history_paths
from .openapi_hosts import host_paths
from .openapi_map import map_paths
from .openapi_schemas import ID_PATTERN, TAG_PATTERN, ref, schemas, spec_query
from .openapi_webhooks import webhook_paths

API = "/jobqueue/api/v1.0"

_VIEW = "(markdown|text|links|metadata)"
_WITH_VIEWS = f"^(|all|{_VIEW}(,{_VIEW})*)$"


def _json(schema: dict[str, Any], description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description, "content": {"application/json": {"schema": schema}}}
    if headers:
        out["headers"] = headers
    return out


def _error(description: str) -> dict[str, Any]:
    return _json(ref("Error"), description)


def _id(what: str) -> dict[str, Any]:
    return {"name": "id", "in": "path", "required": True, "schema": {"type": "string", "pattern": ID_PATTERN},
            "description": f"the {what} id"}


def _query(name: str, schema: dict[str, Any], description: str = "") -> dict[str, Any]:
    out = {"name": name, "in": "query", "required": False, "schema": schema}
    if description or "description" in schema:
        out["description"] = description or schema["description"]
    return out


_LIMIT = _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50},
                "page size; an empty value is refused. Beside a cursor it sets the size from there on")
_STATUS = _query("status", {"type": "string", "enum": list(STATUSES)}, "only tasks in this state; an empty value "
                 "is refused")
_BATCH = _query("batch", {"type": "string", "pattern": ID_PATTERN}, "only the jobs of this batch")
_FILTERS = [
    _STATUS, _BATCH, _query("crawl", {"type": "string", "pattern": ID_PATTERN}, "only the pages of this crawl"),
    _query("tag", {"type": "string", "pattern": TAG_PATTERN}, "only jobs with this tag"),
    _query("host", {"type": "string", "pattern": "^[A-Za-z0-9.:\\[\\]_-]{1,255}$"},
           "only jobs for this host name, in the ASCII form jobs show (a name typed beyond ASCII is made ASCII by "
           "IDNA too, as submitted URLs' hosts are)"),
    _query("http_status", {"type": "string", "pattern": "^[1-5]([0-9]{2}|[xX]{2})$"},
           "only jobs whose answer had this status (404) or class (4xx)"),
    _query("error", {"type": "string", "pattern": "^[a-z_]{1,64}$"}, "only jobs whose error has this code"),
    _query("url", {"type": "string", "minLength": 1, "maxLength": 200},
           "only jobs whose URL contains this text (any case; control characters are removed): as typed, or as "
           "submissions store it (beyond ASCII percent-encoded as UTF-8, a leading host name made ASCII by IDNA)"),
    _query("since", {"type": "string", "format": "date-time"}, "only jobs created at or after this time"),
    _query("until", {"type": "string", "format": "date-time"}, "only jobs created at or before this time"),
]
_BULK_FILTER = {
    "description": "the filters of GET /queue_tasks, or {all: true}",
    "oneOf": [
        {"type": "object", "required": ["all"], "additionalProperties": False, "properties": {"all": {"const": True}}},
        {"type": "object", "minProperties": 1, "additionalProperties": False,
         "properties": {p["name"]: p["schema"] for p in _FILTERS}},
    ],
}
_CURSOR = _query("cursor", {"type": "string"}, "the `next` value of the previous page, unchanged; empty means the "
                 "first page. It carries the listing's filters and limit, so `?cursor=` alone continues the same "
                 "query; a filter different from the cursor's is refused with 400 `invalid_cursor`")
_RETRY_AFTER = {"Retry-After": {"schema": {"type": "string"}, "description": "seconds to wait"}}
_REPLAYED = {"Idempotent-Replayed": {"schema": {"type": "string", "const": "true"},
                                     "description": "present on the stored first answer to a repeated Idempotency-Key"}}
_IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key", "in": "header", "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[\\x20-\\x7e]{1,255}$"},
    "description": "makes the request happen once: a repeat with the same key and body within 24 hours gets the "
                   "first answer again (same status and ids, with `Idempotent-Replayed: true`) and creates nothing. "
                   "Keys are kept per token (per client address without tokens); a malformed key is a 400",
}


def _spec_query(limits: SpecLimits) -> list[dict[str, Any]]:
    """The job fields as query parameters: only a text/plain or form submission has no JSON to carry them."""
    out = []
    for name, schema, said, repeated in spec_query(limits):
        parameter = _query(name, schema, f"{said}. Read only beside a text/plain or form body (a JSON body carries "
                           "its own fields); each but `tag` may be given once")
        out.append({**parameter, "style": "form", "explode": True} if repeated else parameter)
    return out


_FORM = {"type": "object", "anyOf": [{"required": ["url"]}, {"required": ["urls"]}],
         "properties": {"url": {"type": "string", "description": "one URL (or several, one per line)"},
                        "urls": {"type": "string", "description": "URLs, one per line; the answer is a list"}}}
_COMMON = {"401": _error("missing or wrong API token"), "503": _error("the database did not answer")}


def _submission_body(schema: str, max_urls: int) -> dict[str, Any]:
    """The four ways to send URLs, shared by POST /queue_tasks and POST /batches."""
    text = (f"one URL per line, at most {max_urls}; blank lines and lines starting with '#' are skipped, and a bad "
            "line is a 400 naming its number. Job fields come as query parameters. A body starting with '{' is "
            "read as JSON")
    return {"required": True, "content": {
        "application/json": {"schema": ref(schema)},
        "text/plain": {"schema": {"type": "string", "minLength": 1, "description": text}},
        "application/x-www-form-urlencoded": {"schema": _FORM},
        "multipart/form-data": {"schema": _FORM},
    }}


def _submission_errors(max_urls: int) -> dict[str, Any]:
    return {
        "400": _error(f"bad input, nothing stored: invalid JSON, form or text, a bad URL, scheme or private "
                      f"address, a bad or unknown field, more than {max_urls} URLs (batch_too_large), a malformed "
                      "Idempotency-Key"),
        "409": _error("idempotency_key_in_use: a request with this Idempotency-Key is still being processed; "
                      "too_many_schedules: its recurring jobs (every) would pass --max-schedules active schedules"),
        "413": _error("request body too large"),
        "415": _error("a body in another format: send application/json, text/plain or a form"),
        "422": _error("idempotency_key_reused: this Idempotency-Key came with another body in the last 24 hours"),
        "429": _json(ref("Error"), "too many URLs from this client (--rate-limit URLs/s per client); wait "
                     "Retry-After seconds", _RETRY_AFTER),
        **_COMMON,
        "503": _json(ref("Error"), "the queue is full (queue_full), or the database did not answer", _RETRY_AFTER),
    }


def _one(kind: str) -> dict[str, Any]:
    return {"type": "object", "required": [kind], "properties": {kind: ref(kind.capitalize())}}


def _task_paths(spec_query: list[dict[str, Any]]) -> dict[str, Any]:
    task = _json(_one("task"), "the task")
    links = {name: {"operationId": name, "parameters": {"id": "$response.body#/task/id"}}
             for name in ("getTask", "cancelTask", "retryTask", "getResult", "getResultBody")}
    return {
        f"{API}/queue_tasks": {
            "post": {
                "summary": f"Queue one URL or up to {MAX_BATCH}, with job options", "operationId": "submitTasks",
                "parameters": [_IDEMPOTENCY_KEY, *spec_query],
                "requestBody": _submission_body("Submission", MAX_BATCH),
                "responses": {
                    "201": {"description": "queued and stored durably; `{\"task\"}` with a Location for a single "
                                           "url, else `{\"tasks\"}`",
                            "content": {"application/json": {"schema": {"oneOf": [
                                _one("task"),
                                {"type": "object", "required": ["tasks"],
                                 "properties": {"tasks": {"type": "array", "items": ref("Task")}}},
                            ]}}},
                            "headers": {"Location": {"schema": {"type": "string"}}, **_REPLAYED}, "links": links},
                    **_submission_errors(MAX_BATCH),
                },
            },
            "get": {
                "summary": "List tasks, newest first", "operationId": "listTasks",
                "parameters": [*_FILTERS, _LIMIT, _CURSOR],
                "responses": {
                    "200": _json({"type": "object", "required": ["tasks", "next", "counts"], "properties": {
                        "tasks": {"type": "array", "items": ref("Task")},
                        "next": {"type": ["string", "null"]},
                        "counts": {**ref("Counts"), "description": "of the whole queue, whatever the filter"},
                        "matched": {"type": "integer", "minimum": 0,
                                    "description": "jobs the whole filter matches; on the first page (no cursor), "
                                                   "left out when the store cannot count them cheaply"},
                        "matched_counts": {**ref("Counts"), "description": "jobs the filter without its status "
                                                                           "matches, by status; given with matched"}}},
                        "a page of tasks"),
                    "400": _error("bad limit, status, batch or cursor"), **_COMMON,
                },
            },
        },
        f"{API}/queue_tasks/bulk": {
            "post": {"summary": "Cancel, retry or delete every job a filter matches, or the jobs named",
                     "operationId": "bulk",
                     "requestBody": {"required": True, "content": {"application/json": {"schema": {
                         "type": "object", "required": ["action"], "additionalProperties": False,
                         "oneOf": [{"required": ["filter"]}, {"required": ["ids"]}],
                         "properties": {"action": {"enum": ["cancel", "retry", "delete"]},
                                        "filter": _BULK_FILTER,
                                        "ids": {"type": "array", "minItems": 1, "maxItems": 1000,
                                                "items": {"type": "string", "pattern": ID_PATTERN},
                                                "description": "instead of a filter: exactly these jobs (those in "
                                                               "a state the action applies to)"},
                                        "dry_run": {"type": "boolean", "description": "true: only count the "
                                                    "jobs the action would match (changed: 0)"}}}}}},
                     "responses": {"200": _json({"type": "object", "required": ["action", "matched", "changed"],
                                                 "properties": {"action": {"type": "string"},
                                                                "matched": {"type": "integer"},
                                                                "changed": {"type": "integer"},
                                                                "changed_ids": {
                                                                    "type": "array", "items": {"type": "string"},
                                                                    "description": "the jobs changed, when at "
                                                                    "most 1,000 (absent beyond)"}}}, "done"),
                                   "400": _error("bad action or filter, or an empty filter"), **_COMMON}},
        },
        f"{API}/queue_tasks/{{id}}": {
            "parameters": [_id("task")],
            "get": {"summary": "One task", "operationId": "getTask",
                    "responses": {"200": task, "404": _error("unknown id"), **_COMMON}},
            "delete": {"summary": "Cancel a task that has not finished, or with purge=true delete a finished one",
                       "operationId": "cancelTask",
                       "parameters": [_query("purge", {"type": "boolean", "default": False},
                                             "delete a finished job for good, with its result and its body "
                                             "unless another result has it")],
                       "responses": {"200": _json({"oneOf": [_one("task"), {
                           "type": "object", "required": ["deleted"], "properties": {"deleted": {"type": "string"}}}]},
                           "the cancelled task, or `{\"deleted\": id}` for a purge"),
                           "400": _error("purge is not true or false"), "404": _error("unknown id"),
                           "409": _error("cancel: already finished; purge: still queued or running"), **_COMMON}},
        },
        f"{API}/queue_tasks/{{id}}/retry": {
            "parameters": [_id("task")],
            "post": {"summary": "Run a finished task again, with its stored options", "operationId": "retryTask",
                     "responses": {"200": task, "404": _error("unknown id"),
                                   "409": _error("not finished yet"), **_COMMON}},
        },
    }


def _batch_paths(spec_query: list[dict[str, Any]]) -> dict[str, Any]:
    batch = _json(_one("batch"), "the batch with its counts")
    links = {name: {"operationId": name, "parameters": {"id": "$response.body#/batch/id"}}
             for name in ("getBatch", "cancelBatch", "retryBatch")}
    links["listBatchTasks"] = {"operationId": "listTasks", "parameters": {"batch": "$response.body#/batch/id"}}
    unknown = _error("no batch has this id (not_found)")
    return {
        f"{API}/batches": {
            "post": {
                "summary": f"Queue up to {MAX_BATCH_URLS} URLs as one batch", "operationId": "createBatch",
                "description": "The same bodies as POST /queue_tasks. Every URL and field is checked first: one bad "
                               "line refuses the whole batch and nothing is stored",
                "parameters": [_IDEMPOTENCY_KEY, *spec_query],
                "requestBody": _submission_body("BatchSubmission", MAX_BATCH_URLS),
                "responses": {
                    "201": {"description": "every job stored durably",
                            "content": {"application/json": {"schema": _one("batch")}},
                            "headers": {"Location": {"schema": {"type": "string"}, "required": True}, **_REPLAYED},
                            "links": links},
                    **_submission_errors(MAX_BATCH_URLS),
                },
            },
            "get": {
                "summary": "List batches, newest first", "operationId": "listBatches",
                "parameters": [_LIMIT, _CURSOR],
                "responses": {
                    "200": _json({"type": "object", "required": ["batches", "next"], "properties": {
                        "batches": {"type": "array", "items": ref("Batch")},
                        "next": {"type": ["string", "null"]}}}, "a page of batches"),
                    "400": _error("bad limit or cursor"), **_COMMON,
                },
            },
        },
        f"{API}/batches/{{id}}": {
            "parameters": [_id("batch")],
            "get": {"summary": "One batch with its counts", "operationId": "getBatch",
                    "responses": {"200": batch, "404": unknown, **_COMMON}},
            "delete": {"summary": "Cancel every unfinished job of a batch", "operationId": "cancelBatch",
                       "responses": {"200": batch, "404": unknown, **_COMMON}},
        },
        f"{API}/batches/{{id}}/retry": {
            "parameters": [_id("batch")],
            "post": {"summary": "Queue the failed jobs of a batch again", "operationId": "retryBatch",
                     "responses": {"200": batch, "404": unknown, **_COMMON}},
        },
    }


def _result_paths() -> dict[str, Any]:
    return {
        f"{API}/results": {
            "get": {"summary": "Results of completed tasks, newest first, without bodies",
                    "operationId": "listResults", "parameters": [*_FILTERS, _LIMIT, _CURSOR],
                    "responses": {
                        "200": _json({"type": "object", "required": ["results", "next"], "properties": {
                            "results": {"type": "array", "items": ref("Result")},
                            "next": {"type": ["string", "null"]}}}, "a page of results"),
                        "400": _error("bad limit or cursor"), **_COMMON}},
        },
        f"{API}/results/{{id}}": {
            "parameters": [_id("task")],
            "get": {"summary": "One result with its body as text", "operationId": "getResult",
                    "responses": {
                        "200": _json(_one("result"), "the result"),
                        "404": _error("unknown id"), "409": _error("the task has no result (yet)"), **_COMMON}},
        },
        f"{API}/results/{{id}}/body": {
            "parameters": [_id("task"), _query("download", {"type": "string"}, "present: sent as an attachment")],
            "get": {"summary": "The body exactly as fetched, with its original Content-Type",
                    "operationId": "getResultBody",
                    "responses": {
                        "200": {"description": "the raw body, sent with Content-Security-Policy: sandbox",
                                "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}}},
                        "404": _error("unknown id"), "409": _error("the task has no result (yet)"), **_COMMON}},
            "head": {"summary": "The headers GET would send for the body (type, length), without it",
                     "operationId": "headResultBody",
                     "responses": {"200": {"description": "the body's headers, no body"},
                                   **{status: {"description": f"as GET: {status}, without a body"}
                                      for status in ("401", "404", "409", "503")}}},
        },
        **{f"{API}/results/{{id}}/{kind}": {
            "parameters": [_id("task")],
            "get": {"summary": f"The {what} a rendered job's `capture` asked for",
                    "operationId": f"getResult{kind.capitalize()}",
                    "responses": {
                        "200": {"description": f"the {what}", "content": {media: {"schema": {
                            "type": "string", "format": "binary"}}}},
                        "404": _error("unknown id, or not_captured: the job was not rendered, its capture did not ask "
                                      f"for a {kind}, or it has not completed"), **_COMMON}},
        } for kind, what, media in (("screenshot", "PNG screenshot", "image/png"), ("pdf", "PDF", "application/pdf"))},
        **_readable_paths(),
    }


def _readable_paths() -> dict[str, Any]:
    """/results/:id/markdown, /text and /links: views extracted once per stored body (docs/API.md)."""
    link = {"type": "object", "required": ["url", "text", "rel"], "properties": {
        "url": {"type": "string"}, "text": {"type": "string"}, "rel": {"type": "string"}}}
    links = {"type": "object", "required": ["links"], "properties": {"links": {"type": "array", "items": link}}}
    views = {
        "markdown": ("The page as Markdown: its main content, or the whole page with ?main_content=false",
                     {"text/markdown": {"schema": {"type": "string"}}}),
        "text": ("The main content as plain text", {"text/plain": {"schema": {"type": "string"}}}),
        "links": ("Every link of the page, resolved and normalized, each once, in page order",
                  {"application/json": {"schema": links}}),
    }
    main_content = _query("main_content", {"type": "boolean", "default": True},
                          "false: the whole page (navigation, header, footer and sidebars included)")
    return {f"{API}/results/{{id}}/{kind}": {
        "parameters": [_id("task"), *([main_content] if kind == "markdown" else [])],
        "get": {"summary": summary, "operationId": f"getResult{kind.capitalize()}",
                "responses": {
                    "200": {"description": f"the {kind}", "content": content},
                    "400": _error("main_content is not true or false"),
                    "404": _error("unknown id"), "409": _error("the task has no result (yet)"),
                    "415": _error("not_html: the body is neither HTML nor text"),
                    "422": _error("extraction_failed: the extractor broke on this page"),
                    **_COMMON,
                    "503": _error("extraction_timeout: the page took longer than --extract-timeout; or the "
                                  "database did not answer")}},
    } for kind, (summary, content) in views.items()}


def _export_paths() -> dict[str, Any]:
    formats = {"application/x-ndjson": {"schema": {"type": "string"}}, "text/csv": {"schema": {"type": "string"}},
               "application/warc": {"schema": {"type": "string", "format": "binary"}}}
    return {
        f"{API}/export": {
            "get": {"summary": "Every matching job, streamed as a download", "operationId": "export",
                    "description": "jsonl: {task, result, body_base64} per line; csv: one row per job without "
                                   "bodies; warc: WARC/1.1, a request and a response record per completed fetch",
                    "parameters": [_query("format", {"type": "string", "enum": ["jsonl", "csv", "warc"],
                                                     "default": "jsonl"}),
                                   _query("with", {"type": "string", "pattern": _WITH_VIEWS,
                                                   "description": "jsonl only: readable views "
                                                   "for every job, comma-separated: markdown, text, links, "
                                                   "metadata or all (each job's own `formats` are carried "
                                                   "anyway)"}), *_FILTERS],
                    "responses": {"200": {"description": "the export, as an attachment", "content": formats},
                                  "400": _error("bad format or filter (before any byte is sent)"),
                                  "429": _error("too many exports at once (too_many_exports)"), **_COMMON}},
        },
    }


def _operation_paths() -> dict[str, Any]:
    return {
        f"{API}/events": {
            "get": {"summary": "Websocket of task state changes (upgrade required)", "operationId": "events",
                    "description": "Messages: {type: task, task}, {type: hello}, {type: counts, counts}, "
                                   "{type: resync}. `?task_id=` (repeatable) filters; `?batch=` sends frames of "
                                   "{type: batch, messages}; `?token=` authenticates.",
                    "parameters": [{"name": "task_id", "in": "query", "required": False,
                                    "schema": {"type": "array", "items": {"type": "string"}}, "explode": True},
                                   {"name": "batch", "in": "query", "required": False, "schema": {"type": "string"},
                                    "description": "present (any value, e.g. 1): messages come packed as "
                                                   "{type: batch, messages: [...]} frames at most 0.1 s apart"},
                                   {"name": "token", "in": "query", "required": False, "schema": {"type": "string"},
                                    "description": "the API token, for clients that cannot set Authorization "
                                                   "(browsers)"}],
                    "responses": {"101": {"description": "switching to the websocket protocol"},
                                  "400": _error("before the upgrade: a query parameter the stream does not read "
                                                "(unknown_parameter), or one that is not UTF-8 text "
                                                "(invalid_parameter)"),
                                  "401": _error("missing or wrong API token"),
                                  "503": _error("too many event streams")}},
        },
        "/healthz": {
            "get": {"summary": "Health of the process and its database (read-only, answered within 3 s)",
                    "operationId": "health",
                    "security": [],
                    "responses": {
                        "200": _json({"type": "object", "required": ["status", "database"], "properties": {
                            "status": {"enum": ["ok", "degraded"]}, "database": {"enum": ["sqlite", "mongodb"]},
                            "rendering": {"type": "object", "properties": {
                                "available": {"type": "boolean"}, "browsers": {"type": "integer", "minimum": 0}},
                                "description": "whether this process renders jobs with `render`"},
                            "warning": ref("ErrorBody")}},
                            "healthy; `degraded` (with a `warning` such as database_slow) when the database answers "
                            "but slowly"),
                        "503": _json({"type": "object", "required": ["status", "database"], "properties": {
                            "status": {"const": "unavailable"}, "database": {"type": "string"},
                            "error": ref("ErrorBody")}}, "the database does not answer")}},
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


def _every_operation_may_refuse_its_query(paths: dict[str, Any]) -> None:
    """Any operation answers 400 to a query parameter it does not read, or one that is not UTF-8."""
    said = "a query parameter this operation does not read (unknown_parameter), or one that is not UTF-8 text " \
           "(invalid_parameter)"
    for path, item in paths.items():
        if path.endswith("/events"):
            continue  # the websocket reads its own query
        for method, operation in item.items():
            if isinstance(operation, dict) and "responses" in operation:
                operation["responses"].setdefault("400", {"description": said} if method == "head" else _error(said))


def openapi_document(token_required: bool, limits: SpecLimits | None = None) -> dict[str, Any]:
    """The whole OpenAPI 3.1 document; the bearer scheme exists, and applies, only when the server needs a token.

    Then it is required globally, and /healthz and /openapi.json override that with `security: []`. The job
    fields' limits are the server's own (`limits`; the defaults without one), `every`'s minimum its --min-every.
    """
    limits = limits or SpecLimits()
    parameters = _spec_query(limits)
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "jobqueue", "version": __version__,
                 "description": "Submit URLs, alone or as batches, with per-job fetch options; workers fetch and "
                                "store them; a websocket streams every change."},
        "paths": {**_task_paths(parameters), **_batch_paths(parameters), **_result_paths(), **_export_paths(),
                  **webhook_paths(_COMMON, _LIMIT, _CURSOR), **history_paths(_COMMON, _LIMIT, _CURSOR),
                  **map_paths(_COMMON), **crawl_paths(_COMMON, _LIMIT, _CURSOR), **host_paths(_COMMON, _LIMIT, _CURSOR),
                  **_operation_paths(), **firecrawl_paths()},
        "components": {"schemas": {**schemas(limits), **HISTORY_SCHEMAS, **CRAWL_SCHEMAS}},
    }
    _every_operation_may_refuse_its_query(doc["paths"])
    if token_required:
        doc["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        doc["security"] = [{"bearer": []}]
    return doc
