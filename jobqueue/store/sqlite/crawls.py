"""The crawl operations of SQLiteStore (the statements they share with completions are in crawl_pages.py)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING

from jobqueue.errors import NotFound
from jobqueue.models import Crawl, CrawlLinks, Page, Task
from jobqueue.store.records import NewCrawl, NewTask
from jobqueue.store.sqlite.crawl_pages import ACTIVE, CRAWL_COLUMNS, crawl_from_row, finish_crawls, insert_pages, notify
from jobqueue.store.sqlite.schema import decode_cursor, encode_cursor
from jobqueue.store.sqlite.thread import T
from jobqueue.store.sqlite.transitions import move_jobs, status_in
from jobqueue.store.transitions import CANCEL, Given
from jobqueue.webhooks.outbox import Outbox


class SQLiteCrawlOps:
    """The crawl operations of SQLiteStore, over its writer and reader threads."""

    clock: Callable[[], float]
    outbox: Outbox | None

    if TYPE_CHECKING:  # provided by SQLiteStore
        async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T: ...
        async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T: ...

    async def create_crawl(self, crawl: NewCrawl, seeds: list[NewTask]) -> tuple[Crawl, list[Task]]:
        """Store a crawl and queue its seeds (up to max_pages) in one transaction; while `crawl.seeding_seconds`
        runs, its sitemaps are being read, so it cannot finish."""
        now = self.clock()

        def create(conn: sqlite3.Connection) -> tuple[Crawl, list[Task]]:
            conn.execute(
                "INSERT INTO crawls (id, created_at, seeds, options, max_pages, tags, webhook, seeding_until)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (crawl.id, now, json.dumps(crawl.seeds), json.dumps(crawl.options), crawl.max_pages,
                 json.dumps(list(crawl.tags)) if crawl.tags else None,
                 json.dumps(crawl.webhook.to_json()) if crawl.webhook is not None else None,
                 now + crawl.seeding_seconds if crawl.seeding_seconds else None))
            added = insert_pages(conn, crawl.id, CrawlLinks(seeds, crawl.skipped), now)
            finish_crawls(conn, [crawl.id], now, self.outbox)
            return self._one(conn, crawl.id), added

        return await self._write(create)

    async def add_crawl_pages(self, crawl_id: str, links: CrawlLinks, seeded: bool = False) -> list[Task]:
        """Queue pages found outside a completion (a sitemap's); `seeded` ends the crawl's sitemap reading, so
        it may finish."""
        now = self.clock()

        def add(conn: sqlite3.Connection) -> list[Task]:
            added = insert_pages(conn, crawl_id, links, now)
            if seeded:
                conn.execute("UPDATE crawls SET seeding_until = NULL WHERE id = ?", (crawl_id,))
                finish_crawls(conn, [crawl_id], now, self.outbox)
            return added

        return await self._write(add)

    async def get_crawl(self, crawl_id: str, counted: bool = True) -> Crawl | None:
        """A crawl with its pages counted by status (unless not `counted`: counts empty), or None."""
        def get(conn: sqlite3.Connection) -> Crawl | None:
            row = conn.execute(f"SELECT {CRAWL_COLUMNS} FROM crawls WHERE id = ?", (crawl_id,)).fetchone()
            return None if row is None else crawl_from_row(conn, row, counted)

        return await self._read(get)

    async def list_crawls(self, limit: int, cursor: str | None) -> Page:
        """Newest crawls first, `limit` a page."""
        before = decode_cursor(cursor)

        def page(conn: sqlite3.Connection) -> Page:
            clause, args = ("WHERE seq < ?", (before,)) if before is not None else ("", ())
            rows = conn.execute(f"SELECT {CRAWL_COLUMNS} FROM crawls {clause} ORDER BY seq DESC LIMIT ?",
                                (*args, limit + 1)).fetchall()
            items = [crawl_from_row(conn, r) for r in rows[:limit]]
            return Page(items, encode_cursor(rows[limit - 1]["seq"]) if len(rows) > limit else None)

        return await self._read(page)

    async def cancel_crawl(self, crawl_id: str, limit: int) -> tuple[Crawl, list[Task]]:
        """Stop a crawl from growing and cancel up to `limit` of its unfinished pages (call again until none are
        left); finished pages stay. The crawl is `cancelled` at once, and finished when its last page ends."""
        now = self.clock()

        def cancel(conn: sqlite3.Connection) -> tuple[Crawl, list[Task]]:
            found = conn.execute("SELECT status FROM crawls WHERE id = ?", (crawl_id,)).fetchone()
            if found is None:
                raise NotFound(crawl_id, "crawl")
            if found["status"] == "running":
                conn.execute("UPDATE crawls SET status = 'cancelled', seeding_until = NULL WHERE id = ?",
                             (crawl_id,))
            chunk = ("seq IN (SELECT seq FROM jobs INDEXED BY jobs_crawl_status WHERE crawl_id = ?"
                     f" AND {status_in(CANCEL)} LIMIT ?)")
            cancelled = move_jobs(conn, CANCEL, chunk, (crawl_id, limit), Given(now), self.outbox)
            row = conn.execute(f"UPDATE crawls SET finished_at = ? WHERE id = ? AND finished_at IS NULL"
                               f" AND NOT EXISTS ({ACTIVE}) RETURNING {CRAWL_COLUMNS}, webhook",
                               (now, crawl_id)).fetchone()
            if row is not None and found["status"] == "running":
                notify(conn, row, now, self.outbox)
            return self._one(conn, crawl_id), cancelled

        return await self._write(cancel)

    async def take_stalled_seeding(self, seconds: float, limit: int) -> list[Crawl]:
        """Running crawls whose sitemap reading stopped before it ended (its process died: its time ran out),
        each now held by the caller for `seconds`, so one process reads them again."""
        now = self.clock()

        def take(conn: sqlite3.Connection) -> list[Crawl]:
            rows = conn.execute(
                "UPDATE crawls SET seeding_until = ? WHERE id IN (SELECT id FROM crawls WHERE status = 'running'"
                f" AND seeding_until < ? LIMIT ?) RETURNING {CRAWL_COLUMNS}", (now + seconds, now, limit)).fetchall()
            return [crawl_from_row(conn, row) for row in rows]

        return await self._write(take)

    @staticmethod
    def _one(conn: sqlite3.Connection, crawl_id: str) -> Crawl:
        row = conn.execute(f"SELECT {CRAWL_COLUMNS} FROM crawls WHERE id = ?", (crawl_id,)).fetchone()
        return crawl_from_row(conn, row)

