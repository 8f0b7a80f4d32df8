"""History, storage figures and retention on MongoDB: a URL's results, the totals, deletion in small steps.

A URL's results are its completed jobs on the "history" index (url, finished_at desc, _id desc, over
completed jobs only), marked changed by the sha256 their bodies are stored under. Retention walks
finished jobs on the "by_finish" index a small batch per call and deletes each with its own guarded
`find_one_and_delete` (no multi-document write without a transaction); a body goes with the last
job naming it (mongodb_bodies.release), whether it is one document, parts or an older release's
GridFS file, which no TTL index would have cleaned.

What the jobs leave behind goes at the same age: a batch once retention has deleted its last job,
and, when a round has deleted every expired job, finished webhook deliveries (delivered or failed
for good; pending ones stay whatever their age) and relayed url.changed records created before the
cutoff, a batch of ids per delete.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pymongo import ASCENDING, DESCENDING

from jobqueue.history.timeline import HistoryEntry, mark_changes
from jobqueue.models import COMPLETED, FINISHED, Page
from jobqueue.store.mongodb.batches import Moves
from jobqueue.store.mongodb.parts import MongoParts
from jobqueue.store.mongodb.schema import after_cursor, encode_cursor, result_from_doc
from jobqueue.webhooks.delivery import DELIVERED
from jobqueue.webhooks.delivery import FAILED as DELIVERY_FAILED


def _body_key(result: dict[str, Any]) -> str | None:
    """What `changed` compares: the sha256 the body is stored under (an older release's result: its own)."""
    return (result.get("body_ref") or {}).get("sha") or result.get("sha256")


class MongoHistoryOps(MongoParts):
    """storage_stats, history, purge_finished and vacuum_step of MongoStore."""

    clock: Callable[[], float]

    if TYPE_CHECKING:  # provided by MongoStore and its other mixins; absent at run time
        async def _move(self, moves: Moves, now: float) -> None: ...
        async def _release_body(self, ref: dict[str, Any] | None, task_id: str | None) -> None: ...
        async def _release_result(self, result: dict[str, Any] | None, task_id: str | None) -> None: ...

    async def storage_stats(self) -> dict[str, int]:
        """Results, distinct bodies, their raw bytes (per result) and the bytes stored for them.

        Counted when asked, not kept as running totals: two aggregations, one over completed jobs and
        one over stored bodies (docs/mongodb.md, "Storage figures", says what that costs).
        """
        results = self.db.jobs.aggregate([
            {"$match": {"status": COMPLETED, "result": {"$exists": True}}},
            {"$group": {"_id": None, "n": {"$sum": 1},
                        "bytes": {"$sum": {"$ifNull": ["$result.body_size", "$result.size"]}}}}])
        bodies = self.db.bodies.aggregate([
            {"$match": {"ready": True}},
            {"$group": {"_id": None, "n": {"$sum": 1}, "bytes": {"$sum": "$stored"}}}])
        [jobs] = await self._call(results.to_list(1)) or [{}]
        [stored] = await self._call(bodies.to_list(1)) or [{}]
        return {"results": int(jobs.get("n", 0)), "distinct_bodies": int(stored.get("n", 0)),
                "body_bytes": int(jobs.get("bytes", 0)), "stored_bytes": int(stored.get("bytes", 0))}

    async def history(self, url: str, limit: int, cursor: str | None) -> Page:
        """The results fetched for a URL, newest first, without bodies, each marked changed or not."""
        query = {"url": url, "status": COMPLETED, **after_cursor("finished_at", cursor)}
        found = (self.db.jobs.find(query, {"result": 1, "finished_at": 1})
                 .sort([("finished_at", DESCENDING), ("_id", DESCENDING)]).limit(limit + 1))
        docs = [d for d in await self._call(found.to_list(limit + 1)) if "result" in d]
        entries: list[HistoryEntry] = mark_changes(
            [(result_from_doc(d["_id"], d["result"], None), _body_key(d["result"])) for d in docs], limit)
        more = len(docs) > limit
        last = docs[limit - 1] if more else None
        return Page(entries, encode_cursor(last["finished_at"], last["_id"]) if last else None)

    async def purge_finished(self, finished_before: float, keep_per_url: int, limit: int,
                             resume: tuple[float, Any] | None = None) -> tuple[list[str], tuple[float, Any] | None]:
        """Delete up to `limit` jobs finished before a time (with their results and unshared bodies), sparing
        the newest `keep_per_url` results of each URL; returns the ids deleted and where to go on (None: done).
        `resume` is the (finished_at, id) the last call stopped at."""
        query: dict[str, Any] = {"finished_at": {"$lt": finished_before}, "status": {"$in": list(FINISHED)}}
        if resume is not None:
            at, after = resume
            query["$or"] = [{"finished_at": {"$gt": at}}, {"finished_at": at, "_id": {"$gt": after}}]
        found = (self.db.jobs.find(query, {"status": 1, "finished_at": 1, "url": 1, "batch_id": 1})
                 .sort([("finished_at", ASCENDING), ("_id", ASCENDING)]).limit(limit))
        rows = await self._call(found.to_list(limit))
        deleted, moves, now = [], Moves(), self.clock()
        for row in rows:
            if keep_per_url and row["status"] == COMPLETED and await self._among_newest(row, keep_per_url):
                continue
            doc = await self._call(self.db.jobs.find_one_and_delete(
                {"_id": row["_id"], "finished_at": row["finished_at"], "status": {"$in": list(FINISHED)}},
                projection={"status": 1, "batch_id": 1, "result.body_ref": 1, "result.artifact_refs": 1}))
            if doc is None:
                continue  # retried or deleted meanwhile
            deleted.append(doc["_id"])
            moves.add(doc.get("batch_id"), doc["status"], None)
            await self._release_result(doc.get("result"), doc["_id"])
        await self._move(moves, now)
        await self._drop_emptied_batches(list(moves.by_batch), finished_before)
        more = (rows[-1]["finished_at"], rows[-1]["_id"]) if len(rows) == limit else None
        if more is None:
            await self._purge_records(finished_before, limit)
        return deleted, more

    async def _drop_emptied_batches(self, batch_ids: list[str], finished_before: float) -> None:
        """Delete the batches, finished before the cutoff, whose last job retention has just deleted (a job spared
        by keep_per_url keeps its batch)."""
        for batch_id in batch_ids:
            if await self._call(self.db.jobs.find_one({"batch_id": batch_id}, {"_id": 1})) is None:
                await self._call(self.db.batches.delete_one(
                    {"_id": batch_id, "sealed": True, "finished_at": {"$lt": finished_before}}))

    async def _purge_records(self, before: float, limit: int) -> int:
        """Delete finished webhook deliveries and relayed url.changed records created before `before`, `limit` per
        delete (on the "status_newest" and "by_created" indexes); the number deleted."""
        purged = 0
        for collection, query in (
                (self.db.webhook_deliveries, {"status": {"$in": [DELIVERED, DELIVERY_FAILED]},
                                              "created_at": {"$lt": before}}),
                (self.db.url_changes, {"created_at": {"$lt": before}, "unhooked": {"$exists": False}})):
            while True:
                ids = [d["_id"] for d in await self._call(collection.find(query, {"_id": 1}).limit(limit)
                                                          .to_list(limit))]
                if ids:
                    gone = await self._call(collection.delete_many({"_id": {"$in": ids}, **query}))
                    purged += int(gone.deleted_count)
                if len(ids) < limit:
                    break
                await asyncio.sleep(0)  # other writes and requests go between two deletes
        return purged

    async def _among_newest(self, row: dict[str, Any], keep: int) -> bool:
        """Whether a completed job is one of the `keep` newest results of its URL (reads at most `keep` keys)."""
        at = row["finished_at"]
        newer = {"url": row["url"], "status": COMPLETED,
                 "$or": [{"finished_at": {"$gt": at}}, {"finished_at": at, "_id": {"$gt": row["_id"]}}]}
        return int(await self._call(self.db.jobs.count_documents(newer, limit=keep))) < keep

    async def vacuum_step(self, pages: int) -> int:
        """Nothing to do on MongoDB, so 0: WiredTiger reuses the space of deleted documents for new ones and
        gives it back to the file system only through `compact`, an administrator's command that blocks
        (docs/mongodb.md, "Retention")."""
        return 0
