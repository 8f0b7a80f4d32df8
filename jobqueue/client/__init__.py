"""A Python client for jobqueue's REST API and live stream: Client (blocking) and AsyncClient (asyncio).

    from jobqueue.client import Client
    with Client("http://127.0.0.1:5000", token=None) as jq:
        task = jq.wait(jq.submit("https://example.com/").id)
        print(task.status, jq.result(task.id).body[:80])

Errors are JobQueueError subclasses carrying the API's `code` word; 429 and 503 answers with a
Retry-After are waited out (each wait at most 30 s, `max_wait` s per call in all).
The core of jobqueue, and no web code, is all this imports.
"""

from __future__ import annotations

from .aio import DEFAULT_SERVER, AsyncClient, Export
from .errors import APIError, JobQueueError, Unreachable, WaitTimeout
from .models import Batch, Crawl, Event, Result, Task, TaskError
from .sync import Client

__all__ = ["DEFAULT_SERVER", "APIError", "AsyncClient", "Batch", "Client", "Crawl", "Event", "Export", "JobQueueError",
           "Result", "Task", "TaskError", "Unreachable", "WaitTimeout"]
