"""`/healthz`: is the process up, and does its database answer? Read-only, and answered within DEADLINE."""

from __future__ import annotations

import asyncio
import math
from typing import Any

from jobqueue.errors import Code
from jobqueue.store.base import StoreError

from .base import BaseAPIHandler

DEADLINE = 3.0  # seconds: a load balancer's check must not hang on a database that does not answer


class HealthHandler(BaseAPIHandler):
    """200 `ok` when the database answers, 200 `degraded` (with a `warning`) when it answers slowly, 503
    `unavailable` when it cannot be used; open without a token for load balancers. Never writes."""

    public = True

    async def get(self) -> None:
        store = self.service.store
        try:
            async with asyncio.timeout(DEADLINE):
                slow = await store.ping()
        except TimeoutError:
            self._unavailable(StoreError(f"the database did not answer within {DEADLINE:g} s; try again shortly",
                                         retry_after=DEADLINE))
            return
        except StoreError as exc:
            self._unavailable(exc)
            return
        if slow is not None:
            self.write_json({"status": "degraded", "database": store.name, "rendering": self._rendering(),
                             "warning": {"code": Code.DATABASE_SLOW, "message": slow}})
            return
        self.write_json({"status": "ok", "database": store.name, "rendering": self._rendering()})

    def _rendering(self) -> dict[str, Any]:
        """Whether this process renders jobs with `render`, and with how many live browsers."""
        pool = self.application.settings.get("render")
        if pool is None:
            return {"available": False, "browsers": 0}
        stats = pool.stats()
        return {"available": stats["available"], "browsers": stats["browsers"]}

    def _unavailable(self, exc: StoreError) -> None:
        if exc.retry_after is not None:
            self.set_header("Retry-After", str(max(1, math.ceil(exc.retry_after))))
        self.write_json({"status": "unavailable", "database": self.service.store.name,
                         "error": {"code": Code.DATABASE_UNAVAILABLE, "message": str(exc)}}, 503)
