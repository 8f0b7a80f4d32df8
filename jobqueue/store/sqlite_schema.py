"""The SQLite schema: jobs with a partial index for claims, results, and counts kept by triggers."""

from __future__ import annotations

SCHEMA = """
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

JOB_COLUMNS = (
    "id, url, host, status, attempts, created_at, updated_at, started_at, finished_at, "
    "available_at, lease_token, http_status, error_code, error_message"
)
RESULT_COLUMNS = (
    "job_id, url, final_url, http_status, headers, content_type, encoding, encoding_source, "
    "size, truncated, elapsed_ms, fetched_at, sha256, redirects, timings"
)
