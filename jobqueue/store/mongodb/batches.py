"""MongoDB batches and idempotency keys: the operations of MongoStore that span several documents.

MongoDB without a transaction cannot change a job and its batch in one step, so batch counts are
kept cheaply by `$inc`: every operation that moves a job's status then moves its batch's counts
(old status -1, new +1) and sets or clears `finished_at` in that same update. A process that dies
between the two writes leaves the counts off by one; `recount_batch` repairs that with exact counts.

Idempotency keys live in `idempotency`, one document per (client, key). Taking a key is an atomic
insert (a duplicate key means another request has it) or a conditional replace of an expired or
abandoned row. The answer is written after the jobs (or the sealed batch) it names: first the row
records what is being stored (`planned`: the job ids, or the batch id, with the answer), then the
jobs are stored, then the answer is kept. A process dying between those writes leaves a pending row
whose lock expires; its repeat (same body) then finds the planned jobs all stored, or the batch
sealed, and replays the planned answer instead of storing everything again. Only a crash in the
middle of one insert_many (some of the jobs stored, not all) lets a repeat store them a second time.

A replica set could make these writes one transaction; this code does not rely on one, so it acts
the same on a standalone server and on mongomock-motor (which has neither sessions nor transactions).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pymongo import DESCENDING, ReturnDocument
from pymongo.errors import DuplicateKeyError

from jobqueue.errors import IdempotencyConflict, NotFound
from jobqueue.idempotency import KEY_TTL, IdempotencyKey, KeyRow, StoredAnswer, decide
from jobqueue.models import STATUSES, Batch, Page, Task
from jobqueue.store.mongodb.parts import MongoParts
from jobqueue.store.mongodb.schema import (
    TASK_FIELDS,
    after_cursor,
    batch_from_doc,
    count_update,
    encode_cursor,
    new_batch_doc,
    recount_update,
    seal_update,
    task_from_doc,
)
from jobqueue.store.mongodb.transitions import after, status_filter, update_doc
from jobqueue.store.transitions import RETRY_FAILED, Given, Transition
from jobqueue.webhooks.outbox import Outbox
from jobqueue.webhooks.spec import WebhookSpec

PURGE_LIMIT = 5000  # keys deleted per purge call
DROP_LIMIT = 5000  # jobs of abandoned batches deleted per call


class Moves:
    """The count changes one operation made, in all (the counters document) and per batch, applied afterwards
    with one update for the counters and one per batch."""

    def __init__(self) -> None:
        self.total: Counter[str] = Counter()
        self.by_batch: dict[str, Counter[str]] = {}

    def add(self, batch_id: str | None, old: str | None, new: str | None, jobs: int = 1) -> None:
        """Note `jobs` jobs of `batch_id` going from `old` (None: new jobs) to `new` (None: deleted)."""
        if old == new:
            return
        if old is not None:
            self.total[old] -= jobs
        if new is not None:
            self.total[new] += jobs
        if batch_id is None:
            return
        counts = self.by_batch.setdefault(batch_id, Counter())
        if old is not None:
            counts[old] -= jobs
        if new is not None:
            counts[new] += jobs


def key_id(key: IdempotencyKey) -> dict[str, str]:
    """The _id of a key's row (always built in this field order: MongoDB compares sub-documents in order)."""
    return {"c": key.client, "k": key.key}


def answer_doc(answer: StoredAnswer) -> dict[str, Any]:
    """A stored answer as the fields of a key row."""
    return {"status": answer.status, "response": {"body": answer.body, "location": answer.location}}


def answer_from(doc: dict[str, Any]) -> StoredAnswer | None:
    """The answer a key row (or its `planned` part) holds, if any."""
    if doc.get("status") is None:
        return None
    return StoredAnswer(doc["status"], doc["response"]["body"], doc["response"].get("location"))


class MongoBatchOps(MongoParts):
    """Batch and idempotency-key operations over MongoStore's database handle."""

    clock: Callable[[], float]
    outbox: Outbox | None

    if TYPE_CHECKING:  # provided by MongoStore and MongoBodies; absent at run time, so they shadow nothing
        async def _release_body(self, ref: dict[str, Any] | None, task_id: str | None) -> None: ...
        async def _release_result(self, result: dict[str, Any] | None, task_id: str | None) -> None: ...

        async def _bump(self, deltas: dict[str, int]) -> None: ...

        async def _follow(self, move: Transition, doc: dict[str, Any], now: float, sha256: str | None = None
                          ) -> str | None: ...

    async def _move(self, moves: Moves, now: float) -> None:
        """Apply an operation's count changes: the counters document first, then each batch's counts."""
        await self._bump(moves.total)
        for batch_id, deltas in moves.by_batch.items():
            changed = {s: n for s, n in deltas.items() if n}
            if changed:
                await self._call(self.db.batches.update_one({"_id": batch_id}, count_update(changed, now)))

    async def _moved(self, doc: dict[str, Any], old: str, now: float) -> None:
        """Move the counts of `doc`'s batch (if any) for one job that went from `old` to its status."""
        moves = Moves()
        moves.add(doc.get("batch_id"), old, doc["status"])
        await self._move(moves, now)

    async def recount_batch(self, batch_id: str) -> Batch | None:
        """Replace a batch's counts with exact ones (count_documents on the batch_status index).

        The `$inc`-kept counts drift only when a process dies between changing a job and its batch;
        this repairs them, and seal_batch calls it. A count is written only when the same difference is
        seen twice with no count change (`rev`) landing in between, and only if `rev` is still unchanged:
        so an `$inc` still on its way from another process is not counted twice. One delayed for longer
        than two full counts could be, until the next recount.
        """
        seen = None
        for _ in range(4):
            doc = await self._call(self.db.batches.find_one({"_id": batch_id}))
            if doc is None:
                return None
            numbers = await asyncio.gather(*(self._call(self.db.jobs.count_documents(
                {"batch_id": batch_id, "status": s})) for s in STATUSES))
            counted = dict(zip(STATUSES, (int(n) for n in numbers), strict=True))
            diff = {s: counted[s] - int(doc.get(s, 0)) for s in STATUSES}
            if not any(diff.values()):
                return batch_from_doc(doc)
            if seen == (doc.get("rev"), diff):
                fixed = await self._call(self.db.batches.find_one_and_update(
                    {"_id": batch_id, "rev": doc.get("rev")}, recount_update(counted, self.clock()),
                    return_document=ReturnDocument.AFTER))
                if fixed is not None:
                    return batch_from_doc(fixed)
            seen = (doc.get("rev"), diff)
        return batch_from_doc(doc)

    async def idempotency_begin(self, key: IdempotencyKey, lock_seconds: float) -> StoredAnswer | None:
        """Take a key (an atomic insert, or a conditional replace of a dead row), or return the answer to replay."""
        now = self.clock()
        rows = self.db.idempotency
        taken = {"fingerprint": key.fingerprint, "created_at": now, "locked_until": now + lock_seconds,
                 "status": None, "response": None}
        for _ in range(5):
            try:
                await self._call(rows.insert_one({"_id": key_id(key), **taken}), allow=(DuplicateKeyError,))
                return None
            except DuplicateKeyError:
                pass  # someone holds or held this key: look at their row
            doc = await self._call(rows.find_one({"_id": key_id(key)}))
            if doc is None:
                continue  # deleted (aborted or purged) in between: insert again
            row = KeyRow(doc["fingerprint"], doc["created_at"], doc.get("locked_until"), answer_from(doc))
            outcome = decide(row, key, now)
            if outcome is not True:
                return outcome
            same = {"_id": key_id(key), "created_at": doc["created_at"], "locked_until": doc.get("locked_until"),
                    "status": doc.get("status")}  # the row as read: a request that got there first wins
            planned = doc.get("planned") or {}
            answer = answer_from(planned)
            if (answer is not None and doc["fingerprint"] == key.fingerprint and doc["created_at"] >= now - KEY_TTL
                    and await self._planned_stored(planned)):
                # the request died after storing its work and before keeping its answer: keep it now
                kept = await self._call(rows.update_one(
                    same, {"$set": {**answer_doc(answer), "locked_until": None}, "$unset": {"planned": ""}}))
                if kept.matched_count:
                    return answer
                continue
            replaced = await self._call(rows.update_one(same, {"$set": taken, "$unset": {"planned": ""}}))
            if replaced.matched_count:
                return None
        raise IdempotencyConflict("idempotency_key_in_use", "requests with this Idempotency-Key keep arriving at "
                                  "the same time; repeat it when one of them has answered")

    async def _planned_stored(self, planned: dict[str, Any]) -> bool:
        """Whether the work a dead request recorded in its key row was all stored."""
        if "batch" in planned:
            return await self._call(self.db.batches.find_one({"_id": planned["batch"], "sealed": True},
                                                             {"_id": 1})) is not None
        ids = planned.get("ids") or []
        return bool(ids) and await self._call(self.db.jobs.count_documents({"_id": {"$in": ids}})) == len(ids)

    async def _plan(self, key: IdempotencyKey, planned: dict[str, Any]) -> None:
        """Record in a held key what is about to be stored, with its answer (see the module docstring)."""
        await self._call(self.db.idempotency.update_one({"_id": key_id(key), "status": None},
                                                        {"$set": {"planned": planned}}))

    async def _keep_answer(self, key: IdempotencyKey, answer: StoredAnswer, now: float) -> None:
        await self._call(self.db.idempotency.update_one(
            {"_id": key_id(key)},
            {"$set": {"fingerprint": key.fingerprint, "locked_until": None, **answer_doc(answer)},
             "$unset": {"planned": ""}, "$setOnInsert": {"created_at": now}},
            upsert=True))

    async def idempotency_abort(self, key: IdempotencyKey) -> None:
        """Free a key whose request failed (only while it has no answer).

        A row that recorded planned work is not deleted but unlocked: its jobs may be stored already (only
        the answer's write failed), and the repeat must find them there rather than store them again.
        """
        rows = self.db.idempotency
        gone = await self._call(rows.delete_one({"_id": key_id(key), "status": None, "planned": {"$exists": False}}))
        if not gone.deleted_count:
            await self._call(rows.update_one({"_id": key_id(key), "status": None}, {"$set": {"locked_until": 0.0}}))

    async def purge_idempotency(self, before: float) -> int:
        """Delete keys created before `before`, at most PURGE_LIMIT per call."""
        old = self.db.idempotency.find({"created_at": {"$lt": before}}, {"_id": 1}).limit(PURGE_LIMIT)
        ids = [d["_id"] for d in await self._call(old.to_list(PURGE_LIMIT))]
        if not ids:
            return 0
        gone = await self._call(self.db.idempotency.delete_many({"_id": {"$in": ids}, "created_at": {"$lt": before}}))
        return int(gone.deleted_count)

    async def create_batch(self, batch_id: str, total: int, tags: tuple[str, ...], storing_seconds: float,
                           webhook: WebhookSpec | None = None) -> Batch:
        """Insert an unsealed batch; its jobs follow in chunks."""
        now = self.clock()
        doc = new_batch_doc(batch_id, total, tags, now, now + storing_seconds, webhook)
        await self._call(self.db.batches.insert_one(doc))
        return batch_from_doc(doc)

    async def seal_batch(self, batch_id: str, answer: tuple[IdempotencyKey, StoredAnswer] | None) -> Batch:
        """Recount, mark every job stored, then keep the keyed answer (recorded as planned before the seal)."""
        now = self.clock()
        if answer is not None:
            await self._plan(answer[0], {"batch": batch_id, **answer_doc(answer[1])})
        await self.recount_batch(batch_id)
        doc = await self._call(self.db.batches.find_one_and_update(
            {"_id": batch_id, "dropping": {"$exists": False}}, seal_update(now),
            return_document=ReturnDocument.AFTER))
        if doc is None:
            raise NotFound(batch_id, "batch")
        if answer is not None:
            await self._keep_answer(answer[0], answer[1], now)
        return batch_from_doc(doc)

    async def get_batch(self, batch_id: str) -> Batch | None:
        """One sealed batch."""
        found = await self.get_batches([batch_id])
        return found[0] if found else None

    async def get_batches(self, batch_ids: list[str]) -> list[Batch]:
        """Sealed batches by id, in the order asked (an unsealed batch does not exist for users yet)."""
        if not batch_ids:
            return []
        found = self.db.batches.find({"_id": {"$in": list(batch_ids)}, "sealed": True})
        by_id = {d["_id"]: batch_from_doc(d) for d in await self._call(found.to_list(len(batch_ids)))}
        return [by_id[b] for b in dict.fromkeys(batch_ids) if b in by_id]

    async def list_batches(self, limit: int, cursor: str | None) -> Page:
        """Sealed batches, newest first (created_at, then id)."""
        query = {"sealed": True, **after_cursor("created_at", cursor)}
        found = (self.db.batches.find(query).sort([("created_at", DESCENDING), ("_id", DESCENDING)])
                 .limit(limit + 1))
        docs = await self._call(found.to_list(limit + 1))
        more = len(docs) > limit
        docs = docs[:limit]
        next_cursor = encode_cursor(docs[-1]["created_at"], docs[-1]["_id"]) if more and docs else None
        return Page([batch_from_doc(d) for d in docs], next_cursor)

    async def retry_batch(self, batch_id: str, limit: int) -> list[Task]:
        """Queue up to `limit` failed jobs of a sealed batch again (failed jobs have no result to drop)."""
        return [task_from_doc(d) for d in await self._batch_chunk(batch_id, RETRY_FAILED, Given(self.clock()), limit)]

    async def _batch_chunk(self, batch_id: str, move: Transition, given: Given, limit: int) -> list[dict[str, Any]]:
        """Find up to `limit` jobs `move` may leave, then move each with its status in the filter, then the counts,
        then each one's follow-ups; the jobs after."""
        batch = await self._call(self.db.batches.find_one({"_id": batch_id, "sealed": True}, {"_id": 1}))
        if batch is None:
            raise NotFound(batch_id, "batch")
        wanted = {"batch_id": batch_id, **status_filter(move)}
        ids = [d["_id"] for d in await self._call(self.db.jobs.find(wanted, {"_id": 1}).limit(limit).to_list(limit))]
        update = update_doc(move, given, self.outbox)
        moves, out = Moves(), []
        try:
            for task_id in ids:
                before = await self._call(self.db.jobs.find_one_and_update(
                    {"_id": task_id, **status_filter(move)}, update, projection=TASK_FIELDS,
                    return_document=ReturnDocument.BEFORE))
                if before is not None:
                    moves.add(batch_id, before["status"], move.target)
                    out.append(after(before, update))
        finally:
            await self._move(moves, given.now)
        for doc in out:
            await self._follow(move, doc, given.now)
        return out

    async def abandon_batch(self, batch_id: str) -> None:
        """Give up on a batch being stored (its request failed): the next drop removes it with its jobs."""
        await self._call(self.db.batches.update_one({"_id": batch_id, "sealed": False},
                                                    {"$set": {"storing_until": 0}}))

    async def drop_abandoned_batches(self) -> int:
        """Remove unsealed batches whose storing_until passed with their jobs (at most DROP_LIMIT jobs per call)."""
        now = self.clock()
        dead = self.db.batches.find({"sealed": False, "storing_until": {"$lt": now}}, {"_id": 1}).limit(100)
        removed = 0
        for batch in await self._call(dead.to_list(100)):
            batch_id = batch["_id"]
            # `dropping` makes a late seal_batch fail (NotFound) instead of sealing a half-removed batch
            marked = await self._call(self.db.batches.update_one({"_id": batch_id, "sealed": False},
                                                                 {"$set": {"dropping": True}}))
            if not marked.matched_count:
                continue
            found = self.db.jobs.find({"batch_id": batch_id},
                                      {"status": 1, "result.body_ref": 1, "result.artifact_refs": 1})
            docs = await self._call(found.limit(DROP_LIMIT - removed).to_list(DROP_LIMIT - removed))
            if docs:
                gone = await self._call(self.db.jobs.delete_many({"_id": {"$in": [d["_id"] for d in docs]}}))
                removed += int(gone.deleted_count)
                moves = Moves()
                for doc in docs:
                    moves.add(batch_id, doc["status"], None)
                    await self._release_result(doc.get("result"), doc["_id"])
                await self._move(moves, now)
            if not await self._call(self.db.jobs.find_one({"batch_id": batch_id}, {"_id": 1})):
                await self._call(self.db.batches.delete_one({"_id": batch_id, "sealed": False}))
            if removed >= DROP_LIMIT:
                break
        return removed
