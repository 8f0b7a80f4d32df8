"""The OpenAPI component schemas: what a task, result, batch and submission look like on the wire.

The limits come from the modules that enforce them (jobqueue/spec.py, jobqueue/service.py), so the
document cannot drift from the server; `null` is allowed wherever the server reads it as "not given".
"""

from __future__ import annotations

from typing import Any

from jobqueue.models import STATUSES
from jobqueue.service import MAX_BATCH, MAX_BATCH_URLS
from jobqueue.spec import (
    FORBIDDEN_HEADERS,
    MAX_AGE_LIMIT,
    MAX_HEADER_VALUE,
    MAX_HEADERS,
    MAX_POST_BODY,
    MAX_TAGS,
    METHODS,
)
from jobqueue.webhooks.delivery import DELIVERY_STATUSES
from jobqueue.webhooks.spec import EVENTS

NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}
ID_PATTERN = "^[A-Za-z0-9_-]{1,64}$"
TAG_PATTERN = "^[A-Za-z0-9_.:-]{1,64}$"
ONE_LINE = "^[^\\x00-\\x08\\x0a-\\x1f\\x7f]*$"  # no control character but tab


def ref(name: str) -> dict[str, str]:
    """A reference to one of SCHEMAS."""
    return {"$ref": f"#/components/schemas/{name}"}


def _any_case(word: str) -> str:
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c for c in word)


# A header name is an HTTP token, and not one the fetcher sets itself (in any letter case).
_FORBIDDEN = "|".join(_any_case(name) for name in sorted(FORBIDDEN_HEADERS))
_HEADER_NAME = f"^(?!(?:{_FORBIDDEN})$)[!#$%&'*+.^_`|~0-9A-Za-z-]{{1,128}}$"
_NULL = {"type": "null"}

URL = {"type": "string", "minLength": 1, "maxLength": 2048,
       "description": "http(s) URL; without a scheme it means https://. A URL naming a private or local "
                      "address, another scheme, or no valid host is refused with 400"}
TAGS = {"type": "array", "maxItems": MAX_TAGS, "items": {"type": "string", "pattern": TAG_PATTERN},
        "description": "labels to find jobs by; duplicates are dropped"}
PRIORITY = {"type": "integer", "minimum": -10, "maximum": 10, "description": "higher runs first; same priority: "
            "older first. Default 0"}
NOT_BEFORE = {"type": ["string", "null"], "format": "date-time",
              "description": "ISO 8601 time (UTC when it has no offset), at most a year ahead: the job stays "
                             "queued until then. Default: now"}
MAX_AGE = {"type": ["number", "null"], "exclusiveMinimum": 0, "maximum": MAX_AGE_LIMIT,
           "description": "seconds: when a job for the same URL with the same fetch options completed within "
                          "that age, nothing is fetched; the new job is created completed with `reused_from`"}
METHOD = {"type": "string", "enum": list(METHODS), "description": "default GET (read without regard to case)"}
USER_AGENT = {"type": ["string", "null"], "minLength": 1, "maxLength": 1024, "pattern": ONE_LINE,
              "description": "overrides the server's --user-agent"}
TIMEOUT = {"type": ["number", "null"], "minimum": 1, "maximum": 300,
           "description": "seconds for the whole fetch; default: the server's --fetch-timeout"}
MAX_BYTES = {"type": ["integer", "null"], "minimum": 1,
             "description": "body cap in bytes, at most the server's --max-body-size (more is refused with 400)"}
FOLLOW = {"type": "boolean", "description": "false keeps a 3xx response as the result; default true"}
PROFILE = {"type": ["string", "null"], "description": "name of a server-side fetch profile (--fetch-profiles): "
           "headers and cookies that never travel in jobs; an unknown name is refused with 400 unknown_profile, "
           "a host the profile does not list with 400 profile_not_allowed"}

FETCH_OPTIONS = {
    "type": "object", "additionalProperties": False,
    "description": "how the job is fetched; an unknown key is refused with 400 unknown_field",
    "properties": {
        "method": METHOD,
        "headers": {"type": ["object", "null"], "maxProperties": MAX_HEADERS,
                    "propertyNames": {"pattern": _HEADER_NAME},
                    "additionalProperties": {"type": "string", "maxLength": MAX_HEADER_VALUE, "pattern": ONE_LINE},
                    "description": "request headers, one line each; names are unique ignoring case, and "
                                   f"{', '.join(sorted(FORBIDDEN_HEADERS))} are set by the fetcher (400 "
                                   "invalid_header). A job's headers replace the top level's whole"},
        "body": {"type": ["string", "null"], "maxLength": MAX_POST_BODY,
                 "description": f"request body, only with method POST (else 400); at most {MAX_POST_BODY} bytes "
                                "as UTF-8"},
        "user_agent": USER_AGENT, "timeout": TIMEOUT, "max_bytes": MAX_BYTES, "follow_redirects": FOLLOW,
        "profile": PROFILE,
    },
}

# The job fields a submission may give at its top level (for every URL) or per job. `webhook` only works
# with --webhook-secret (else 400 webhooks_disabled), so it is not offered here: docs/API.md describes it.
EVERY = {"anyOf": [{"type": "number", "minimum": 60, "maximum": 366 * 86400}, _NULL],
         "description": "seconds: a recurring fetch, run again this long after each due time (at least the "
                        "server's --min-every, 60 by default); every run shares schedule_id"}
SPEC_PROPERTIES: dict[str, Any] = {
    "fetch": {"anyOf": [ref("FetchOptions"), _NULL]},
    "priority": PRIORITY, "not_before": NOT_BEFORE, "max_age": MAX_AGE, "tags": TAGS, "every": EVERY,
}


def _submission(max_urls: int) -> dict[str, Any]:
    def shape(key: str, schema: dict[str, Any]) -> dict[str, Any]:
        return {"type": "object", "required": [key], "additionalProperties": False,
                "properties": {key: schema, **SPEC_PROPERTIES}}

    return {
        "description": "exactly one of url, urls or jobs, with optional job fields at the top level that apply to "
                       "every URL; a job's own fields beat them (inside fetch key by key). An unknown field is "
                       "refused with 400 unknown_field, and every URL is checked before anything is stored",
        "oneOf": [
            shape("url", URL),
            shape("urls", {"type": "array", "minItems": 1, "maxItems": max_urls, "items": URL}),
            shape("jobs", {"type": "array", "minItems": 1, "maxItems": max_urls, "items": ref("Job")}),
        ],
    }


_TASK_FETCH = {
    "type": "object",
    "required": ["method", "headers", "body", "user_agent", "timeout", "max_bytes", "follow_redirects", "profile"],
    "description": "the job's fetch options; null means the server's setting. The values of Authorization and "
                   "Cookie headers, and every header of the profile, show as \"***\"",
    "properties": {
        "method": {"type": "string", "enum": list(METHODS)},
        "headers": {"type": "object", "additionalProperties": {"type": "string"}},
        "body": {"type": ["string", "null"]}, "user_agent": {"type": ["string", "null"]},
        "timeout": {"type": ["number", "null"]}, "max_bytes": {"type": ["integer", "null"]},
        "follow_redirects": {"type": "boolean"}, "profile": {"type": ["string", "null"]},
    },
}

WEBHOOK = {"type": ["object", "null"], "required": ["url", "events"],
           "description": "where the job's events are sent (see the Webhooks section of docs/API.md)",
           "properties": {"url": {"type": "string"},
                          "events": {"type": "array", "items": {"type": "string", "enum": list(EVENTS)}}}}

DELIVERY = {
    "type": "object",
    "required": ["id", "type", "url", "task_id", "batch_id", "status", "attempts", "last_http_status", "last_error",
                 "next_attempt_at", "created_at", "updated_at", "delivered_at"],
    "properties": {
        "id": {"type": "string", "description": "the webhook-id header of every attempt"},
        "type": {"type": "string", "enum": list(EVENTS)}, "url": {"type": "string"},
        "task_id": {"type": ["string", "null"]}, "batch_id": {"type": ["string", "null"]},
        "status": {"type": "string", "enum": list(DELIVERY_STATUSES)},
        "attempts": {"type": "integer", "minimum": 0},
        "last_http_status": {"type": ["integer", "null"]}, "last_error": {"type": ["string", "null"]},
        "next_attempt_at": NULLABLE_TIME, "created_at": {"type": "string", "format": "date-time"},
        "updated_at": {"type": "string", "format": "date-time"}, "delivered_at": NULLABLE_TIME,
        "body": {"type": "string", "description": "GET /webhook_deliveries/{id} only: the exact JSON sent"},
    },
}


SCHEMAS: dict[str, Any] = {
    "ErrorBody": {"type": "object", "required": ["code", "message"],
                  "properties": {"code": {"type": "string"}, "message": {"type": "string"}}},
    "Error": {"type": "object", "required": ["error"],
              "properties": {"error": ref("ErrorBody"), "task": ref("Task")}},
    "TaskError": {"type": ["object", "null"], "required": ["code", "message"],
                  "properties": {"code": {"type": "string"}, "message": {"type": "string"}}},
    "TaskFetch": _TASK_FETCH,
    "Task": {
        "type": "object",
        "required": ["id", "url", "status", "attempts", "created_at", "updated_at", "started_at", "finished_at",
                     "http_status", "error", "fetch", "priority", "not_before", "tags", "batch_id", "schedule_id",
                     "reused_from", "webhook"],
        "properties": {
            "id": {"type": "string"}, "url": {"type": "string"},
            "status": {"type": "string", "enum": list(STATUSES)},
            "attempts": {"type": "integer", "minimum": 0},
            "created_at": {"type": "string", "format": "date-time"},
            "updated_at": {"type": "string", "format": "date-time"},
            "started_at": NULLABLE_TIME, "finished_at": NULLABLE_TIME,
            "http_status": {"type": ["integer", "null"]},
            "error": ref("TaskError"),
            "fetch": ref("TaskFetch"),
            "priority": {"type": "integer", "minimum": -10, "maximum": 10},
            "not_before": {**NULLABLE_TIME, "description": "the job waits queued until then"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "batch_id": {"type": ["string", "null"], "description": "the batch the job belongs to"},
            "schedule_id": {"type": ["string", "null"], "description": "the recurring schedule that made the job "
                            "(GET /schedules/{id})"},
            "every": {"type": ["number", "null"], "description": "a recurring job's period in seconds"},
            "reused_from": {"type": ["string", "null"], "description": "the job whose fresh result this one reused "
                            "(max_age): nothing was fetched"},
            "webhook": WEBHOOK,
            "attempt_log": {"type": "array", "description": "the newest 10 finished attempts, oldest first",
                            "items": {"type": "object", "properties": {
                                "attempt": {"type": ["integer", "null"]}, "at": NULLABLE_TIME,
                                "outcome": {"enum": ["completed", "retry", "failed"]},
                                "http_status": {"type": ["integer", "null"]}, "error": ref("TaskError")}}},
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
    "Batch": {
        "type": "object", "required": ["id", "created_at", "total", "counts", "finished_at", "tags"],
        "properties": {
            "id": {"type": "string"}, "created_at": {"type": "string", "format": "date-time"},
            "total": {"type": "integer", "minimum": 0, "description": "jobs in the batch"},
            "counts": ref("Counts"),
            "finished_at": {**NULLABLE_TIME, "description": "set once none of its jobs is queued or running; null "
                            "again when a retry queues some"},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
    },
    "FetchOptions": FETCH_OPTIONS,
    "Job": {"type": "object", "required": ["url"], "additionalProperties": False,
            "properties": {"url": URL, **SPEC_PROPERTIES}},
    "Delivery": DELIVERY,
    "Submission": _submission(MAX_BATCH),
    "BatchSubmission": _submission(MAX_BATCH_URLS),
}
