"""MongoDB's webhook outbox: a marker written in the finishing update itself, relayed into deliveries.

MongoDB cannot insert a delivery document in the same atomic step as a job's status change without
a multi-document transaction (which a standalone server lacks), so the finishing update sets an
`outbox` field (the time of the change) on the job document itself: one document, one atomic write.
`relay_outbox` then turns marked jobs into delivery documents whose ids are derived from the job and
that time, so relaying twice (two processes, or a crash between insert and unmarking) inserts each
delivery once. A batch's `batch.finished` is relayed the same way from batches finished recently, and
`url.changed` from the `url_changes` records not relayed yet.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.errors import DuplicateKeyError

from jobqueue.errors import NotFound, StoreError
from jobqueue.extract.views import EXTRACTOR_VERSION
from jobqueue.models import COMPLETED, FINISHED, Page, Task
from jobqueue.store.base import Lease
from jobqueue.store.mongodb import slots
from jobqueue.store.mongodb.parts import MongoParts
from jobqueue.store.mongodb.schema import after_cursor, batch_from_doc, encode_cursor, task_from_doc
from jobqueue.webhooks.delivery import PENDING, Delivery, DeliveryFilter, DeliveryOutcome, endpoint_of
from jobqueue.webhooks.outbox import Outbox
from jobqueue.webhooks.spec import WebhookSpec

RELAY_BATCH = 200
RECENT_BATCHES = 3600.0  # batch.finished is relayed for batches finished within this many seconds


def outbox_mark(outbox: Outbox | None, status: str, now: float) -> dict[str, Any]:
    """The `$set` fields a finishing update adds so the change is relayed (nothing when webhooks are off)."""
    return {"outbox": now} if outbox is not None and status in FINISHED else {}


def delivery_doc(delivery: Delivery) -> dict[str, Any]:
    """A Delivery as stored."""
    return {"_id": delivery.id, "event": delivery.event, "url": delivery.url, "endpoint": endpoint_of(delivery.url),
            "task_id": delivery.task_id, "batch_id": delivery.batch_id, "payload": delivery.payload,
            "status": delivery.status, "attempts": delivery.attempts, "created_at": delivery.created_at,
            "updated_at": delivery.updated_at, "next_attempt_at": delivery.next_attempt_at, "lease_token": None,
            "last_http_status": None, "last_error": None, "delivered_at": None}


def delivery_from_doc(doc: dict[str, Any]) -> Delivery:
    """A stored delivery document as a Delivery."""
    return Delivery(
        id=doc["_id"], event=doc["event"], url=doc["url"], payload=bytes(doc.get("payload") or b""),
        created_at=doc["created_at"], task_id=doc.get("task_id"), batch_id=doc.get("batch_id"),
        status=doc["status"], attempts=doc["attempts"], updated_at=doc["updated_at"],
        next_attempt_at=doc.get("next_attempt_at"), last_http_status=doc.get("last_http_status"),
        last_error=doc.get("last_error"), delivered_at=doc.get("delivered_at"), lease_token=doc.get("lease_token"),
    )


def _derived_ids(deliveries: list[Delivery], owner: str, at: float) -> list[Delivery]:
    """Give deliveries ids that every relay of the same change computes alike."""
    for index, delivery in enumerate(deliveries):
        delivery.id = f"msg_{owner}_{round(at * 1000)}_{index}"
    return deliveries


class MongoWebhookOps(MongoParts):
    """The delivery operations of the store interface (mixed into MongoStore)."""

    outbox: Outbox | None = None

    clock: Callable[[], float]

    if TYPE_CHECKING:  # provided by MongoStore; absent at run time, so they shadow nothing
        async def get_views(self, sha256: str, version: int) -> str | None: ...
        async def _relay_crawls(self) -> int: ...

    async def relay_outbox(self) -> int:
        """Turn marked jobs (and recently finished batches) into deliveries; how many deliveries were new."""
        if self.outbox is None:
            return 0
        outbox, created = self.outbox, 0
        marked = self.db.jobs.find({"outbox": {"$exists": True}}, {"result": 0}).sort("outbox", ASCENDING)
        hooks: dict[str, WebhookSpec | None] = {}
        for doc in await self._call(marked.limit(RELAY_BATCH).to_list(RELAY_BATCH)):
            task, at = task_from_doc(doc), doc["outbox"]
            if task.batch_id is not None and task.batch_id not in hooks:
                found = await self._call(self.db.batches.find_one({"_id": task.batch_id}, {"webhook": 1}))
                hooks[task.batch_id] = WebhookSpec.from_json((found or {}).get("webhook"))
            hook = hooks.get(task.batch_id) if task.batch_id else None
            views = await self._completed_views(task) if task.formats and task.status == COMPLETED else None
            created += await self._insert(_derived_ids(outbox.for_task(task, hook, at, views), task.id, at))
            await self._call(self.db.jobs.update_one({"_id": task.id, "outbox": at}, {"$unset": {"outbox": ""}}))
        created += await self._relay_url_changes(hooks)
        created += await self._relay_crawls()
        recent = self.db.batches.find({"finished_at": {"$gte": self.clock() - RECENT_BATCHES}, "sealed": True,
                                       "$expr": {"$ne": ["$hooked_at", "$finished_at"]}})
        for doc in await self._call(recent.limit(RELAY_BATCH).to_list(RELAY_BATCH)):
            batch, at = batch_from_doc(doc), doc["finished_at"]
            hook = WebhookSpec.from_json(doc.get("webhook"))
            created += await self._insert(_derived_ids(outbox.for_batch(batch, hook, at), batch.id, at))
            await self._call(self.db.batches.update_one({"_id": batch.id, "finished_at": at},
                                                        {"$set": {"hooked_at": at}}))
        return created

    async def _completed_views(self, task: Task) -> dict[str, Any] | None:
        """The views kept for a completed job's body (its completion kept them), for its webhook; None if none."""
        doc = await self._call(self.db.jobs.find_one({"_id": task.id}, {"result.sha256": 1}))
        sha = ((doc or {}).get("result") or {}).get("sha256")
        document = await self.get_views(sha, EXTRACTOR_VERSION) if sha else None
        views = json.loads(document) if document is not None else None
        return views if isinstance(views, dict) and "not_html" not in views else None

    async def _relay_url_changes(self, hooks: dict[str, WebhookSpec | None]) -> int:
        """Turn url.changed records not relayed yet into deliveries (ids derived from the record: once each)."""
        assert self.outbox is not None
        created = 0
        pending = self.db.url_changes.find({"unhooked": True}).sort("_id", ASCENDING)
        for change in await self._call(pending.limit(RELAY_BATCH).to_list(RELAY_BATCH)):
            doc = await self._call(self.db.jobs.find_one({"_id": change["task_id"]}, {"result": 0}))
            if doc is not None:
                task = task_from_doc(doc)
                if task.batch_id is not None and task.batch_id not in hooks:
                    found = await self._call(self.db.batches.find_one({"_id": task.batch_id}, {"webhook": 1}))
                    hooks[task.batch_id] = WebhookSpec.from_json((found or {}).get("webhook"))
                hook = hooks.get(task.batch_id) if task.batch_id else None
                at = change["created_at"]
                created += await self._insert(_derived_ids(
                    self.outbox.for_url_change(task, change["previous_id"], hook, at), f"{task.id}_changed", at))
            await self._call(self.db.url_changes.update_one({"_id": change["_id"]}, {"$unset": {"unhooked": ""}}))
        return created

    async def _insert(self, deliveries: list[Delivery]) -> int:
        new = 0
        for delivery in deliveries:
            try:
                await self._call(self.db.webhook_deliveries.insert_one(delivery_doc(delivery)),
                                 allow=(DuplicateKeyError,))
                new += 1
            except DuplicateKeyError:
                pass  # another relay of the same change stored it first
        return new

    async def deliveries_due(self) -> bool:
        """Whether any delivery is due now."""
        found = await self._call(self.db.webhook_deliveries.find_one(
            {"status": PENDING, "next_attempt_at": {"$lte": self.clock()}}, {"_id": 1}))
        return found is not None

    async def claim_deliveries(self, limit: int, lease_seconds: float,
                               exclude_endpoints: list[str]) -> list[Delivery]:
        """Take due deliveries one atomic update at a time, each under a fresh lease, counting the attempt. Under
        the outbox's `per_endpoint`, each first takes one of its endpoint's slots (mongodb_slots.py, shared by
        every process on the database) and endpoints with none left are passed over."""
        if limit <= 0:
            return []
        now = self.clock()
        until = now + lease_seconds
        per_endpoint = self.outbox.per_endpoint if self.outbox is not None else None
        rooms = None
        if per_endpoint is not None:
            rooms = await slots.Rooms.read(self.db, self._call, slots.ENDPOINT, per_endpoint, now)
        due: dict[str, Any] = {"status": PENDING, "next_attempt_at": {"$lte": now}}
        skip = sorted({*exclude_endpoints, *(rooms.full() if rooms is not None else ())})
        query = {**due, "endpoint": {"$nin": skip}} if skip else due
        candidates = self.db.webhook_deliveries.find(query, {"_id": 1, "endpoint": 1}).sort("next_attempt_at",
                                                                                              ASCENDING)
        out = []
        for doc in await self._call(candidates.limit(limit).to_list(limit)):
            token = secrets.token_hex(8)
            if rooms is not None and not await rooms.take(doc["endpoint"], doc["_id"], token, until):
                continue
            claimed = await self._call(self.db.webhook_deliveries.find_one_and_update(
                {"_id": doc["_id"], **due},
                {"$set": {"lease_token": token, "next_attempt_at": until, "updated_at": now},
                 "$inc": {"attempts": 1}},
                return_document=ReturnDocument.AFTER))
            if claimed is not None:
                out.append(delivery_from_doc(claimed))
            elif rooms is not None:  # another process sent it meanwhile
                await slots.free(self.db, self._call, slots.ENDPOINT, [Lease(doc["_id"], token)])
        return out

    async def finish_delivery(self, delivery: Delivery, outcome: DeliveryOutcome) -> bool:
        """Record one attempt's outcome under its lease, then free its endpoint slot; False when the lease was
        lost."""
        now = self.clock()
        sets: dict[str, Any] = {"status": outcome.status, "lease_token": None, "updated_at": now,
                                "next_attempt_at": outcome.next_attempt_at, "last_http_status": outcome.http_status,
                                "last_error": outcome.error}
        if outcome.status == "delivered":
            sets["delivered_at"] = now
        done = await self._call(self.db.webhook_deliveries.update_one(
            {"_id": delivery.id, "lease_token": delivery.lease_token}, {"$set": sets}))
        await self._free_endpoint_slots([delivery])
        return done.matched_count == 1

    async def release_deliveries(self, deliveries: list[Delivery]) -> None:
        """Give claimed deliveries back, due now, not counting the attempt, and their endpoint slots."""
        now = self.clock()
        for delivery in deliveries:
            await self._call(self.db.webhook_deliveries.update_one(
                {"_id": delivery.id, "lease_token": delivery.lease_token, "status": PENDING},
                {"$set": {"lease_token": None, "next_attempt_at": now, "updated_at": now}, "$inc": {"attempts": -1}}))
        await self._free_endpoint_slots(deliveries)

    async def _free_endpoint_slots(self, deliveries: list[Delivery]) -> None:
        """After the outcome is stored: if freeing fails, the slots end with their leases (no outcome is lost)."""
        leases = [Lease(d.id, d.lease_token) for d in deliveries if d.lease_token is not None]
        try:
            await slots.free(self.db, self._call, slots.ENDPOINT, leases)
        except StoreError:
            pass

    async def get_delivery(self, delivery_id: str) -> Delivery | None:
        """Read one delivery with its body."""
        doc = await self._call(self.db.webhook_deliveries.find_one({"_id": delivery_id}))
        return delivery_from_doc(doc) if doc else None

    async def list_deliveries(self, where: DeliveryFilter, limit: int, cursor: str | None) -> Page:
        """Deliveries newest first (created_at, then id), narrowed by status, task or batch."""
        query: dict[str, Any] = {k: v for k, v in (("status", where.status), ("task_id", where.task_id),
                                                   ("batch_id", where.batch_id)) if v is not None}
        query.update(after_cursor("created_at", cursor))
        found = (self.db.webhook_deliveries.find(query, {"payload": 0})
                 .sort([("created_at", DESCENDING), ("_id", DESCENDING)]).limit(limit + 1))
        docs = await self._call(found.to_list(limit + 1))
        more = len(docs) > limit
        docs = docs[:limit]
        next_cursor = encode_cursor(docs[-1]["created_at"], docs[-1]["_id"]) if more and docs else None
        return Page([delivery_from_doc(d) for d in docs], next_cursor)

    async def redeliver(self, delivery_id: str) -> Delivery:
        """Make a delivery pending and due now, keeping its id and body (NotFound)."""
        now = self.clock()
        doc = await self._call(self.db.webhook_deliveries.find_one_and_update(
            {"_id": delivery_id}, {"$set": {"status": PENDING, "next_attempt_at": now, "updated_at": now,
                                           "lease_token": None}}, return_document=ReturnDocument.AFTER))
        if doc is None:
            raise NotFound(delivery_id, "webhook delivery")
        return delivery_from_doc(doc)
