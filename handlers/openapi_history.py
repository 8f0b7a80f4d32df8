"""The OpenAPI description of history, storage and schedules: `/history`, `/results/{id}/diff`,
`/stats/storage` and `/schedules`, with their schemas."""

from __future__ import annotations

from typing import Any

from .openapi_schemas import ID_PATTERN, NULLABLE_TIME, ref

API = "/jobqueue/api/v1.0"

HISTORY_SCHEMAS: dict[str, Any] = {
    "HistoryEntry": {"allOf": [ref("Result"), {"type": "object", "required": ["changed"], "properties": {
        "changed": {"type": ["boolean", "null"], "description": "whether the body differs (by sha256) from the "
                    "next older result of the URL; null for the oldest"}}}]},
    "Schedule": {
        "type": "object",
        "required": ["id", "url", "every", "active", "created_at", "stopped_at", "runs", "last_task_id",
                     "next_task_id", "next_run_at"],
        "properties": {
            "id": {"type": "string", "description": "the first run's id, shared by every run as schedule_id"},
            "url": {"type": "string"}, "every": {"type": "number", "description": "seconds between due times"},
            "active": {"type": "boolean"}, "created_at": {"type": "string", "format": "date-time"},
            "stopped_at": NULLABLE_TIME, "runs": {"type": "integer", "minimum": 0, "description": "finished runs"},
            "last_task_id": {"type": ["string", "null"], "description": "the last completed run"},
            "next_task_id": {"type": ["string", "null"]}, "next_run_at": NULLABLE_TIME,
        },
    },
    "Diff": {
        "type": "object", "required": ["from", "to", "same_body", "diff", "headers", "truncated", "note"],
        "properties": {
            "from": {"type": "string"}, "to": {"type": "string"}, "same_body": {"type": "boolean"},
            "diff": {"type": "string", "description": "unified diff of the decoded texts, from `from` to `to`"},
            "headers": {"type": "object", "properties": {
                "added": {"type": "object", "additionalProperties": {"type": "string"}},
                "removed": {"type": "object", "additionalProperties": {"type": "string"}},
                "changed": {"type": "object", "additionalProperties": {
                    "type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": 2}}}},
            "truncated": {"type": "boolean"}, "note": {"type": ["string", "null"]},
            "view": {"type": "string", "enum": ["text"], "description": "present with ?view=text"},
            "same_text": {"type": "boolean", "description": "with ?view=text: the main texts are the same"},
        },
    },
    "Storage": {
        "type": "object", "required": ["results", "distinct_bodies", "body_bytes", "stored_bytes"],
        "properties": {
            "results": {"type": "integer", "minimum": 0},
            "distinct_bodies": {"type": "integer", "minimum": 0},
            "body_bytes": {"type": "integer", "minimum": 0, "description": "every result's body, raw, added up"},
            "stored_bytes": {"type": "integer", "minimum": 0,
                             "description": "what the bodies take after dedupe and compression"},
        },
    },
}


def history_paths(common: dict[str, Any], limit: dict[str, Any], cursor: dict[str, Any]) -> dict[str, Any]:
    """A URL's history, a diff of two results, the storage figures, and the schedules."""
    def answer(schema: dict[str, Any], text: str) -> dict[str, Any]:
        return {"description": text, "content": {"application/json": {"schema": schema}}}

    def error(text: str) -> dict[str, Any]:
        return answer(ref("Error"), text)

    def page(key: str, item: str, text: str) -> dict[str, Any]:
        return answer({"type": "object", "required": [key, "next"], "properties": {
            key: {"type": "array", "items": ref(item)}, "next": {"type": ["string", "null"]}}}, text)

    def by_id(what: str) -> dict[str, Any]:
        return {"name": "id", "in": "path", "required": True, "schema": {"type": "string", "pattern": ID_PATTERN},
                "description": f"the {what} id"}

    schedule = answer({"type": "object", "required": ["schedule"], "properties": {"schedule": ref("Schedule")}},
                      "the schedule")
    history_page = page("results", "HistoryEntry", "the URL's results, newest first, without bodies")
    history_page["content"]["application/json"]["schema"]["properties"]["url"] = {"type": "string"}
    return {
        f"{API}/history": {
            "get": {"summary": "The results fetched for one URL, newest first, marked changed or not",
                    "operationId": "urlHistory",
                    "parameters": [{"name": "url", "in": "query", "required": False, "schema": {"type": "string"},
                                    "description": "the URL (normalised as a submission is); required unless "
                                                   "`cursor` continues a listing"}, limit, cursor],
                    "responses": {"200": history_page,
                                  "400": error("no url (missing_url), a bad URL, limit or cursor"), **common}},
        },
        f"{API}/results/{{id}}/diff": {
            "parameters": [by_id("task (the newer result)")],
            "get": {"summary": "What changed from an older result to this one", "operationId": "diffResults",
                    "parameters": [{"name": "against", "in": "query", "required": True,
                                    "schema": {"type": "string", "pattern": ID_PATTERN},
                                    "description": "the older result's task id"},
                                   {"name": "view", "in": "query", "required": False,
                                    "schema": {"type": "string", "enum": ["body", "text"], "default": "body"},
                                    "description": "body: the decoded bodies; text: the pages' main texts"}],
                    "responses": {"200": answer(ref("Diff"), "the diff of texts and headers"),
                                  "400": error("no `against` (missing_against), a bad `view`"),
                                  "404": error("unknown id"), "409": error("a task without a result (no_result)"),
                                  "415": error("view=text of a page without a main text (not_html)"),
                                  **common}},
        },
        f"{API}/stats/storage": {
            "get": {"summary": "What the stored bodies take", "operationId": "storageStats",
                    "responses": {"200": answer(ref("Storage"), "running totals"), **common}},
        },
        f"{API}/schedules": {
            "get": {"summary": "Recurring fetches, newest first", "operationId": "listSchedules",
                    "parameters": [limit, cursor],
                    "responses": {"200": page("schedules", "Schedule", "a page of schedules"),
                                  "400": error("bad limit or cursor"), **common}},
        },
        f"{API}/schedules/{{id}}": {
            "parameters": [by_id("schedule")],
            "get": {"summary": "One recurring fetch", "operationId": "getSchedule",
                    "responses": {"200": schedule, "404": error("unknown id"), **common}},
            "delete": {"summary": "Stop a recurring fetch (its queued run is cancelled; stored runs stay)",
                       "operationId": "stopSchedule",
                       "responses": {"200": schedule, "404": error("unknown id"), **common}},
        },
    }
