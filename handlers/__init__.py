"""The web layer: routes from URLs to thin handlers over the core service."""

from __future__ import annotations

import logging
import os
from typing import Any

from tornado.log import access_log
from tornado.web import Application, RequestHandler

from jobqueue.config import Settings
from jobqueue.service import JobService

from .base import NotFoundHandler
from .batches import BatchHandler, BatchListHandler, BatchRetryHandler
from .crawls import crawl_routes
from .dashboard import DashboardHandler
from .events import EventsHandler
from .export import ExportHandler
from .firecrawl import firecrawl_routes
from .health import HealthHandler
from .history import history_routes
from .hosts import host_routes
from .map import MapHandler
from .operations import MetricsHandler, OpenAPIHandler
from .results import (
    ResultArtifactHandler,
    ResultBodyHandler,
    ResultHandler,
    ResultListHandler,
    ResultMarkdownHandler,
    ResultViewHandler,
)
from .schedules import schedule_routes
from .tasks import API, BulkHandler, TaskHandler, TaskListHandler, TaskRetryHandler
from .webhooks import DeliveryHandler, DeliveryListHandler, RedeliverHandler

# static/ and templates/ sit next to handlers/: at the top of the checkout, and inside the installed
# jobqueue package, where pyproject.toml maps them as jobqueue.handlers, jobqueue.static, jobqueue.templates
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_ID = r"([A-Za-z0-9_-]{1,64})"


def log_request(handler: RequestHandler) -> None:
    """One structured line per request: the path without its query, so tokens never reach the log."""
    status = handler.get_status()
    level = logging.INFO if status < 400 else logging.WARNING if status < 500 else logging.ERROR
    if not access_log.isEnabledFor(level):
        return
    access_log.log(level, "request", extra={
        "method": handler.request.method, "path": handler.request.path, "status": status,
        "ms": round(1000 * handler.request.request_time(), 2), "client": handler.request.remote_ip,
        "code": getattr(handler, "error_code", None)})


def make_app(service: JobService, config: Settings, **extra: Any) -> Application:
    """Build the Tornado application around shared objects made once in main()."""
    routes: list[tuple[Any, ...]] = [
        (r"/", DashboardHandler),
        (rf"{API}/queue_tasks/?", TaskListHandler),
        (rf"{API}/queue_tasks/bulk/?", BulkHandler),
        (rf"{API}/queue_tasks/{_ID}/?", TaskHandler),
        (rf"{API}/queue_tasks/{_ID}/retry/?", TaskRetryHandler),
        (rf"{API}/batches/?", BatchListHandler),
        (rf"{API}/batches/{_ID}/?", BatchHandler),
        (rf"{API}/batches/{_ID}/retry/?", BatchRetryHandler),
        (rf"{API}/results/?", ResultListHandler),
        (rf"{API}/results/{_ID}/?", ResultHandler),
        (rf"{API}/results/{_ID}/body/?", ResultBodyHandler),
        (rf"{API}/results/{_ID}/screenshot/?", ResultArtifactHandler, {"kind": "screenshot"}),
        (rf"{API}/results/{_ID}/pdf/?", ResultArtifactHandler, {"kind": "pdf"}),
        (rf"{API}/results/{_ID}/markdown/?", ResultMarkdownHandler, {"kind": "markdown"}),
        (rf"{API}/results/{_ID}/text/?", ResultViewHandler, {"kind": "text"}),
        (rf"{API}/results/{_ID}/links/?", ResultViewHandler, {"kind": "links"}),
        *history_routes(API, _ID),
        *schedule_routes(API, _ID),
        *crawl_routes(API, _ID),
        *host_routes(API),
        (rf"{API}/export/?", ExportHandler),
        (rf"{API}/map/?", MapHandler),
        (rf"{API}/webhook_deliveries/?", DeliveryListHandler),
        (rf"{API}/webhook_deliveries/{_ID}/?", DeliveryHandler),
        (rf"{API}/webhook_deliveries/{_ID}/redeliver/?", RedeliverHandler),
        (rf"{API}/events", EventsHandler),
        (r"/healthz", HealthHandler),
        (r"/metrics", MetricsHandler),
        (r"/openapi.json", OpenAPIHandler),
        *firecrawl_routes(_ID),
    ]
    return Application(
        routes,
        service=service,
        config=config,
        template_path=os.path.join(ROOT, "templates"),
        static_path=os.path.join(ROOT, "static"),
        default_handler_class=NotFoundHandler,
        xsrf_cookies=False,
        log_function=log_request,
        websocket_ping_interval=20,
        websocket_ping_timeout=15,
        websocket_max_message_size=65536,
        **extra,
    )
