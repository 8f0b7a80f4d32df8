"""Job counts by status on MongoDB: one counters document moved with every status change.

`counts()` is one document read, whatever the number of jobs (the dashboard asks twice a second per
process, every listing and every submission with `max_queued` asks too). Every operation that moves
jobs between statuses learns the old status from its own update (ReturnDocument.BEFORE, or a filter
on it) and then `$inc`s the pair in `counters/jobs` (mongodb_batches.Moves collects them). `$inc` is
atomic, so concurrent changes from any number of processes add up exactly.

The `$inc` is a second write after the job's own, not one transaction with it: every status change
in every process would otherwise write the same hot document inside a transaction, and concurrent
transactions on one document abort each other (WriteConflict) and retry, which serialises claims
and completions cluster-wide; mongomock and standalone servers have no transactions at all. So a
process that dies (or loses the server) between the two writes leaves the counts off by the jobs it
was moving. `recount_counters` repairs that: one process at a time (the maintenance lease in
`counters/maintenance`, see MongoStore.maintain) counts each status on the by_status index and
`$inc`s the difference, but only a difference seen twice in a row with no count move landing in
between (the document's `rev`), and only if none has landed since (the `$inc` is guarded by that
`rev`): so an `$inc` still on its way from another process is not mistaken for drift (and later
counted twice), as recount_batch does for a batch's counts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

from pymongo.errors import DuplicateKeyError

from jobqueue.models import STATUSES
from jobqueue.store.mongodb.parts import MongoParts

COUNTERS = "jobs"
MAINTENANCE = "maintenance"
RECOUNT_EVERY = 300.0  # seconds between exact recounts (by one process)
MAINTAIN_EVERY = 60.0  # the maintenance lease: at most one round per this many seconds, cluster-wide


def zero_counts() -> dict[str, int]:
    """Every status at 0."""
    return dict.fromkeys(STATUSES, 0)


class MongoCounterOps(MongoParts):
    """counts(), the counter moves, the repairing recount and the maintenance lease (mixed into MongoStore)."""

    clock: Callable[[], float]

    async def counts(self) -> dict[str, int]:
        """Jobs by status from the counters document: one read, no scan (a missing document is recounted)."""
        doc = await self._call(self.db.counters.find_one({"_id": COUNTERS}))
        if doc is None:
            return await self.recount_counters()
        return {s: max(0, int(doc.get(s, 0))) for s in STATUSES}  # a drift below zero shows as 0 until repaired

    async def _bump(self, deltas: Mapping[str, int]) -> None:
        """Move the counters by `deltas` (status -> change), in one atomic `$inc`."""
        changed = {s: n for s, n in deltas.items() if n}
        if changed:
            await self._call(self.db.counters.update_one({"_id": COUNTERS}, {"$inc": {**changed, "rev": 1}}))

    async def _exact_counts(self) -> dict[str, int]:
        numbers = await asyncio.gather(*(self._call(self.db.jobs.count_documents({"status": s})) for s in STATUSES))
        return dict(zip(STATUSES, (int(n) for n in numbers), strict=True))

    async def recount_counters(self) -> dict[str, int]:
        """Count every status exactly and repair the counters by the difference seen twice in a row, at one `rev`."""
        seen: tuple[Any, dict[str, int]] | None = None
        counted = zero_counts()
        for _ in range(4):
            doc = await self._call(self.db.counters.find_one({"_id": COUNTERS}))
            counted = await self._exact_counts()
            now = self.clock()
            if doc is None:
                try:
                    await self._call(self.db.counters.insert_one(
                        {"_id": COUNTERS, **counted, "rev": 0, "recounted_at": now}), allow=(DuplicateKeyError,))
                    return counted
                except DuplicateKeyError:
                    continue  # another process created it meanwhile: compare with theirs
            diff = {s: counted[s] - int(doc.get(s, 0)) for s in STATUSES}
            if not any(diff.values()):
                await self._call(self.db.counters.update_one({"_id": COUNTERS}, {"$set": {"recounted_at": now}}))
                return counted
            if seen == (doc.get("rev"), diff):
                fixed = await self._call(self.db.counters.update_one(
                    {"_id": COUNTERS, "rev": doc.get("rev")},
                    {"$set": {"recounted_at": now}, "$inc": {**{s: n for s, n in diff.items() if n}, "rev": 1}}))
                if fixed.matched_count:
                    return counted
            seen = (doc.get("rev"), diff)
        return counted

    async def _take_maintenance(self, now: float) -> dict[str, Any] | None:
        """The maintenance lease for the next MAINTAIN_EVERY seconds, or None when another process has it."""
        try:
            return await self._call(self.db.counters.find_one_and_update(
                {"_id": MAINTENANCE, "until": {"$lt": now}}, {"$set": {"until": now + MAINTAIN_EVERY}},
                upsert=True), allow=(DuplicateKeyError,)) or {}
        except DuplicateKeyError:
            return None  # the document exists and its lease has not run out: another process holds it

    async def _recount_due(self, now: float) -> bool:
        doc = await self._call(self.db.counters.find_one({"_id": COUNTERS}, {"recounted_at": 1}))
        return doc is None or float(doc.get("recounted_at") or 0) <= now - RECOUNT_EVERY
