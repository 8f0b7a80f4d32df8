"""The OpenAPI component schemas: what a task, result, batch and submission look like on the wire.

The job fields' schemas are read from their declarations (jobqueue/spec.py), with this server's limits, and the
other limits come from the modules that enforce them, so the document cannot drift from the server; `null` is
allowed wherever the server reads it as "not given".
"""

from __future__ import annotations

from typing import Any

from jobqueue.models import STATUSES
from jobqueue.service import MAX_BATCH, MAX_BATCH_URLS
from jobqueue.spec import TAG_PATTERN, FetchOptions, JobSpec, SpecLimits
from jobqueue.spec_fields import Declared, Nested, declared, query_form, value_schema
from jobqueue.webhooks.delivery import DELIVERY_STATUSES
from jobqueue.webhooks.spec import EVENTS

NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}
ID_PATTERN = "^[A-Za-z0-9_-]{1,64}$"
__all__ = ["ID_PATTERN", "NULLABLE_TIME", "TAG_PATTERN", "ref", "schemas", "spec_query"]
_NULL = {"type": "null"}
URL = {"type": "string", "minLength": 1, "maxLength": 2048,
       "description": "http(s) URL; without a scheme it means https://. A URL naming a private or local "
                      "address, another scheme, or no valid host is refused with 400"}


def ref(name: str) -> dict[str, str]:
    """A reference to one of the component schemas."""
    return {"$ref": f"#/components/schemas/{name}"}


def _request_schema(about: Declared, limits: SpecLimits) -> dict[str, Any]:
    if isinstance(about.rule, Nested):  # an object of declared fields is a component of its own
        return {"anyOf": [ref(about.rule.cls.__name__), _NULL]}
    return {**value_schema(about, limits, about.nullable), "description": about.doc}


def _request_properties(cls: type, limits: SpecLimits) -> dict[str, Any]:
    """The schema of every field a request may give for `cls`."""
    return {item.name: _request_schema(about, limits) for item, about in declared(cls)
            if about.rule is not None and about.offered}


def _shown_properties(cls: type, limits: SpecLimits) -> dict[str, Any]:
    """The schema of every field as the API shows it: the value's type, without the request's limits."""
    out = {}
    for item, about in declared(cls):
        if about.rule is not None:
            whole = value_schema(about, limits, about.nullable)
            out[item.name] = about.shown_schema or {k: v for k, v in whole.items() if k in ("type", "enum")}
    return out


def _declared(cls: type, name: str) -> Declared:
    return next(about for item, about in declared(cls) if item.name == name)


def spec_query(limits: SpecLimits) -> list[tuple[str, dict[str, Any], str, bool]]:
    """(name, schema, description, repeatable) of each job field a text/plain or form submission takes as a query
    parameter."""
    out = []
    for name, (_path, about) in query_form(JobSpec).items():
        assert about.rule is not None
        said = about.doc + (f" (repeatable: `?{name}=a&{name}=b`)" if about.rule.repeated else "")
        out.append((name, about.rule.query_schema(limits), said, about.rule.repeated))
    return out


def _submission(max_urls: int, spec_properties: dict[str, Any]) -> dict[str, Any]:
    def shape(key: str, schema: dict[str, Any]) -> dict[str, Any]:
        return {"type": "object", "required": [key], "additionalProperties": False,
                "properties": {key: schema, **spec_properties}}

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


def schemas(limits: SpecLimits) -> dict[str, Any]:
    """Every component schema, the job fields' limits those of this server (`every`'s minimum is --min-every)."""
    spec_properties = _request_properties(JobSpec, limits)
    return {
        "ErrorBody": {"type": "object", "required": ["code", "message"],
                      "properties": {"code": {"type": "string"}, "message": {"type": "string"}}},
        "Error": {"type": "object", "required": ["error"],
                  "properties": {"error": ref("ErrorBody"), "task": ref("Task")}},
        "TaskError": {"type": ["object", "null"], "required": ["code", "message"],
                      "properties": {"code": {"type": "string"}, "message": {"type": "string"}}},
        "TaskFetch": {
            "type": "object", "required": list(_shown_properties(FetchOptions, limits)),
            "description": "the job's fetch options; null means the server's setting. The values of Authorization "
                           "and Cookie headers, and every header of the profile, show as \"***\"",
            "properties": _shown_properties(FetchOptions, limits),
        },
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
                "priority": value_schema(_declared(JobSpec, "priority"), limits, nullable=False),
                "not_before": {**NULLABLE_TIME, "description": "the job waits queued until then"},
                "tags": {"type": "array", "items": {"type": "string"}},
                "batch_id": {"type": ["string", "null"], "description": "the batch the job belongs to"},
                "schedule_id": {"type": ["string", "null"], "description": "the recurring schedule that made the job "
                                "(GET /schedules/{id})"},
                "every": {"type": ["number", "null"], "description": "a recurring job's period in seconds"},
                "crawl_id": {"type": "string", "description": "a crawl page's crawl (GET /crawls/{id}); absent "
                             "for other jobs"},
                "depth": {"type": "integer", "minimum": 0, "description": "a crawl page's link distance from a seed"},
                "parent_id": {"type": ["string", "null"], "description": "the crawl page whose links named this one "
                              "(null: a seed or a sitemap's page)"},
                "reused_from": {"type": ["string", "null"], "description": "the job whose fresh result this one reused "
                                "(max_age): nothing was fetched"},
                "webhook": WEBHOOK,
                "attempt_log": {"type": "array", "description": "the newest 10 finished attempts, oldest first",
                                "items": {"type": "object", "properties": {
                                    "attempt": {"type": ["integer", "null"]}, "at": NULLABLE_TIME,
                                    "outcome": {"enum": ["completed", "retry", "failed"]},
                                    "http_status": {"type": ["integer", "null"]}, "error": ref("TaskError")}}},
                "render": {"anyOf": [{"type": "boolean"}, {"type": "object"}],
                           "description": "present on a rendered job: its render options (true: the defaults)"},
                "capture": {"type": "array", "items": {"type": "string"}},
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
                                                                        "render", None]},
                "size": {"type": "integer", "minimum": 0},
                "truncated": {"type": "boolean", "description": "always false: a body over the server's size limit "
                              "is never stored truncated; its task ends failed with error.code too_large"},
                "elapsed_ms": {"type": "number"}, "fetched_at": {"type": "string", "format": "date-time"},
                "sha256": {"type": "string"},
                "redirects": {"type": "array", "items": {"type": "object", "properties": {
                    "url": {"type": "string"}, "status": {"type": "integer"}}}},
                "timings": {"type": "object", "additionalProperties": {"type": "number"}},
                "body": {"type": ["string", "null"], "description": "text for textual types, null for binary ones"},
                "rendered": {"type": "boolean", "description": "present (true) when the body is the DOM a browser "
                             "serialized after the waits (a job with `render`)"},
                "blocked_requests": {"type": "integer", "minimum": 0,
                                     "description": "the page's requests the address guard refused"},
                "render_timings": {"type": "object", "additionalProperties": {"type": "number"},
                                   "description": "milliseconds: queued, navigation, waits, capture, total"},
                "captured": {"type": "array", "items": {"enum": ["screenshot", "pdf"]},
                             "description": "served at /results/{id}/screenshot and /results/{id}/pdf"},
                "metadata": {"type": "object", "description": "GET /results/{id} only, for an HTML or text body: "
                             "the page's head, absent values left out", "properties": {
                                 "title": {"type": "string"}, "description": {"type": "string"},
                                 "language": {"type": "string"}, "canonical_url": {"type": "string"},
                                 "og": {"type": "object", "additionalProperties": {"type": "string"}}}},
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
        "FetchOptions": {"type": "object", "additionalProperties": False,
                         "description": "how the job is fetched; an unknown key is refused with 400 unknown_field",
                         "properties": _request_properties(FetchOptions, limits)},
        "Job": {"type": "object", "required": ["url"], "additionalProperties": False,
                "properties": {"url": URL, **spec_properties}},
        "Delivery": DELIVERY,
        "Submission": _submission(MAX_BATCH, spec_properties),
        "BatchSubmission": _submission(MAX_BATCH_URLS, spec_properties),
    }
