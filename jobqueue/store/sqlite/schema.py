"""SQLite rows: the columns every query reads, and how rows become records and records become rows.

The tables themselves are made by the versioned steps in sqlite_migrations.py.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from jobqueue.models import QUEUED, STATUSES, Batch, Result, Task, TaskError
from jobqueue.render.options import RenderOptions
from jobqueue.spec import FetchOptions, load_render, stored_render
from jobqueue.store.base import BadCursor, NewTask
from jobqueue.store.sqlite.bodies import body_of
from jobqueue.store.sqlite.readable import readable_columns, readable_fields
from jobqueue.store.sqlite.rendered import render_fields
from jobqueue.webhooks.spec import WebhookSpec

JOB_COLUMNS = (
    "id, url, host, status, attempts, created_at, updated_at, started_at, finished_at, "
    "available_at, lease_token, http_status, error_code, error_message, "
    "priority, not_before, fetch, tags, batch_id, reused_from, webhook, attempt_log, schedule_id, every, render, "
    "formats, changed_on, robots, crawl_id, depth, parent_id"
)
RESULT_COLUMNS = (
    "job_id, url, final_url, http_status, headers, content_type, encoding, encoding_source, "
    "size, truncated, elapsed_ms, fetched_at, sha256, redirects, timings, render_facts"
)
RESULT_COLUMNS_JOINED = ", ".join(f"results.{c.strip()}" for c in RESULT_COLUMNS.split(","))  # beside a join
INSERT_JOB = (
    "INSERT INTO jobs (id, url, host, status, attempts, created_at, updated_at, available_at, priority, not_before,"
    " fetch, tags, batch_id, reuse_key, finished_at, http_status, reused_from, webhook, schedule_id, every, due_at,"
    " render, formats, changed_on, robots, crawl_id, depth, parent_id, crawl_key)"
    " VALUES (?, ?, ?, ?, 0, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
# Appends one attempt to a job's log in the UPDATE that ends the attempt (parameters: at, outcome,
# http_status, error code, error message).
LOG_ATTEMPT = (
    "attempt_log = json_insert(COALESCE(attempt_log, '[]'), '$[#]', json_object('attempt', attempts, 'at', ?,"
    " 'outcome', ?, 'http_status', ?, 'error', ?, 'message', ?))"
)
_PRIORITIES = ",".join(str(p) for p in range(10, -11, -1))
# Naming every priority lets SQLite search the due range of each one in turn (highest first) instead
# of walking the whole index past jobs that are not due yet.
CLAIMABLE = f"status IN ('queued', 'running') AND priority IN ({_PRIORITIES}) AND available_at <= ?"
# ...of one kind: a claim adds its kind's condition on `render` (sqlite/rendered.py), which picks its index.
BATCH_COLUMNS = "seq, id, created_at, total, tags, sealed, finished_at, " + ", ".join(STATUSES)


def task_from_row(row: sqlite3.Row) -> Task:
    """Turn a jobs row (JOB_COLUMNS) into a Task."""
    error = TaskError(row["error_code"], row["error_message"] or "") if row["error_code"] else None
    return Task(
        id=row["id"], url=row["url"], host=row["host"], status=row["status"], attempts=row["attempts"],
        created_at=row["created_at"], updated_at=row["updated_at"], started_at=row["started_at"],
        finished_at=row["finished_at"], available_at=row["available_at"], http_status=row["http_status"],
        error=error, lease_token=row["lease_token"],
        fetch=FetchOptions.from_stored(json.loads(row["fetch"]) if row["fetch"] else None),
        priority=row["priority"], not_before=row["not_before"],
        tags=tuple(json.loads(row["tags"])) if row["tags"] else (), batch_id=row["batch_id"],
        reused_from=row["reused_from"],
        webhook=WebhookSpec.from_json(json.loads(row["webhook"])) if row["webhook"] else None,
        attempt_log=tuple(json.loads(row["attempt_log"])) if row["attempt_log"] else (),
        schedule_id=row["schedule_id"], every=row["every"],
        render=load_render(json.loads(row["render"])) if row["render"] else None, **readable_fields(row),
        robots=row["robots"], crawl_id=row["crawl_id"], depth=row["depth"], parent_id=row["parent_id"],
    )


def batch_from_row(row: sqlite3.Row) -> Batch:
    """Turn a batches row into a Batch."""
    return Batch(id=row["id"], created_at=row["created_at"], total=row["total"],
                 counts={s: int(row[s]) for s in STATUSES}, finished_at=row["finished_at"],
                 tags=tuple(json.loads(row["tags"])) if row["tags"] else (), sealed=bool(row["sealed"]))


def result_from_row(row: sqlite3.Row, with_body: bool) -> Result:
    """Turn a results row (RESULT_COLUMNS, and sqlite_bodies.BODY_COLUMNS when asked for) into a Result."""
    return Result(
        id=row["job_id"], url=row["url"], final_url=row["final_url"], http_status=row["http_status"],
        headers=json.loads(row["headers"]), content_type=row["content_type"], encoding=row["encoding"],
        encoding_source=row["encoding_source"], size=row["size"], truncated=bool(row["truncated"]),
        elapsed_ms=row["elapsed_ms"], fetched_at=row["fetched_at"], sha256=row["sha256"],
        redirects=json.loads(row["redirects"]), timings=json.loads(row["timings"]),
        body=body_of(row) if with_body else None,
        raw_headers=bytes(row["raw_headers"]) if with_body and row["raw_headers"] is not None else None,
        **render_fields(row["render_facts"]),
    )


def new_task_row(new: NewTask, now: float, reused: Task | None = None) -> tuple[Any, ...]:
    """The INSERT_JOB values of a new task: queued, or completed at once when it reuses `reused`'s result."""
    spec = new.spec
    stored = spec.fetch.to_stored()
    available = max(now, spec.not_before) if spec.not_before is not None else now
    status = "completed" if reused is not None else QUEUED
    return (new.id, new.url, new.host, status, now, now, available, spec.priority, spec.not_before,
            json.dumps(stored, separators=(",", ":")) if stored else None,
            json.dumps(list(spec.tags)) if spec.tags else None, new.batch_id, new.reuse_key,
            now if reused is not None else None, reused.http_status if reused is not None else None,
            reused.id if reused is not None else None,
            json.dumps(spec.webhook.to_json(), separators=(",", ":")) if spec.webhook is not None else None,
            new.id if spec.every is not None else None, spec.every, available if spec.every is not None else None,
            _render_json(spec.render, spec.capture), *readable_columns(spec.formats, spec.changed_on),
            spec.robots, new.crawl_id, new.depth, new.parent_id, new.crawl_key)


def new_task(new: NewTask, now: float, reused: Task | None = None) -> Task:
    """The Task a freshly inserted row reads back as (without reading it)."""
    spec = new.spec
    available = max(now, spec.not_before) if spec.not_before is not None else now
    return Task(
        id=new.id, url=new.url, host=new.host, status="completed" if reused is not None else QUEUED, attempts=0,
        created_at=now, updated_at=now, available_at=available, fetch=spec.fetch, priority=spec.priority,
        not_before=spec.not_before, tags=spec.tags, batch_id=new.batch_id,
        finished_at=now if reused is not None else None,
        http_status=reused.http_status if reused is not None else None,
        reused_from=reused.id if reused is not None else None, webhook=spec.webhook,
        schedule_id=new.id if spec.every is not None else None, every=spec.every, render=spec.rendered,
        formats=spec.formats, changed_on=spec.changed_on, robots=spec.robots, crawl_id=new.crawl_id,
        depth=new.depth, parent_id=new.parent_id,
    )


def _render_json(render: RenderOptions | None, capture: tuple[str, ...]) -> str | None:
    stored = stored_render(render, capture)
    return None if stored is None else json.dumps(stored, separators=(",", ":"))


def encode_cursor(seq: int) -> str:
    """The opaque cursor of a page that ended at row `seq`."""
    return f"s{seq}"


def decode_cursor(cursor: str | None) -> int | None:
    """The row a cursor points after (BadCursor for anything this store did not hand out)."""
    if cursor is None:
        return None
    if not cursor.startswith("s") or not cursor[1:].isascii() or not cursor[1:].isdigit() or len(cursor) > 20:
        raise BadCursor(f"unknown cursor {cursor!r}: use the 'next' value of a previous page")
    return int(cursor[1:])


def drop_result(conn: sqlite3.Connection, job_id: str) -> None:
    """Delete a job's result; its body goes with it unless another result has it too (sqlite_bodies' triggers)."""
    conn.execute("DELETE FROM results WHERE job_id = ?", (job_id,))
