"""`/healthz`: is the process up and does its database answer?"""

from __future__ import annotations

from handlers.base import BaseAPIHandler
from jobqueue.store.base import StoreError


class HealthHandler(BaseAPIHandler):
    """200 when the database answers a ping, 503 otherwise; open without a token for load balancers."""

    public = True

    async def get(self) -> None:
        service = self.service
        try:
            await service.store.ping()
        except StoreError as exc:
            self.write_json({"status": "unavailable", "database": service.store.name, "error": str(exc)}, 503)
            return
        self.write_json({"status": "ok", "database": service.store.name})
