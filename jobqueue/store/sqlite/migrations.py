"""Versioned SQLite schema: ordered migration steps, each applied once, inside one transaction at open.

A database written before versions existed (release 0.1) has the tables of step 1 and no
`schema_version` table; it is recognised as version 1 and carried forward by the later steps, so
an old file keeps every job and result. Steps are never edited once released: a change is a new step.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass

from jobqueue.models import TaskIds
from jobqueue.spec import DEFAULT_FETCH
from jobqueue.store.schedule_grid import next_due
from jobqueue.store.sqlite.bodies import V4_BODIES, V7_BODY_REFS, move_bodies_into_store
from jobqueue.store.sqlite.changes import V8_JOB_CHANGES
from jobqueue.store.sqlite.crawl_pages import V16_CRAWLS
from jobqueue.store.sqlite.hosts import V17_HOSTS
from jobqueue.store.sqlite.readable import V14_READABLE
from jobqueue.store.sqlite.rendered import V12_RENDERED
from jobqueue.store.sqlite.robots import V15_ROBOTS
from jobqueue.store.sqlite.schedules import V5_SCHEDULES
from jobqueue.store.sqlite.slots import V9_SLOTS
from jobqueue.store.sqlite.stats import V10_STATS
from jobqueue.store.sqlite.text import V18_WORDS_WITHOUT_POSITIONS
from jobqueue.store.sqlite.views import V13_BODY_VIEWS


@dataclass(frozen=True)
class Migration:
    """One step: `sql` runs first, then `python` (for data that SQL cannot compute)."""

    version: int
    description: str
    sql: str
    python: Callable[[sqlite3.Connection], None] | None = None


V1_RELEASE_0_1 = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    url TEXT NOT NULL,
    host TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    available_at REAL NOT NULL,
    lease_token TEXT,
    http_status INTEGER,
    error_code TEXT,
    error_message TEXT
);
CREATE INDEX IF NOT EXISTS jobs_due ON jobs(available_at) WHERE status IN ('queued', 'running');
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs(status, seq);
CREATE INDEX IF NOT EXISTS jobs_by_update ON jobs(updated_at);

CREATE TABLE IF NOT EXISTS results (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL UNIQUE,
    url TEXT NOT NULL,
    final_url TEXT NOT NULL,
    http_status INTEGER NOT NULL,
    headers TEXT NOT NULL,
    content_type TEXT,
    encoding TEXT,
    encoding_source TEXT,
    size INTEGER NOT NULL,
    truncated INTEGER NOT NULL,
    elapsed_ms REAL NOT NULL,
    fetched_at REAL NOT NULL,
    sha256 TEXT NOT NULL,
    redirects TEXT NOT NULL,
    timings TEXT NOT NULL,
    body BLOB
);

CREATE TABLE IF NOT EXISTS counts (status TEXT PRIMARY KEY, n INTEGER NOT NULL);
INSERT OR IGNORE INTO counts(status, n) VALUES
    ('queued', 0), ('running', 0), ('completed', 0), ('failed', 0), ('cancelled', 0);

CREATE TRIGGER IF NOT EXISTS jobs_count_insert AFTER INSERT ON jobs BEGIN
    UPDATE counts SET n = n + 1 WHERE status = NEW.status;
END;
CREATE TRIGGER IF NOT EXISTS jobs_count_update AFTER UPDATE OF status ON jobs
WHEN OLD.status <> NEW.status BEGIN
    UPDATE counts SET n = n - 1 WHERE status = OLD.status;
    UPDATE counts SET n = n + 1 WHERE status = NEW.status;
END;
CREATE TRIGGER IF NOT EXISTS jobs_count_delete AFTER DELETE ON jobs BEGIN
    UPDATE counts SET n = n - 1 WHERE status = OLD.status;
END;
"""

_BATCH_DELTA = ", ".join(
    f"{s} = {s} + (NEW.status = '{s}') - (OLD.status = '{s}')"
    for s in ("queued", "running", "completed", "failed", "cancelled")
)

V2_JOB_SPECS = f"""
ALTER TABLE jobs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN not_before REAL;
ALTER TABLE jobs ADD COLUMN fetch TEXT;
ALTER TABLE jobs ADD COLUMN tags TEXT;
ALTER TABLE jobs ADD COLUMN batch_id TEXT;
ALTER TABLE jobs ADD COLUMN reused_from TEXT;
ALTER TABLE jobs ADD COLUMN reuse_key TEXT;
DROP INDEX jobs_due;
CREATE INDEX jobs_due ON jobs(priority DESC, available_at) WHERE status IN ('queued', 'running');
CREATE INDEX jobs_fresh ON jobs(reuse_key, finished_at) WHERE status = 'completed' AND reused_from IS NULL;
CREATE INDEX jobs_by_batch ON jobs(batch_id, seq) WHERE batch_id IS NOT NULL;
CREATE INDEX jobs_batch_status ON jobs(batch_id, status) WHERE batch_id IS NOT NULL;

ALTER TABLE results ADD COLUMN body_from TEXT;
CREATE INDEX results_body_from ON results(body_from) WHERE body_from IS NOT NULL;

CREATE TABLE batches (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL,
    total INTEGER NOT NULL,
    tags TEXT,
    sealed INTEGER NOT NULL DEFAULT 0,
    storing_until REAL,
    finished_at REAL,
    queued INTEGER NOT NULL DEFAULT 0,
    running INTEGER NOT NULL DEFAULT 0,
    completed INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    cancelled INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX batches_unsealed ON batches(storing_until) WHERE sealed = 0;

-- Inserts come only through the store's add(), which counts each chunk with one UPDATE per status:
-- a trigger per inserted row cost more than the insert itself (3 s per 100,000 rows).
DROP TRIGGER jobs_count_insert;
CREATE TRIGGER batch_count_update AFTER UPDATE OF status ON jobs
WHEN NEW.batch_id IS NOT NULL AND OLD.status <> NEW.status BEGIN
    UPDATE batches SET {_BATCH_DELTA},
        finished_at = CASE
            WHEN sealed = 1 AND queued + (NEW.status = 'queued') - (OLD.status = 'queued')
                 + running + (NEW.status = 'running') - (OLD.status = 'running') = 0
            THEN COALESCE(finished_at, NEW.updated_at) ELSE NULL END
    WHERE id = NEW.batch_id;
END;
CREATE TRIGGER batch_count_delete AFTER DELETE ON jobs WHEN OLD.batch_id IS NOT NULL BEGIN
    UPDATE batches SET queued = queued - (OLD.status = 'queued'), running = running - (OLD.status = 'running'),
        completed = completed - (OLD.status = 'completed'), failed = failed - (OLD.status = 'failed'),
        cancelled = cancelled - (OLD.status = 'cancelled')
    WHERE id = OLD.batch_id;
END;

CREATE TABLE idempotency (
    client TEXT NOT NULL,
    key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    created_at REAL NOT NULL,
    locked_until REAL,
    status INTEGER,
    response TEXT,
    PRIMARY KEY (client, key)
);
CREATE INDEX idempotency_by_age ON idempotency(created_at);
"""


V3_WEBHOOKS = """
ALTER TABLE jobs ADD COLUMN webhook TEXT;
ALTER TABLE jobs ADD COLUMN attempt_log TEXT;  -- JSON list: one entry per finished attempt
ALTER TABLE batches ADD COLUMN webhook TEXT;

-- The outbox: a row is written in the transaction of the state change it tells of.
CREATE TABLE webhook_deliveries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    event TEXT NOT NULL,
    url TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    task_id TEXT,
    batch_id TEXT,
    payload BLOB NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    next_attempt_at REAL,
    lease_token TEXT,
    last_http_status INTEGER,
    last_error TEXT,
    delivered_at REAL
);
CREATE INDEX deliveries_due ON webhook_deliveries(next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_failed ON webhook_deliveries(seq) WHERE status = 'failed';
CREATE INDEX deliveries_by_task ON webhook_deliveries(task_id, seq) WHERE task_id IS NOT NULL;
CREATE INDEX deliveries_by_batch ON webhook_deliveries(batch_id, seq) WHERE batch_id IS NOT NULL;

-- Listing filters (sqlite_filters.py): each ordered by seq, so a page is read newest first.
CREATE INDEX jobs_by_host ON jobs(host, seq);
CREATE INDEX jobs_by_error ON jobs(error_code, seq) WHERE error_code IS NOT NULL;
CREATE INDEX jobs_by_http_status ON jobs(http_status, seq) WHERE http_status IS NOT NULL;
CREATE INDEX jobs_by_created ON jobs(created_at);

-- Full-text search (sqlite_text.py): the words of each stored page, keyed by the result's seq,
-- filled by a background loop shortly after completion; indexed_seq is how far it got.
CREATE VIRTUAL TABLE results_fts USING fts5(text, content='', tokenize='unicode61 remove_diacritics 2');
CREATE TABLE text_index_state (indexed_seq INTEGER NOT NULL);
INSERT INTO text_index_state (indexed_seq) VALUES (0);
"""

V6_RAW_HEADERS = """
CREATE INDEX url_changes_task ON url_changes (task_id);
-- The final response's status line and header lines as received (WARC response records); NULL before.
ALTER TABLE results ADD COLUMN raw_headers BLOB;
"""


def _reuse_keys_for_old_jobs(conn: sqlite3.Connection) -> None:
    """Jobs of release 0.1 were plain GETs: give the completed ones the key freshness reuse looks up."""
    conn.create_function("jq_reuse_key", 1, DEFAULT_FETCH.reuse_key, deterministic=True)
    conn.execute("UPDATE jobs SET reuse_key = jq_reuse_key(url)")


def _bodies_and_late_columns(conn: sqlite3.Connection) -> None:
    """Step 4's data; and `attempt_log`, which a database made while step 3 lacked it does not have yet."""
    if "attempt_log" not in {row[1] for row in conn.execute("PRAGMA table_info(jobs)")}:
        conn.execute("ALTER TABLE jobs ADD COLUMN attempt_log TEXT")
    move_bodies_into_store(conn)


# A schedule's next run, copied from its last (the statement of sqlite_schedules.finish_run as of step 11)
_V11_NEXT_RUN = (
    "INSERT OR IGNORE INTO jobs (id, url, host, status, attempts, created_at, updated_at, available_at, priority,"
    " fetch, tags, reuse_key, webhook, schedule_id, every, due_at)"
    " SELECT ?, url, host, 'queued', 0, ?, ?, ?, priority, fetch, tags, reuse_key, webhook, schedule_id, every, ?"
    " FROM jobs WHERE id = ?"
)


def _resume_silently_stopped_schedules(conn: sqlite3.Connection) -> None:
    """Release 0.3's bulk cancel and batch cancel ended a schedule's current run without queuing the next, so the
    schedule, not stopped, never ran again: queue that next run at its grid's first due time from now on, and count
    the cancelled run, as a cancel does now. An active schedule whose latest run is finished has lost its chain
    (every finish and cancel queues a later run); one with no run left to copy is left alone."""
    now = time.time()
    ids = TaskIds()
    for schedule_id, every, current in conn.execute(
            "SELECT id, every, next_task_id FROM schedules WHERE stopped_at IS NULL").fetchall():
        last = conn.execute("SELECT id, status, due_at FROM jobs WHERE schedule_id = ? ORDER BY due_at DESC LIMIT 1",
                            (schedule_id,)).fetchone()
        if last is None or last[1] in ("queued", "running") or last[2] is None:
            continue
        due = next_due(last[2], every, now)
        new_id = ids.new(now)
        if conn.execute(_V11_NEXT_RUN, (new_id, now, now, due, due, last[0])).rowcount == 0:
            continue
        conn.execute("UPDATE counts SET n = n + 1 WHERE status = 'queued'")
        uncounted = last[1] == "cancelled" and last[0] == current  # cancelled without its schedule hearing of it
        conn.execute("UPDATE schedules SET next_task_id = ?, next_run_at = ?, runs = runs + ? WHERE id = ?",
                     (new_id, due, int(uncounted), schedule_id))


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "release 0.1: jobs, results, counts kept by triggers", V1_RELEASE_0_1),
    Migration(2, "job specs, priority, freshness reuse, batches, idempotency keys", V2_JOB_SPECS,
              _reuse_keys_for_old_jobs),
    Migration(3, "webhooks (a job's and a batch's, the deliveries outbox), listing filter indexes, "
              "full-text search", V3_WEBHOOKS),
    Migration(4, "bodies stored once per sha256 and compressed, storage totals, history and retention indexes",
              V4_BODIES, _bodies_and_late_columns),
    Migration(5, "recurring fetches (schedules) and the url.changed outbox", V5_SCHEDULES),
    Migration(6, "url.changed looked up by run for its webhook; raw response header lines for WARC", V6_RAW_HEADERS),
    Migration(7, "a body's reference count in a narrow table of its own, so counting does not rewrite the body",
              V7_BODY_REFS),
    Migration(8, "the change log: every job state change in commit order, for every process's live updates",
              V8_JOB_CHANGES),
    Migration(9, "slots: requests in flight per host and per webhook endpoint, counted across processes", V9_SLOTS),
    Migration(10, "live statistics every process adds its counts to, so every dashboard shows the service's",
              V10_STATS),
    Migration(11, "schedules a release-0.3 bulk or batch cancel stopped silently get their next run", "",
              _resume_silently_stopped_schedules),
    Migration(12, "rendered jobs: their render options, a claim index of their own, their results' render facts, "
              "screenshots and PDFs stored as bodies", V12_RENDERED),
    Migration(13, "derived views of a body (Markdown, text, links, metadata) kept once per extractor version, "
              "dropped with their body", V13_BODY_VIEWS),
    Migration(14, "a job's readable formats, computed at its completion, and what counts as its page's change",
              V14_READABLE),
    Migration(15, "each origin's robots.txt, shared by every process until it expires, and whether a job obeys it",
              V15_ROBOTS),
    Migration(16, "crawls: their pages are jobs with a crawl, a depth and a parent, each page once per crawl",
              V16_CRAWLS),
    Migration(17, "per-host pacing: each host's policy and next allowed fetch start, shared by every process",
              V17_HOSTS),
    Migration(18, "the search index keeps which pages hold a word, not where: half the writer's CPU per page; "
              "pages are indexed again", V18_WORDS_WITHOUT_POSITIONS),
)
LATEST = MIGRATIONS[-1].version


def current_version(conn: sqlite3.Connection) -> int:
    """The schema version of an open database: 0 for an empty file, 1 for a file of release 0.1."""
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "schema_version" in tables:
        row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
        return int(row[0] or 0)
    return 1 if "jobs" in tables else 0


def migrate(conn: sqlite3.Connection) -> list[int]:
    """Bring the database up to LATEST in one transaction; return the versions applied.

    BEGIN IMMEDIATE makes a second process opening the same file wait, then see the new version.
    A database newer than this code is refused rather than misread.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = current_version(conn)
        if version > LATEST:
            raise sqlite3.DatabaseError(
                f"the database has schema version {version}, newer than this jobqueue understands ({LATEST}); "
                "upgrade jobqueue")
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, description TEXT,"
                     " applied_at REAL NOT NULL DEFAULT ((julianday('now') - 2440587.5) * 86400.0))")
        applied = []
        for step in MIGRATIONS:
            if step.version <= version:
                if step.version == 1 and version == 1:
                    conn.execute("INSERT OR IGNORE INTO schema_version (version, description) VALUES (?, ?)",
                                 (1, step.description))
                continue
            for statement in _statements(step.sql):
                conn.execute(statement)
            if step.python is not None:
                step.python(conn)
            conn.execute("INSERT INTO schema_version (version, description) VALUES (?, ?)",
                         (step.version, step.description))
            applied.append(step.version)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return applied


def _statements(script: str) -> list[str]:
    """Split a script into whole statements (trigger bodies keep their inner semicolons)."""
    out, current = [], ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            if current.strip():
                out.append(current.strip())
            current = ""
    if current.strip():
        out.append(current.strip())
    return out
