"""SQLite's webhook outbox: deliveries written with the state change that causes them, claimed under a lease.

The store's finishing writes (complete, fail, cancel, a batch's cancel chunk, a sealed batch that is
already done) call `write_outbox` on the same connection before their transaction commits, so a
process killed right after a job completes still has the delivery row when it starts again.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from jobqueue.errors import NotFound
from jobqueue.models import COMPLETED, Page, Task
from jobqueue.store.base import Lease
from jobqueue.store.sqlite import slots
from jobqueue.store.sqlite.readable import completed_views
from jobqueue.store.sqlite.schema import BATCH_COLUMNS, batch_from_row, decode_cursor, encode_cursor
from jobqueue.store.sqlite.thread import T
from jobqueue.webhooks.delivery import PENDING, Delivery, DeliveryFilter, DeliveryOutcome, endpoint_of
from jobqueue.webhooks.outbox import Outbox
from jobqueue.webhooks.spec import WebhookSpec

DELIVERY_COLUMNS = ("seq, id, event, url, task_id, batch_id, payload, status, attempts, created_at, updated_at,"
                    " next_attempt_at, lease_token, last_http_status, last_error, delivered_at")
_INSERT = ("INSERT INTO webhook_deliveries (id, event, url, endpoint, task_id, batch_id, payload, status,"
           " created_at, updated_at, next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?)")


def delivery_from_row(row: sqlite3.Row, with_payload: bool = True) -> Delivery:
    """Turn a webhook_deliveries row into a Delivery."""
    return Delivery(
        id=row["id"], event=row["event"], url=row["url"], payload=bytes(row["payload"]) if with_payload else b"",
        created_at=row["created_at"], task_id=row["task_id"], batch_id=row["batch_id"], status=row["status"],
        attempts=row["attempts"], updated_at=row["updated_at"], next_attempt_at=row["next_attempt_at"],
        last_http_status=row["last_http_status"], last_error=row["last_error"], delivered_at=row["delivered_at"],
        lease_token=row["lease_token"],
    )


def write_outbox(conn: sqlite3.Connection, outbox: Outbox | None, tasks: Iterable[Task], now: float) -> None:
    """Insert the deliveries of tasks that just finished, and of batches those changes just finished."""
    if outbox is None:
        return
    batches: dict[str, tuple[Any, WebhookSpec | None]] = {}
    rows: list[Delivery] = []
    for task in tasks:
        if not outbox.may_notify(task):
            continue
        hook = None
        if task.batch_id is not None:
            if task.batch_id not in batches:
                found = conn.execute(f"SELECT {BATCH_COLUMNS}, webhook FROM batches WHERE id = ?",
                                     (task.batch_id,)).fetchone()
                batches[task.batch_id] = (found, _hook(found["webhook"]) if found else None)
            hook = batches[task.batch_id][1]
        views = completed_views(conn, task) if task.formats and task.status == COMPLETED else None
        rows += outbox.for_task(task, hook, now, views)
        if task.schedule_id is not None and task.status == COMPLETED:
            change = conn.execute("SELECT previous_id FROM url_changes WHERE task_id = ? ORDER BY seq DESC LIMIT 1",
                                  (task.id,)).fetchone()
            if change is not None:  # written by finish_run earlier in this same transaction
                rows += outbox.for_url_change(task, change[0], hook, now)
    for found, hook in batches.values():
        if found is not None and found["finished_at"] == now:
            rows += outbox.for_batch(batch_from_row(found), hook, now)
    insert_deliveries(conn, rows)


def write_batch_outbox(conn: sqlite3.Connection, outbox: Outbox | None, batch_id: str, now: float) -> None:
    """A batch sealed with every job already finished (all reused, say) finishes at its seal."""
    if outbox is None:
        return
    found = conn.execute(f"SELECT {BATCH_COLUMNS}, webhook FROM batches WHERE id = ?", (batch_id,)).fetchone()
    if found is not None and found["finished_at"] == now:
        insert_deliveries(conn, outbox.for_batch(batch_from_row(found), _hook(found["webhook"]), now))


def insert_deliveries(conn: sqlite3.Connection, deliveries: list[Delivery]) -> None:
    """Store new pending deliveries, due at once."""
    if deliveries:
        conn.executemany(_INSERT, [(d.id, d.event, d.url, endpoint_of(d.url), d.task_id, d.batch_id, d.payload,
                                    d.created_at, d.updated_at, d.next_attempt_at) for d in deliveries])


def _hook(raw: str | None) -> WebhookSpec | None:
    return WebhookSpec.from_json(json.loads(raw)) if raw else None


class SQLiteWebhookOps:
    """The delivery operations of the store interface (mixed into SQLiteStore)."""

    clock: Callable[[], float]
    outbox: Outbox | None = None

    if TYPE_CHECKING:  # provided by SQLiteStore
        async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T: ...
        async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T: ...

    async def relay_outbox(self) -> int:
        """Nothing to relay: SQLite writes delivery rows in the finishing transaction itself."""
        return 0

    async def deliveries_due(self) -> bool:
        """A cheap read: is any delivery due now? (So an idle sender does not write to poll.)"""
        now = self.clock()
        row = await self._read(lambda conn: conn.execute(
            "SELECT 1 FROM webhook_deliveries INDEXED BY deliveries_due WHERE status = 'pending'"
            " AND next_attempt_at <= ? LIMIT 1", (now,)).fetchone())
        return row is not None

    async def claim_deliveries(self, limit: int, lease_seconds: float,
                               exclude_endpoints: list[str]) -> list[Delivery]:
        """Take up to `limit` due deliveries under a fresh lease, counting the attempt; oldest due first. Under the
        outbox's `per_endpoint`, each takes one of its endpoint's slots (shared by every process on the file)
        and endpoints with none left are passed over."""
        if limit <= 0:
            return []
        now = self.clock()
        token = secrets.token_hex(8)
        per_endpoint = self.outbox.per_endpoint if self.outbox is not None else None
        until = now + lease_seconds

        def take(conn: sqlite3.Connection) -> list[sqlite3.Row]:
            rooms = slots.Rooms(conn, slots.ENDPOINT, per_endpoint, now) if per_endpoint is not None else None
            skip = sorted(set(exclude_endpoints).union(rooms.full() if rooms is not None else ()))
            exclude = f" AND endpoint NOT IN ({','.join('?' * len(skip))})" if skip else ""
            due = conn.execute("SELECT seq, endpoint FROM webhook_deliveries INDEXED BY deliveries_due"
                               f" WHERE status = 'pending' AND next_attempt_at <= ?{exclude}"
                               " ORDER BY next_attempt_at LIMIT ?", (now, *skip, limit)).fetchall()
            chosen = [seq for seq, endpoint in due if rooms is None or rooms.take(endpoint)]
            if not chosen:
                return []
            rows = conn.execute(
                "UPDATE webhook_deliveries SET lease_token = ?, attempts = attempts + 1, next_attempt_at = ?,"
                f" updated_at = ? WHERE seq IN ({','.join('?' * len(chosen))}) RETURNING {DELIVERY_COLUMNS}",
                (token, until, now, *chosen)).fetchall()
            if rooms is not None:
                slots.hold(conn, slots.ENDPOINT, [(row["id"], endpoint_of(row["url"])) for row in rows], token,
                           until)
            return rows

        # durable, and it must stay so: its sync also syncs the completion that queued the delivery, so no webhook
        # is sent for an outcome a power cut could undo
        rows = await self._write(take)
        return [delivery_from_row(r) for r in rows]

    async def finish_delivery(self, delivery: Delivery, outcome: DeliveryOutcome) -> bool:
        """Record one attempt's outcome under the lease that sent it, freeing its endpoint slot; False when the lease
        was lost."""
        now = self.clock()
        delivered = now if outcome.status == "delivered" else None
        sql = ("UPDATE webhook_deliveries SET status = ?, lease_token = NULL, next_attempt_at = ?, updated_at = ?,"
               " last_http_status = ?, last_error = ?, delivered_at = COALESCE(?, delivered_at)"
               " WHERE id = ? AND lease_token = ?")
        args = (outcome.status, outcome.next_attempt_at, now, outcome.http_status, outcome.error, delivered,
                delivery.id, delivery.lease_token)
        leases = [Lease(delivery.id, delivery.lease_token or "")]

        def finish(conn: sqlite3.Connection) -> bool:
            slots.free(conn, slots.ENDPOINT, leases)
            return conn.execute(sql, args).rowcount == 1

        return await self._write(finish)

    async def release_deliveries(self, deliveries: list[Delivery]) -> None:
        """Give claimed deliveries back, due now, without counting the attempt (shutdown, or over a limit), and
        their endpoint slots."""
        if not deliveries:
            return
        now = self.clock()
        args = [(now, now, d.id, d.lease_token) for d in deliveries]
        leases = [Lease(d.id, d.lease_token or "") for d in deliveries]

        def give_back(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "UPDATE webhook_deliveries SET lease_token = NULL, attempts = MAX(attempts - 1, 0),"
                " next_attempt_at = ?, updated_at = ? WHERE id = ? AND lease_token = ? AND status = 'pending'", args)
            slots.free(conn, slots.ENDPOINT, leases)

        await self._write(give_back)

    async def get_delivery(self, delivery_id: str) -> Delivery | None:
        """Read one delivery with its body."""
        row = await self._read(lambda conn: conn.execute(
            f"SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE id = ?", (delivery_id,)).fetchone())
        return delivery_from_row(row) if row else None

    async def list_deliveries(self, where: DeliveryFilter, limit: int, cursor: str | None) -> Page:
        """Deliveries newest first, narrowed by status, task or batch, paged by cursor."""
        before = decode_cursor(cursor)
        clauses: list[str] = []
        args: list[object] = []
        for column, value in (("status", where.status), ("task_id", where.task_id), ("batch_id", where.batch_id)):
            if value is not None:
                clauses.append(f"{column} = ?")
                args.append(value)
        if before is not None:
            clauses.append("seq < ?")
            args.append(before)
        clause = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        sql = f"SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries {clause} ORDER BY seq DESC LIMIT ?"
        rows = list(await self._read(lambda conn: conn.execute(sql, (*args, limit + 1)).fetchall()))
        more = len(rows) > limit
        rows = rows[:limit]
        return Page([delivery_from_row(r, with_payload=False) for r in rows],
                    encode_cursor(rows[-1]["seq"]) if more and rows else None)

    async def redeliver(self, delivery_id: str) -> Delivery:
        """Send a delivery again now, whatever became of it (NotFound); its id and body stay the same."""
        now = self.clock()

        def update(conn: sqlite3.Connection) -> Delivery:
            row = conn.execute(
                f"UPDATE webhook_deliveries SET status = '{PENDING}', next_attempt_at = ?, updated_at = ?,"
                f" lease_token = NULL WHERE id = ? RETURNING {DELIVERY_COLUMNS}", (now, now, delivery_id)).fetchone()
            if row is None:
                raise NotFound(delivery_id, "webhook delivery")
            return delivery_from_row(row)

        return await self._write(update)
