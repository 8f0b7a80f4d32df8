"""Content-addressed bodies on SQLite: each distinct body stored once (by sha256), compressed, counted.

A result points at its body by `body_id` (the body's rowid: reading a body is one lookup by primary
key, joined to the result row). Triggers keep every body's reference count and the storage totals as
results come and go, whoever deletes them (a retry, a bulk delete, retention), and remove a body with
its last reference; so GET /stats/storage reads one row and never scans.
"""

from __future__ import annotations

import json
import sqlite3

from jobqueue.history.codec import Packed, pack, unpack
from jobqueue.models import Result

V4_BODIES = """
CREATE TABLE bodies (
    id INTEGER PRIMARY KEY,
    sha256 TEXT NOT NULL UNIQUE,
    codec TEXT NOT NULL,
    size INTEGER NOT NULL,
    stored_size INTEGER NOT NULL,
    refs INTEGER NOT NULL DEFAULT 0,
    data BLOB NOT NULL
);
ALTER TABLE results ADD COLUMN body_id INTEGER;
CREATE INDEX results_by_url ON results(url, seq);
CREATE INDEX jobs_finished ON jobs(finished_at) WHERE finished_at IS NOT NULL;

CREATE TABLE storage_totals (
    results INTEGER NOT NULL, distinct_bodies INTEGER NOT NULL, body_bytes INTEGER NOT NULL,
    stored_bytes INTEGER NOT NULL
);
INSERT INTO storage_totals VALUES (0, 0, 0, 0);

CREATE TRIGGER results_body_insert AFTER INSERT ON results BEGIN
    UPDATE bodies SET refs = refs + 1 WHERE id = NEW.body_id;
    UPDATE storage_totals SET results = results + 1,
        body_bytes = body_bytes + COALESCE((SELECT size FROM bodies WHERE id = NEW.body_id), LENGTH(NEW.body), 0);
END;
CREATE TRIGGER results_body_delete AFTER DELETE ON results BEGIN
    UPDATE storage_totals SET results = results - 1,
        body_bytes = body_bytes - COALESCE((SELECT size FROM bodies WHERE id = OLD.body_id), LENGTH(OLD.body), 0);
    UPDATE bodies SET refs = refs - 1 WHERE id = OLD.body_id;
    DELETE FROM bodies WHERE id = OLD.body_id AND refs <= 0;
END;
CREATE TRIGGER bodies_insert AFTER INSERT ON bodies BEGIN
    UPDATE storage_totals SET distinct_bodies = distinct_bodies + 1, stored_bytes = stored_bytes + NEW.stored_size;
END;
CREATE TRIGGER bodies_delete AFTER DELETE ON bodies BEGIN
    UPDATE storage_totals SET distinct_bodies = distinct_bodies - 1, stored_bytes = stored_bytes - OLD.stored_size;
END;
"""

# A body's reference count lives in a narrow row of its own: counting a result in `bodies.refs` rewrote
# the body's record (its compressed data and overflow pages) and dirtied its pages at every completion.
# `bodies.refs` is left in place, unused, rather than rewriting a table that holds every body.
V7_BODY_REFS = """
CREATE TABLE body_refs (body_id INTEGER PRIMARY KEY, refs INTEGER NOT NULL);
INSERT INTO body_refs (body_id, refs) SELECT id, refs FROM bodies;
DROP TRIGGER results_body_insert;
DROP TRIGGER results_body_delete;
DROP TRIGGER bodies_insert;
DROP TRIGGER bodies_delete;
CREATE TRIGGER results_body_insert AFTER INSERT ON results BEGIN
    UPDATE body_refs SET refs = refs + 1 WHERE body_id = NEW.body_id;
    UPDATE storage_totals SET results = results + 1,
        body_bytes = body_bytes + COALESCE((SELECT size FROM bodies WHERE id = NEW.body_id), LENGTH(NEW.body), 0);
END;
CREATE TRIGGER results_body_delete AFTER DELETE ON results BEGIN
    UPDATE storage_totals SET results = results - 1,
        body_bytes = body_bytes - COALESCE((SELECT size FROM bodies WHERE id = OLD.body_id), LENGTH(OLD.body), 0);
    UPDATE body_refs SET refs = refs - 1 WHERE body_id = OLD.body_id;
    DELETE FROM bodies WHERE id = OLD.body_id AND (SELECT refs FROM body_refs WHERE body_id = OLD.body_id) <= 0;
END;
CREATE TRIGGER bodies_insert AFTER INSERT ON bodies BEGIN
    INSERT INTO body_refs (body_id, refs) VALUES (NEW.id, 0);
    UPDATE storage_totals SET distinct_bodies = distinct_bodies + 1, stored_bytes = stored_bytes + NEW.stored_size;
END;
CREATE TRIGGER bodies_delete AFTER DELETE ON bodies BEGIN
    DELETE FROM body_refs WHERE body_id = OLD.id;
    UPDATE storage_totals SET distinct_bodies = distinct_bodies - 1, stored_bytes = stored_bytes - OLD.stored_size;
END;
"""

# What a result read with its body selects besides RESULT_COLUMNS (`body` is a body of schema 3 or
# older a row may still hold when written by a tool that predates bodies; it is read as is).
BODY_COLUMNS = ("bodies.codec AS body_codec, bodies.data AS body_data, bodies.size AS body_size, results.body AS body,"
                " results.raw_headers AS raw_headers")
WITH_BODY = "results LEFT JOIN bodies ON bodies.id = results.body_id"
MIGRATION_CHUNK = 500


def body_of(row: sqlite3.Row) -> bytes | None:
    """The original bytes of the body a row read with BODY_COLUMNS points at."""
    if row["body_data"] is not None:
        return unpack(row["body_codec"], row["body_data"], row["body_size"])
    return bytes(row["body"]) if row["body"] is not None else None


def keep_body(conn: sqlite3.Connection, body: bytes, sha256: str) -> int:
    """The id of the stored body with this sha256, storing it (compressed) if it is new."""
    found = conn.execute("SELECT id FROM bodies WHERE sha256 = ?", (sha256,)).fetchone()
    if found is not None:
        return int(found[0])
    return _insert(conn, pack(body, sha256))


def _insert(conn: sqlite3.Connection, packed: Packed) -> int:
    return int(conn.execute(
        "INSERT INTO bodies (sha256, codec, size, stored_size, data) VALUES (?, ?, ?, ?, ?) RETURNING id",
        (packed.sha256, packed.codec, packed.size, len(packed.data), packed.data)).fetchone()[0])


def result_values(job_id: str, result: Result) -> tuple[object, ...]:
    """The RESULT_COLUMNS values of a job's result, made before the write (on the IOLoop, where the result is),
    so the writer thread, which every process's jobs wait for, does not encode them."""
    from jobqueue.store.sqlite.rendered import render_column

    return (job_id, result.url, result.final_url, result.http_status, json.dumps(result.headers),
            result.content_type, result.encoding, result.encoding_source, result.size, int(result.truncated),
            result.elapsed_ms, result.fetched_at, result.sha256, json.dumps(result.redirects),
            json.dumps(result.timings), render_column(result))


def insert_result(conn: sqlite3.Connection, columns: str, values: tuple[object, ...], result: Result,
                  sha256: str | None) -> None:
    """Store a job's result (`values`: result_values) pointing at its (shared) body; `sha256` is the digest of
    result.body."""
    from jobqueue.store.sqlite.rendered import artifact_ids

    body_id = keep_body(conn, result.body, sha256) if result.body is not None and sha256 else None
    screenshot_id, pdf_id = artifact_ids(conn, result)
    conn.execute("DELETE FROM results WHERE job_id = ?", (values[0],))  # never two results per job
    conn.execute(
        f"INSERT INTO results ({columns}, body_id, raw_headers, screenshot_id, pdf_id) VALUES ({', '.join('?' * 20)})",
        (*values, body_id, result.raw_headers, screenshot_id, pdf_id))


def storage_totals(conn: sqlite3.Connection) -> dict[str, int]:
    """The running totals of GET /stats/storage."""
    row = conn.execute("SELECT results, distinct_bodies, body_bytes, stored_bytes FROM storage_totals").fetchone()
    return {name: int(row[name]) for name in ("results", "distinct_bodies", "body_bytes", "stored_bytes")}


def move_bodies_into_store(conn: sqlite3.Connection) -> None:
    """Step 4's data: every body held in a results row moves into `bodies` (once per sha256), byte for byte.

    Results that shared a body through `body_from` (freshness reuse) point at their owner's body.
    """
    last = 0
    while True:
        rows = conn.execute("SELECT seq, body FROM results WHERE seq > ? AND body IS NOT NULL ORDER BY seq LIMIT ?",
                            (last, MIGRATION_CHUNK)).fetchall()
        if not rows:
            break
        for seq, body in rows:
            data = bytes(body)
            packed = pack(data)
            if unpack(packed.codec, packed.data, packed.size) != data:  # never trust a codec with the only copy
                raise sqlite3.DatabaseError(f"a body did not read back identical after compression (result {seq})")
            found = conn.execute("SELECT id FROM bodies WHERE sha256 = ?", (packed.sha256,)).fetchone()
            body_id = found[0] if found is not None else _insert(conn, packed)
            conn.execute("UPDATE results SET body_id = ?, body = NULL WHERE seq = ?", (body_id, seq))
        last = rows[-1][0]
    conn.execute("UPDATE results SET body_id = (SELECT o.body_id FROM results o WHERE o.job_id = results.body_from),"
                 " body_from = NULL WHERE body_from IS NOT NULL")
    conn.execute("UPDATE bodies SET refs = (SELECT COUNT(*) FROM results WHERE results.body_id = bodies.id)")
    conn.execute("DELETE FROM bodies WHERE refs = 0")
    conn.execute(
        "UPDATE storage_totals SET results = (SELECT COUNT(*) FROM results),"
        " distinct_bodies = (SELECT COUNT(*) FROM bodies), stored_bytes = (SELECT COALESCE(SUM(stored_size), 0)"
        " FROM bodies), body_bytes = (SELECT COALESCE(SUM(bodies.size), 0) FROM results JOIN bodies"
        " ON bodies.id = results.body_id)")

