"""`/webhook_deliveries`: what was sent to which endpoint, how it went, and sending one again."""

from __future__ import annotations

from jobqueue.service import parse_delivery_status, parse_id
from jobqueue.webhooks.delivery import DeliveryFilter

from .base import BaseAPIHandler
from .paging import PAGING, continue_listing

FILTERS = {"status": parse_delivery_status, "task_id": parse_id, "batch_id": parse_id}


class DeliveryListHandler(BaseAPIHandler):
    """GET a page of deliveries, newest first, by status, task or batch."""

    query_parameters = {"GET": (*PAGING, *FILTERS)}

    async def get(self) -> None:
        query = continue_listing(self, "webhook_deliveries", FILTERS)
        page = await self.service.deliveries(DeliveryFilter(**query.filters), query.limit, query.store_cursor)
        self.write_json({"deliveries": [d.to_json() for d in page.items], "next": query.next(page.next_cursor)})


class DeliveryHandler(BaseAPIHandler):
    """GET one delivery, with the body that is signed and sent."""

    async def get(self, delivery_id: str) -> None:
        delivery = await self.service.delivery(delivery_id)
        self.write_json({"delivery": {**delivery.to_json(), "body": delivery.payload.decode("utf-8")}})


class RedeliverHandler(BaseAPIHandler):
    """POST sends a delivery again (same webhook-id and body), whatever became of it."""

    async def post(self, delivery_id: str) -> None:
        self.write_json({"delivery": (await self.service.redeliver(delivery_id)).to_json()}, 202)
