"""MongoDB listings by filter: the query of each TaskFilter field, with a time cap instead of a scan cap.

`status`, `batch`, `host`, `tag`, `error`, `http_status` and `since`/`until` have indexes ordered by
`_id` (which sorts by creation time; migration 3 makes them). `url` is a case-insensitive substring,
which no index serves. Every filtered find carries `maxTimeMS`: a listing that would take longer is
refused with 400 `filter_too_slow`, saying how to narrow it, rather than loading the server.
`q` is not offered here (Capabilities.list_filters leaves it out).
"""

from __future__ import annotations

import re
from typing import Any

from jobqueue.errors import BadRequest
from jobqueue.filters import http_range, seconds, url_forms
from jobqueue.store.base import TaskFilter

LIST_FILTERS = ("status", "batch", "crawl", "tag", "host", "http_status", "error", "url", "since", "until")
MAX_TIME_MS = 3000
TOO_SLOW = BadRequest("filter_too_slow", "this listing takes too long to filter on this database; narrow it with "
                      "status, batch, crawl or host, or a time range (since/until)")


def mongo_query(where: TaskFilter) -> dict[str, Any]:
    """The find() filter of a TaskFilter over job documents."""
    query: dict[str, Any] = {}
    if where.status is not None:
        query["status"] = where.status
    if where.batch is not None:
        query["batch_id"] = where.batch
    if where.crawl is not None:
        query["crawl_id"] = where.crawl
    if where.host is not None:
        query["host"] = where.host
    if where.tag is not None:
        query["tags"] = where.tag
    if where.error is not None:
        query["error.code"] = where.error
    if where.http_status is not None:
        low, high = http_range(where.http_status)
        query["http_status"] = low if low == high else {"$gte": low, "$lte": high}
    if where.url is not None:
        query["url"] = {"$regex": "|".join(re.escape(form) for form in url_forms(where.url)), "$options": "i"}
    created: dict[str, float] = {}
    if where.since is not None:
        created["$gte"] = seconds(where.since)
    if where.until is not None:
        created["$lte"] = seconds(where.until)
    if created:
        query["created_at"] = created
    return query
