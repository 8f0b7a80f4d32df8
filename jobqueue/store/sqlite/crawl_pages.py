"""SQLite statements for crawls: the crawls table, its pages (ordinary jobs with a crawl_id), and the frontier.

The frontier is the jobs table itself: a unique index on (crawl_id, crawl_key) lets each page in once, so a link
met twice, by two processes or after a crash and a second fetch of its page, is counted a duplicate instead of
queued again. A completed page's links go in the transaction of its completion, each admitted while the crawl's
`discovered` is under its `max_pages`, so that limit is exact. A crawl's counts by status are read from the jobs'
(crawl_id, status) index when it is read, so they cannot drift; it finishes in the transaction that ends its
last queued or running page (and no sitemap is still being read).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable

from jobqueue.models import CRAWL_SKIPS, STATUSES, Crawl, CrawlLinks, Task
from jobqueue.store.records import NewTask
from jobqueue.store.sqlite.schema import INSERT_JOB, new_task, new_task_row
from jobqueue.store.sqlite.webhooks import insert_deliveries
from jobqueue.webhooks.outbox import Outbox
from jobqueue.webhooks.spec import WebhookSpec

V16_CRAWLS = """
CREATE TABLE crawls (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL,
    finished_at REAL,
    status TEXT NOT NULL DEFAULT 'running',
    seeds TEXT NOT NULL,
    options TEXT NOT NULL,
    max_pages INTEGER NOT NULL,
    tags TEXT,
    webhook TEXT,
    discovered INTEGER NOT NULL DEFAULT 0,
    skipped_robots INTEGER NOT NULL DEFAULT 0,
    skipped_scope INTEGER NOT NULL DEFAULT 0,
    skipped_duplicate INTEGER NOT NULL DEFAULT 0,
    skipped_limit INTEGER NOT NULL DEFAULT 0,
    seeding_until REAL
);
ALTER TABLE jobs ADD COLUMN crawl_id TEXT;
ALTER TABLE jobs ADD COLUMN depth INTEGER;
ALTER TABLE jobs ADD COLUMN parent_id TEXT;
ALTER TABLE jobs ADD COLUMN crawl_key TEXT;
CREATE UNIQUE INDEX jobs_crawl_page ON jobs(crawl_id, crawl_key) WHERE crawl_id IS NOT NULL;
CREATE INDEX jobs_crawl_status ON jobs(crawl_id, status) WHERE crawl_id IS NOT NULL;
CREATE INDEX jobs_by_crawl ON jobs(crawl_id, seq) WHERE crawl_id IS NOT NULL;
"""

KEYS_PER_LOOKUP = 500  # well under SQLite's limit of bound parameters per statement
CRAWL_COLUMNS = ("seq, id, created_at, finished_at, status, seeds, options, tags, discovered, skipped_robots, "
            "skipped_scope, skipped_duplicate, skipped_limit, seeding_until")
ACTIVE = "SELECT 1 FROM jobs WHERE crawl_id = crawls.id AND status IN ('queued', 'running')"


def _counts(conn: sqlite3.Connection, crawl_id: str) -> dict[str, int]:
    counted = dict.fromkeys(STATUSES, 0)
    for status, n in conn.execute("SELECT status, COUNT(*) FROM jobs INDEXED BY jobs_crawl_status"
                                  " WHERE crawl_id = ? GROUP BY status", (crawl_id,)):
        counted[status] = n
    return counted


def crawl_from_row(conn: sqlite3.Connection, row: sqlite3.Row, counted: bool = True) -> Crawl:
    """A crawls row as a Crawl, with its pages counted by status unless not `counted` (counts left empty)."""
    counts = _counts(conn, row["id"]) if counted else {}
    return Crawl(id=row["id"], created_at=row["created_at"], status=row["status"], seeds=json.loads(row["seeds"]),
                 options=json.loads(row["options"]), counts=counts, discovered=row["discovered"],
                 skipped={k: row[f"skipped_{k}"] for k in CRAWL_SKIPS}, finished_at=row["finished_at"],
                 tags=tuple(json.loads(row["tags"])) if row["tags"] else (),
                 seeding=row["seeding_until"] is not None)


def insert_pages(conn: sqlite3.Connection, crawl_id: str, links: CrawlLinks, now: float) -> list[Task]:
    """Queue the pages a crawl does not have yet while it has room; count the rest as duplicates or over the
    limit, and what the caller left out already. Nothing is queued for a crawl that is no longer running."""
    row = conn.execute("SELECT status, discovered, max_pages FROM crawls WHERE id = ?", (crawl_id,)).fetchone()
    if row is None or row["status"] != "running":
        return []
    room = row["max_pages"] - row["discovered"]
    skipped = {k: links.skipped.get(k, 0) for k in CRAWL_SKIPS}
    first: dict[str | None, NewTask] = {}
    for page in links.pages:
        first.setdefault(page.crawl_key, page)
    pages = list(first.values())
    skipped["duplicate"] += len(links.pages) - len(pages)
    fresh = _not_known(conn, crawl_id, pages)
    skipped["duplicate"] += len(pages) - len(fresh)
    queued = fresh[:max(room, 0)]
    skipped["limit"] += len(fresh) - len(queued)
    # one statement for all: the writer holds the database, so no key looked up above can have come in since
    conn.executemany(INSERT_JOB, [new_task_row(page, now) for page in queued])
    added = [new_task(page, now) for page in queued]
    if added:
        conn.execute("UPDATE counts SET n = n + ? WHERE status = 'queued'", (len(added),))
    conn.execute("UPDATE crawls SET discovered = discovered + ?, " + ", ".join(
        f"skipped_{k} = skipped_{k} + ?" for k in CRAWL_SKIPS) + " WHERE id = ?",
        (len(added), *(skipped[k] for k in CRAWL_SKIPS), crawl_id))
    return added


def _not_known(conn: sqlite3.Connection, crawl_id: str, pages: list[NewTask]) -> list[NewTask]:
    known: set[str] = set()
    for start in range(0, len(pages), KEYS_PER_LOOKUP):
        keys = [page.crawl_key for page in pages[start:start + KEYS_PER_LOOKUP]]
        known.update(key for (key,) in conn.execute(
            "SELECT crawl_key FROM jobs INDEXED BY jobs_crawl_page WHERE crawl_id = ? AND crawl_key IN "
            f"({', '.join('?' * len(keys))})", (crawl_id, *keys)))
    return [page for page in pages if page.crawl_key not in known]


def finish_crawls(conn: sqlite3.Connection, crawl_ids: Iterable[str], now: float, outbox: Outbox | None) -> None:
    """Mark finished each running crawl with no page left to fetch and no sitemap being read; its crawl.finished
    deliveries go in the same transaction."""
    for crawl_id in dict.fromkeys(crawl_ids):
        row = conn.execute(
            f"UPDATE crawls SET status = 'finished', finished_at = ? WHERE id = ? AND status = 'running'"
            f" AND seeding_until IS NULL AND NOT EXISTS ({ACTIVE})"
            f" RETURNING {CRAWL_COLUMNS}, webhook", (now, crawl_id)).fetchone()
        if row is not None:
            notify(conn, row, now, outbox)


def notify(conn: sqlite3.Connection, row: sqlite3.Row, now: float, outbox: Outbox | None) -> None:
    if outbox is not None:
        hook = WebhookSpec.from_json(json.loads(row["webhook"])) if row["webhook"] else None
        insert_deliveries(conn, outbox.for_crawl(crawl_from_row(conn, row), hook, now))
