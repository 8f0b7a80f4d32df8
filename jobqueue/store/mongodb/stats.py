"""Live statistics shared by every process on MongoDB: one document per slot, to which each process adds.

A document `{w, h, s, finished, failed, http_errors, max_ms, b: {le5: n, ..., more: n}}` is a slot of
`w` seconds from `s`, for the whole service (`h` "") or one host, found by the unique "slot" index
(migration 10). Processes add to it with `$inc` (and `$max` for the slowest fetch) in one unordered
bulk upsert per flush, so the documents hold the service's totals. Reads group at most a day of
the service's minutes, or an hour of each host's.
"""

from __future__ import annotations

from typing import Any

from pymongo import UpdateOne

from jobqueue.live_stats import BOUNDS_MS, MINUTE, SERVICE, StatsSlot
from jobqueue.store.mongodb.parts import MongoParts

BUCKET_KEYS = (*(f"le{bound}" for bound in BOUNDS_MS), "more")
_SUMS = {"finished": {"$sum": "$finished"}, "failed": {"$sum": "$failed"},
         "http_errors": {"$sum": "$http_errors"}, "max_ms": {"$max": "$max_ms"},
         **{key: {"$sum": f"$b.{key}"} for key in BUCKET_KEYS}}


def _update(slot: StatsSlot) -> tuple[dict[str, Any], dict[str, Any]]:
    """The (filter, update) adding a slot's counts to its document."""
    adds = {"finished": slot.finished, "failed": slot.failed, "http_errors": slot.http_errors,
            **{f"b.{key}": n for key, n in zip(BUCKET_KEYS, slot.buckets, strict=True) if n}}
    return {"w": slot.width, "h": slot.host, "s": slot.start}, {"$inc": adds, "$max": {"max_ms": slot.max_ms}}


def _slot(width: int, host: str, start: int, doc: dict[str, Any]) -> StatsSlot:
    return StatsSlot(width, start, host, int(doc.get("finished") or 0), int(doc.get("failed") or 0),
                     int(doc.get("http_errors") or 0), float(doc.get("max_ms") or 0.0),
                     [int(doc.get(key) or 0) for key in BUCKET_KEYS])


class MongoStatsOps(MongoParts):
    """add_stats, stats_series, stats_hosts and purge_stats of MongoStore."""

    async def add_stats(self, slots: list[StatsSlot]) -> None:
        """Add each slot's counts to the shared document of its (width, host, start), made on first use."""
        if not slots:
            return
        collection = self.db.stats_slots
        updates = [_update(slot) for slot in slots]
        try:
            await self._call(collection.bulk_write([UpdateOne(f, u, upsert=True) for f, u in updates],
                                                   ordered=False))
        except TypeError:
            # mongomock 4.3's bulk_write cannot read PyMongo 4.9+'s UpdateOne (it passes `sort=`): one at a time.
            for query, update in updates:
                await self._call(collection.update_one(query, update, upsert=True))

    async def stats_series(self, width: int, since: int, per: int) -> list[StatsSlot]:
        """The whole service's slots of `width` from `since` on, summed into slots of `per` seconds, oldest first."""
        pipeline = [{"$match": {"w": width, "h": SERVICE, "s": {"$gte": since}}},
                    {"$group": {"_id": {"$subtract": ["$s", {"$mod": ["$s", per]}]}, **_SUMS}},
                    {"$sort": {"_id": 1}}]
        docs = await self._call(self.db.stats_slots.aggregate(pipeline).to_list(None))
        return [_slot(per, SERVICE, int(doc["_id"]), doc) for doc in docs]

    async def stats_hosts(self, since: int, limit: int) -> tuple[list[StatsSlot], int]:
        """The `limit` hosts that finished the most jobs from `since` on (minute slots), with their totals, and
        how many hosts finished any: the busiest found by one field first, then only theirs summed in full."""
        collection = self.db.stats_slots
        window = {"w": MINUTE, "s": {"$gte": since}}
        busiest = [{"$match": {**window, "h": {"$gt": SERVICE}}},
                   {"$group": {"_id": "$h", "finished": {"$sum": "$finished"}}},
                   {"$match": {"finished": {"$gt": 0}}},
                   {"$facet": {"top": [{"$sort": {"finished": -1, "_id": 1}}, {"$limit": limit}],
                               "seen": [{"$count": "n"}]}}]
        [found] = await self._call(collection.aggregate(busiest).to_list(1))
        names = [doc["_id"] for doc in found["top"]]
        if not names:
            return [], 0
        totals = [{"$match": {**window, "h": {"$in": names}}}, {"$group": {"_id": "$h", **_SUMS}}]
        docs = {doc["_id"]: doc for doc in await self._call(collection.aggregate(totals).to_list(None))}
        return [_slot(MINUTE, name, since, docs[name]) for name in names], int(found["seen"][0]["n"])

    async def purge_stats(self, width: int, hosts: bool, before: int) -> int:
        """Delete the slots of `width` (the hosts' or the service's) that start before `before`; how many went."""
        host = {"$gt": SERVICE} if hosts else SERVICE
        done = await self._call(self.db.stats_slots.delete_many({"w": width, "h": host, "s": {"$lt": before}}))
        return int(done.deleted_count)
