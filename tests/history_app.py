"""Serve the history, storage and schedule routes on a test server, whether make_app lists them yet or not.

Until handlers/__init__.py routes them, the tests add them to the running Application (Tornado's
add_handlers); once it does, the Application's own routes match first and this changes nothing.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from handlers.history import history_routes
from handlers.schedules import schedule_routes
from handlers.tasks import API

ID = r"([A-Za-z0-9_-]{1,64})"


def mount(server: Any) -> Any:
    """Add the routes to a started JobQueueServer, and accept `every` as a server with them will; returns it."""
    server.http.request_callback.add_handlers(r".*", [*history_routes(API, ID), *schedule_routes(API, ID)])
    reader = server.service.reader
    reader.limits = dataclasses.replace(reader.limits, recurring=True)
    return server
