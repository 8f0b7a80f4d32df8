"""SQLite's side of readable content: a job's `formats` and `changed_on` columns, the views a completion keeps
beside its body, and the views its task.completed webhook carries.

A job with `formats` has its body's views computed by its worker before it completes (jobqueue/readable_service.py);
the completion stores them in `body_views` (sqlite/views.py) in the transaction that stores the body, so they
are there as soon as the job is completed, and the outbox reads them in that same transaction.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from jobqueue.extract.views import EXTRACTOR_VERSION
from jobqueue.history.codec import Packed
from jobqueue.models import Task
from jobqueue.store.sqlite.views import _PUT, _get

# Migration 14. Never edited once released.
V14_READABLE = """
ALTER TABLE jobs ADD COLUMN formats TEXT;
ALTER TABLE jobs ADD COLUMN changed_on TEXT;
"""


def readable_columns(formats: tuple[str, ...], changed_on: str) -> tuple[str | None, str | None]:
    """A job's `formats` and `changed_on` as stored (NULL at their defaults)."""
    return (json.dumps(list(formats)) if formats else None, changed_on if changed_on != "body" else None)


def readable_fields(row: sqlite3.Row) -> dict[str, Any]:
    """The Task keyword arguments of a jobs row's `formats` and `changed_on`."""
    return {"formats": tuple(json.loads(row["formats"])) if row["formats"] else (),
            "changed_on": row["changed_on"] or "body"}


def keep_views(conn: sqlite3.Connection, sha256: str, packed: Packed, now: float) -> None:
    """In a completion's transaction, after its body: keep the views its worker computed (the first put wins)."""
    conn.execute(_PUT, (sha256, EXTRACTOR_VERSION, packed.codec, packed.size, now, packed.data, sha256))


def completed_views(conn: sqlite3.Connection, task: Task) -> dict[str, Any] | None:
    """The views kept for a completed job's body, for its webhook (None: none are kept, or not HTML)."""
    row = conn.execute("SELECT sha256 FROM results WHERE job_id = ?", (task.id,)).fetchone()
    if row is None or row[0] is None:
        return None
    document = _get(conn, row[0], EXTRACTOR_VERSION)
    views = json.loads(document) if document is not None else None
    return views if isinstance(views, dict) and "not_html" not in views else None
