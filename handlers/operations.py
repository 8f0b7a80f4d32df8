"""`/metrics` and `/openapi.json`: what operators and client generators read."""

from __future__ import annotations

import json

from jobqueue.metrics import CONTENT_TYPE, Metrics
from jobqueue.store.base import StoreError

from .base import BaseAPIHandler
from .openapi_spec import openapi_document


class MetricsHandler(BaseAPIHandler):
    """Prometheus text format; queue depth is read from the store at scrape time."""

    @property
    def metrics(self) -> Metrics:
        """The server's metrics registry."""
        return self.application.settings["metrics"]

    async def get(self) -> None:
        metrics = self.metrics
        try:
            metrics.set_counts(await self.service.store.counts())
        except StoreError:
            pass  # the scrape still shows everything else; /healthz says the database is down
        metrics.websockets.set(self.hub.streams)  # websocket streams only: not scrapes waiting for their jobs
        self.set_header("Content-Type", CONTENT_TYPE)
        self.finish(metrics.render())


class OpenAPIHandler(BaseAPIHandler):
    """The OpenAPI document, readable without a token so clients can be generated."""

    public = True

    def get(self) -> None:
        self.finish(json.dumps(openapi_document(self.tokens.required, self.service.limits)))
