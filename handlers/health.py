"""`/healthz`: is the process up and can its database be read and written?"""

from __future__ import annotations

import math

from jobqueue.store.base import StoreError

from .base import BaseAPIHandler


class HealthHandler(BaseAPIHandler):
    """200 when the database answers a ping, 503 otherwise; open without a token for load balancers."""

    public = True

    async def get(self) -> None:
        service = self.service
        try:
            await service.store.ping()
        except StoreError as exc:
            if exc.retry_after is not None:
                self.set_header("Retry-After", str(max(1, math.ceil(exc.retry_after))))
            self.write_json({"status": "unavailable", "database": service.store.name,
                             "error": {"code": "database_unavailable", "message": str(exc)}}, 503)
            return
        self.write_json({"status": "ok", "database": service.store.name})
