"""The OpenAPI description of webhook deliveries: their schema and the `/webhook_deliveries` paths."""

from __future__ import annotations

from typing import Any

from jobqueue.webhooks.delivery import DELIVERY_STATUSES

from .openapi_schemas import ID_PATTERN, ref

API = "/jobqueue/api/v1.0"

def webhook_paths(common: dict[str, Any], limit: dict[str, Any], cursor: dict[str, Any]) -> dict[str, Any]:
    """The delivery listing, one delivery, and redelivery."""
    def query(name: str, schema: dict[str, Any], text: str) -> dict[str, Any]:
        return {"name": name, "in": "query", "required": False, "schema": schema, "description": text}

    def answer(schema: dict[str, Any], text: str) -> dict[str, Any]:
        return {"description": text, "content": {"application/json": {"schema": schema}}}

    one = answer({"type": "object", "required": ["delivery"], "properties": {"delivery": ref("Delivery")}},
                 "the delivery")
    unknown = answer(ref("Error"), "no webhook delivery has this id (not_found)")
    by_id = {"name": "id", "in": "path", "required": True, "schema": {"type": "string", "pattern": ID_PATTERN},
             "description": "the delivery id (msg_...)"}
    return {
        f"{API}/webhook_deliveries": {
            "get": {"summary": "Webhook deliveries, newest first", "operationId": "listDeliveries",
                    "parameters": [
                        query("status", {"type": "string", "enum": list(DELIVERY_STATUSES)}, "only this state"),
                        query("task_id", {"type": "string", "pattern": ID_PATTERN}, "only this task's"),
                        query("batch_id", {"type": "string", "pattern": ID_PATTERN}, "only this batch's"),
                        limit, cursor],
                    "responses": {
                        "200": answer({"type": "object", "required": ["deliveries", "next"], "properties": {
                            "deliveries": {"type": "array", "items": ref("Delivery")},
                            "next": {"type": ["string", "null"]}}}, "a page of deliveries"),
                        "400": answer(ref("Error"), "bad filter, limit or cursor"), **common}},
        },
        f"{API}/webhook_deliveries/{{id}}": {
            "parameters": [by_id],
            "get": {"summary": "One delivery with the body it sends", "operationId": "getDelivery",
                    "responses": {"200": one, "404": unknown, **common}},
        },
        f"{API}/webhook_deliveries/{{id}}/redeliver": {
            "parameters": [by_id],
            "post": {"summary": "Send a delivery again now, with the same id and body", "operationId": "redeliver",
                     "responses": {"202": one, "404": unknown, **common}},
        },
    }
