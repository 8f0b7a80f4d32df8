"""SQLite's side of rendered jobs: the `render` column that marks them, their claim index, and their captures.

A rendered job carries its render options in `jobs.render` (NULL for a plain fetch). The due-job indexes
are partial on it, so the curl workers' claim and the render workers' claim each read only their own
kind, each on an index as small as its queue. A rendered result keeps its render facts in
`results.render_facts` and points at its screenshot and PDF like at its body: rows of `bodies`, stored once
per sha256, compressed, counted by the same triggers (so retention and a retry drop them, and
GET /stats/storage counts them).
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from jobqueue.history.codec import digest, unpack
from jobqueue.models import ARTIFACTS, Result
from jobqueue.store.sqlite.bodies import keep_body

V12_RENDERED = """
ALTER TABLE jobs ADD COLUMN render TEXT;
ALTER TABLE results ADD COLUMN render_facts TEXT;
ALTER TABLE results ADD COLUMN screenshot_id INTEGER;
ALTER TABLE results ADD COLUMN pdf_id INTEGER;
DROP INDEX jobs_due;
CREATE INDEX jobs_due ON jobs(priority DESC, available_at) WHERE status IN ('queued', 'running') AND render IS NULL;
DROP INDEX jobs_due_by_host;
CREATE INDEX jobs_due_by_host ON jobs(host, priority DESC, available_at)
    WHERE status IN ('queued', 'running') AND render IS NULL;
CREATE INDEX jobs_due_rendered ON jobs(priority DESC, available_at)
    WHERE status IN ('queued', 'running') AND render IS NOT NULL;
DROP TRIGGER results_body_insert;
DROP TRIGGER results_body_delete;
CREATE TRIGGER results_body_insert AFTER INSERT ON results BEGIN
    UPDATE body_refs SET refs = refs + 1 WHERE body_id IN (NEW.body_id, NEW.screenshot_id, NEW.pdf_id);
    UPDATE storage_totals SET results = results + 1,
        body_bytes = body_bytes + COALESCE((SELECT size FROM bodies WHERE id = NEW.body_id), LENGTH(NEW.body), 0)
            + COALESCE((SELECT size FROM bodies WHERE id = NEW.screenshot_id), 0)
            + COALESCE((SELECT size FROM bodies WHERE id = NEW.pdf_id), 0);
END;
CREATE TRIGGER results_body_delete AFTER DELETE ON results BEGIN
    UPDATE storage_totals SET results = results - 1,
        body_bytes = body_bytes - COALESCE((SELECT size FROM bodies WHERE id = OLD.body_id), LENGTH(OLD.body), 0)
            - COALESCE((SELECT size FROM bodies WHERE id = OLD.screenshot_id), 0)
            - COALESCE((SELECT size FROM bodies WHERE id = OLD.pdf_id), 0);
    UPDATE body_refs SET refs = refs - 1 WHERE body_id = OLD.body_id;
    UPDATE body_refs SET refs = refs - 1 WHERE body_id = OLD.screenshot_id;
    UPDATE body_refs SET refs = refs - 1 WHERE body_id = OLD.pdf_id;
    DELETE FROM bodies WHERE id IN (OLD.body_id, OLD.screenshot_id, OLD.pdf_id)
        AND (SELECT refs FROM body_refs WHERE body_id = bodies.id) <= 0;
END;
"""

# A claim's condition on the `render` column, matching the partial index of its kind.
PLAIN = "render IS NULL"
RENDERED = "render IS NOT NULL"


def artifact_ids(conn: sqlite3.Connection, result: Result) -> tuple[int | None, int | None]:
    """The body ids of a result's screenshot and PDF, storing each (compressed, once per sha256) if new."""
    ids: list[int | None] = []
    for kind in ARTIFACTS:
        data = result.artifacts.get(kind)
        ids.append(keep_body(conn, data, digest(data)) if data is not None else None)
    return ids[0], ids[1]


def render_column(result: Result) -> str | None:
    """results.render_facts: the render facts of a rendered result (None for a fetched one)."""
    if not result.rendered:
        return None
    return json.dumps({"blocked_requests": result.blocked_requests, "timings": result.render_timings,
                       "captured": sorted(result.artifacts or result.captured)}, separators=(",", ":"))


def render_fields(value: str | None) -> dict[str, Any]:
    """The Result fields read back from results.render_facts."""
    if value is None:
        return {}
    facts = json.loads(value)
    return {"rendered": True, "blocked_requests": facts["blocked_requests"], "render_timings": facts["timings"],
            "captured": tuple(facts.get("captured", ()))}


def read_artifact(conn: sqlite3.Connection, task_id: str, kind: str) -> bytes | None:
    """A result's screenshot or PDF (None when the job has none)."""
    column = {"screenshot": "screenshot_id", "pdf": "pdf_id"}[kind]
    row = conn.execute(f"SELECT bodies.codec, bodies.data, bodies.size FROM results JOIN bodies"
                       f" ON bodies.id = results.{column} WHERE results.job_id = ?", (task_id,)).fetchone()
    return None if row is None else unpack(row[0], row[1], row[2])
