"""SQLite statements for batches and idempotency keys (run on the store's writer or reader connection).

Batch counts move with their jobs (a trigger on each status change, one update per inserted chunk in
the store's add()), so reading a batch of any size is one row. A batch is `sealed` once all of its
jobs are stored; until then it cannot finish. One whose request failed, or whose storing process died
(its `storing_until` passed), is removed with its jobs and their results: its request never got an
answer, so nothing accepted is lost.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from jobqueue.errors import NotFound
from jobqueue.idempotency import KEY_TTL, IdempotencyKey, KeyRow, StoredAnswer, decide
from jobqueue.models import Batch, Page, Task
from jobqueue.store.sqlite.schema import (
    BATCH_COLUMNS,
    batch_from_row,
    decode_cursor,
    drop_result,
    encode_cursor,
)
from jobqueue.store.sqlite.thread import T
from jobqueue.store.sqlite.transitions import move_batch_chunk
from jobqueue.store.sqlite.webhooks import write_batch_outbox
from jobqueue.store.transitions import RETRY_FAILED, Given
from jobqueue.webhooks.outbox import Outbox
from jobqueue.webhooks.spec import WebhookSpec


def create_batch(conn: sqlite3.Connection, batch_id: str, total: int, tags: Sequence[str], now: float,
                 storing_until: float, webhook: WebhookSpec | None = None) -> Batch:
    """Insert an unsealed batch; its jobs follow in chunks."""
    row = conn.execute(
        "INSERT INTO batches (id, created_at, total, tags, sealed, storing_until, webhook)"
        f" VALUES (?, ?, ?, ?, 0, ?, ?) RETURNING {BATCH_COLUMNS}",
        (batch_id, now, total, json.dumps(list(tags)) if tags else None, storing_until,
         json.dumps(webhook.to_json()) if webhook is not None else None)).fetchone()
    return batch_from_row(row)


def seal_batch(conn: sqlite3.Connection, batch_id: str, now: float) -> Batch | None:
    """Mark every job stored; a batch whose jobs all finished already is finished now."""
    row = conn.execute(
        "UPDATE batches SET sealed = 1, storing_until = NULL,"
        " finished_at = CASE WHEN queued + running = 0 THEN ? ELSE NULL END"
        f" WHERE id = ? RETURNING {BATCH_COLUMNS}", (now, batch_id)).fetchone()
    return batch_from_row(row) if row else None


def drop_unfinished_storing(conn: sqlite3.Connection, now: float, limit: int = 5000) -> int:
    """Remove (up to `limit` jobs of) batches whose storing process died before answering."""
    dead = [r[0] for r in conn.execute(
        "SELECT id FROM batches WHERE sealed = 0 AND storing_until < ?", (now,)).fetchall()]
    removed = 0
    for batch_id in dead:
        doomed = conn.execute("SELECT seq, id FROM jobs WHERE batch_id = ? LIMIT ?",
                              (batch_id, limit - removed)).fetchall()
        for row in conn.execute(f"SELECT job_id FROM results WHERE job_id IN ({','.join('?' * len(doomed))})",
                                [r["id"] for r in doomed]).fetchall() if doomed else ():
            drop_result(conn, row["job_id"])
        removed += conn.execute(f"DELETE FROM jobs WHERE seq IN ({','.join('?' * len(doomed))})",
                                [r["seq"] for r in doomed]).rowcount if doomed else 0
        if not conn.execute("SELECT 1 FROM jobs WHERE batch_id = ? LIMIT 1", (batch_id,)).fetchone():
            conn.execute("DELETE FROM batches WHERE id = ?", (batch_id,))
        if removed >= limit:
            break
    return removed


def drop_emptied_batches(conn: sqlite3.Connection, batch_ids: Iterable[str], finished_before: float) -> int:
    """Delete the sealed batches, finished before a time, whose last job retention has just deleted (a job it
    spared keeps its batch); how many went."""
    gone = 0
    for batch_id in batch_ids:
        if conn.execute("SELECT 1 FROM jobs WHERE batch_id = ? LIMIT 1", (batch_id,)).fetchone() is None:
            gone += conn.execute("DELETE FROM batches WHERE id = ? AND sealed = 1 AND finished_at < ?",
                                 (batch_id, finished_before)).rowcount
    return gone


def get_batches(conn: sqlite3.Connection, batch_ids: Sequence[str]) -> list[Batch]:
    """Read batches by id (sealed ones only: an unsealed batch does not exist for users yet)."""
    if not batch_ids:
        return []
    marks = ",".join("?" * len(batch_ids))
    rows = conn.execute(f"SELECT {BATCH_COLUMNS} FROM batches WHERE sealed = 1 AND id IN ({marks})",
                        tuple(batch_ids)).fetchall()
    return [batch_from_row(r) for r in rows]


def list_batches(conn: sqlite3.Connection, before_seq: int | None, limit: int) -> list[sqlite3.Row]:
    """Newest sealed batches first, `limit` + 1 rows so the caller knows whether more follow."""
    clause, args = ("AND seq < ?", (before_seq,)) if before_seq is not None else ("", ())
    return conn.execute(f"SELECT {BATCH_COLUMNS} FROM batches WHERE sealed = 1 {clause} ORDER BY seq DESC LIMIT ?",
                        (*args, limit + 1)).fetchall()


def read_key(conn: sqlite3.Connection, key: IdempotencyKey) -> KeyRow | None:
    """The stored row of an idempotency key, if any."""
    row = conn.execute("SELECT fingerprint, created_at, locked_until, status, response FROM idempotency"
                       " WHERE client = ? AND key = ?", (key.client, key.key)).fetchone()
    if row is None:
        return None
    answer = None
    if row["status"] is not None:
        stored = json.loads(row["response"])
        answer = StoredAnswer(row["status"], stored["body"], stored.get("location"))
    return KeyRow(row["fingerprint"], row["created_at"], row["locked_until"], answer)


def take_key(conn: sqlite3.Connection, key: IdempotencyKey, now: float, locked_until: float) -> None:
    """Claim a key for a request in flight (replacing an expired or abandoned row)."""
    conn.execute("INSERT OR REPLACE INTO idempotency (client, key, fingerprint, created_at, locked_until)"
                 " VALUES (?, ?, ?, ?, ?)", (key.client, key.key, key.fingerprint, now, locked_until))


def keep_answer(conn: sqlite3.Connection, key: IdempotencyKey, answer: StoredAnswer, now: float) -> None:
    """Store the first answer of a keyed request."""
    response = json.dumps({"body": answer.body, "location": answer.location})
    conn.execute("INSERT INTO idempotency (client, key, fingerprint, created_at, status, response)"
                 " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (client, key) DO UPDATE SET"
                 " fingerprint = excluded.fingerprint, locked_until = NULL, status = excluded.status,"
                 " response = excluded.response",
                 (key.client, key.key, key.fingerprint, now, answer.status, response))


def drop_key(conn: sqlite3.Connection, key: IdempotencyKey) -> None:
    """Forget a key whose request failed, so the client can send it again."""
    conn.execute("DELETE FROM idempotency WHERE client = ? AND key = ? AND status IS NULL", (key.client, key.key))


def purge_keys(conn: sqlite3.Connection, before: float, limit: int = 5000) -> int:
    """Delete keys older than a day, a bounded number at a time."""
    return conn.execute("DELETE FROM idempotency WHERE rowid IN (SELECT rowid FROM idempotency"
                        " WHERE created_at < ? LIMIT ?)", (before, limit)).rowcount


class SQLiteBatchOps:
    """The batch and idempotency-key operations of SQLiteStore, over its writer and reader threads."""

    clock: Callable[[], float]
    outbox: Outbox | None

    if TYPE_CHECKING:  # provided by SQLiteStore
        async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T: ...
        async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T: ...

    async def idempotency_begin(self, key: IdempotencyKey, lock_seconds: float) -> StoredAnswer | None:
        """Take a key for a request in flight, or return the answer to replay (IdempotencyConflict)."""
        now = self.clock()

        def begin(conn: sqlite3.Connection) -> StoredAnswer | None:
            outcome = decide(read_key(conn, key), key, now)
            if outcome is True:
                take_key(conn, key, now, now + lock_seconds)
                return None
            return outcome

        return await self._write(begin)

    async def idempotency_abort(self, key: IdempotencyKey) -> None:
        """Free a key whose request failed."""
        await self._write(lambda conn: drop_key(conn, key))

    async def purge_idempotency(self, before: float) -> int:
        """Delete keys created before `before`."""
        return await self._write(lambda conn: purge_keys(conn, before))

    async def create_batch(self, batch_id: str, total: int, tags: tuple[str, ...], storing_seconds: float,
                           webhook: WebhookSpec | None = None) -> Batch:
        """Insert an unsealed batch."""
        now = self.clock()
        return await self._write(
            lambda conn: create_batch(conn, batch_id, total, tags, now, now + storing_seconds, webhook))

    async def seal_batch(self, batch_id: str, answer: tuple[IdempotencyKey, StoredAnswer] | None) -> Batch:
        """Mark every job of a batch stored, keeping a keyed answer in the same transaction."""
        now = self.clock()

        def seal(conn: sqlite3.Connection) -> Batch:
            batch = seal_batch(conn, batch_id, now)
            if batch is None:
                raise NotFound(batch_id, "batch")
            if answer is not None:
                keep_answer(conn, answer[0], answer[1], now)
            write_batch_outbox(conn, self.outbox, batch_id, now)
            return batch

        return await self._write(seal)

    async def get_batch(self, batch_id: str) -> Batch | None:
        """One sealed batch."""
        found = await self.get_batches([batch_id])
        return found[0] if found else None

    async def get_batches(self, batch_ids: list[str]) -> list[Batch]:
        """Several sealed batches."""
        return await self._read(lambda conn: get_batches(conn, batch_ids))

    async def list_batches(self, limit: int, cursor: str | None) -> Page:
        """Sealed batches, newest first."""
        before = decode_cursor(cursor)
        rows = await self._read(lambda conn: list_batches(conn, before, limit))
        more = len(rows) > limit
        rows = rows[:limit]
        return Page([batch_from_row(r) for r in rows], encode_cursor(rows[-1]["seq"]) if more and rows else None)

    async def retry_batch(self, batch_id: str, limit: int) -> list[Task]:
        """Queue up to `limit` failed jobs of a batch again (failed jobs have no result to drop)."""
        now = self.clock()
        return await self._write(
            lambda conn: move_batch_chunk(conn, RETRY_FAILED, batch_id, limit, Given(now), self.outbox))

    async def abandon_batch(self, batch_id: str) -> None:
        """Give up on a batch being stored (its request failed): the next drop removes it with its jobs."""
        await self._write(lambda conn: conn.execute(
            "UPDATE batches SET storing_until = 0 WHERE id = ? AND sealed = 0", (batch_id,)))

    async def drop_abandoned_batches(self) -> int:
        """Remove batches whose storing process died before sealing them, with their jobs."""
        now = self.clock()
        return await self._write(lambda conn: drop_unfinished_storing(conn, now))


__all__ = ["KEY_TTL", "SQLiteBatchOps"]
