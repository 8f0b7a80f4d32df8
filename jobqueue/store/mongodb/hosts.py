"""MongoDB's per-host pacing (jobqueue/hosts.py): the `hosts` collection, what a claim reads of it, GET/PUT /hosts.

A document `{_id: host, max_concurrency, min_delay_ms, paused, policy, next_start_at}` is a host with a policy
(`policy: true` while any field differs from the server's default; a partial index finds them) or a next allowed
start time still to come. A claim reads them in one find (`Pacing.read`); a paced host's start is taken by one
conditional upsert on its `_id` that matches only once its time has come, so two processes never both start one
(where the document holds a later time the upsert's insert fails on the unique `_id`, as slots' do). Documents
of neither kind are deleted now and then by a claim.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError

from jobqueue.hosts import HOLD_MAX, RECENT, HostInfo, HostPolicy, PolicyChange, changed
from jobqueue.live_stats import MINUTE
from jobqueue.models import QUEUED, RUNNING, Page
from jobqueue.store.mongodb.parts import MongoParts
from jobqueue.store.mongodb.slots import Call

UNLIMITED = 1 << 30  # a claim without --per-host: only a host's own max_concurrency limits it
SWEEP_SECONDS = 60.0  # how often a store's claims delete the documents of hosts no longer paced


async def v15_hosts(db: Any, ensure_index: Callable[..., Any]) -> None:
    """Migration 15: the hosts' pacing documents, found by next start time and, for those with a policy, by that."""
    await ensure_index(db.hosts, [("next_start_at", ASCENDING)], "by_next_start")
    await ensure_index(db.hosts, [("policy", ASCENDING)], "with_policy", partialFilterExpression={"policy": True})


class Pacing:
    """For one claim: each host's limit and delay, the hosts that may not start a fetch now, and taking a start."""

    def __init__(self, db: Any, call: Call, per_host: int | None, host_delay: float, now: float,
                 clock: Callable[[], float] | None = None) -> None:
        self.db, self.call, self.now = db, call, now
        self.clock = clock or (lambda: now)
        self.per_host = UNLIMITED if per_host is None else per_host
        self.host_delay = host_delay
        self.limits: dict[str, int] = {}
        self.delays: dict[str, float] = {}
        self.blocked: set[str] = set()
        self.active = per_host is not None or host_delay > 0

    @classmethod
    async def read(cls, db: Any, call: Call, per_host: int | None, host_delay: float, now: float,
                   sweep: bool, clock: Callable[[], float] | None = None) -> Pacing:
        """The hosts with a policy or a next start time to come (one find); with `sweep`, the others go."""
        pacing = cls(db, call, per_host, host_delay, now, clock)
        if sweep:
            await call(db.hosts.delete_many({"next_start_at": {"$lte": now}, "policy": {"$ne": True}}))
        docs = await call(db.hosts.find({"$or": [{"next_start_at": {"$gt": now}}, {"policy": True}]}).to_list(None))
        for doc in docs:
            host = doc["_id"]
            if doc.get("max_concurrency") is not None:
                pacing.limits[host] = int(doc["max_concurrency"])
            if doc.get("min_delay_ms") is not None:
                pacing.delays[host] = int(doc["min_delay_ms"]) / 1000
            if doc.get("paused") or float(doc.get("next_start_at") or 0) > now:
                pacing.blocked.add(host)
        pacing.active = pacing.active or bool(docs)
        return pacing

    def limit(self, host: str) -> int:
        """Fetches the host may have in flight."""
        return self.limits.get(host, self.per_host)

    def delay(self, host: str) -> float:
        """Seconds between two fetch starts at the host."""
        return self.delays.get(host, self.host_delay)

    async def start(self, host: str) -> bool:
        """Take the host's next start for this claim (at once for a host without a delay); False when another
        process took it first. Either way a paced host starts nothing more in this claim."""
        delay = self.delay(host)
        if delay <= 0:
            return True
        self.blocked.add(host)
        now = max(self.now, self.clock())  # the claim's earlier round trips took time: count from the start itself
        try:
            await self.call(self.db.hosts.update_one(
                {"_id": host, "next_start_at": {"$lte": now}},
                {"$set": {"next_start_at": now + delay, "updated_at": now}}, upsert=True),
                allow=(DuplicateKeyError,))
        except DuplicateKeyError:
            return False
        return True


def _policy(doc: dict[str, Any] | None) -> HostPolicy:
    if doc is None:
        return HostPolicy()
    return HostPolicy(doc.get("max_concurrency"), doc.get("min_delay_ms"), bool(doc.get("paused")))


class MongoHostOps(MongoParts):
    """get_host, list_hosts, set_host_policy and hold_host of MongoStore."""

    clock: Callable[[], float]

    async def get_host(self, host: str) -> HostInfo | None:
        """The host's policy, next start time, unfinished jobs and recent outcomes; None when it has no policy and
        no unfinished job."""
        doc = await self._call(self.db.hosts.find_one({"_id": host}))
        return await self._info(host, doc, self.clock())

    async def _info(self, host: str, doc: dict[str, Any] | None, now: float) -> HostInfo | None:
        jobs = self.db.jobs
        queued = await self._call(jobs.count_documents({"host": host, "status": QUEUED}))
        running = await self._call(jobs.count_documents({"host": host, "status": RUNNING}))
        next_start_at = float((doc or {}).get("next_start_at") or 0) or None
        if _policy(doc).is_default and (next_start_at or 0) <= now and not queued and not running:
            return None
        window = [{"$match": {"w": MINUTE, "h": host, "s": {"$gte": int(now) - RECENT}}},
                  {"$group": {"_id": None, "finished": {"$sum": "$finished"}, "failed": {"$sum": "$failed"},
                              "http_errors": {"$sum": "$http_errors"}}}]
        sums = (await self._call(self.db.stats_slots.aggregate(window).to_list(1)) or [{}])[0]
        return HostInfo(host, _policy(doc), next_start_at, queued, running, int(sums.get("finished") or 0),
                        int(sums.get("failed") or 0), int(sums.get("http_errors") or 0))

    async def list_hosts(self, q: str | None, limit: int, cursor: str | None) -> Page:
        """Hosts with unfinished jobs or a policy, by name, a page at a time; `q` keeps those containing it."""
        now = self.clock()
        after: dict[str, Any] = {"$gt": cursor or ""}
        if q:
            after["$regex"] = re.escape(q)
        unfinished = [{"$match": {"status": {"$in": [QUEUED, RUNNING]}, "host": after}},
                      {"$group": {"_id": "$host"}}, {"$sort": {"_id": 1}}, {"$limit": limit + 1}]
        names = {doc["_id"] for doc in await self._call(self.db.jobs.aggregate(unfinished).to_list(None))}
        kept = self.db.hosts.find({"_id": after, "$or": [{"policy": True}, {"next_start_at": {"$gt": now}}]})
        docs = {doc["_id"]: doc for doc in await self._call(kept.sort("_id", ASCENDING).limit(limit + 1)
                                                            .to_list(None))}
        ordered = sorted(names | set(docs))[:limit + 1]
        items = []
        for name in ordered[:limit]:
            doc = docs[name] if name in docs else await self._call(self.db.hosts.find_one({"_id": name}))
            info = await self._info(name, doc, now)
            if info is not None:
                items.append(info)
        return Page(items, ordered[limit - 1] if len(ordered) > limit else None)

    async def set_host_policy(self, host: str, max_concurrency: int | None, min_delay_ms: int | None,
                              paused: bool | None, keep: tuple[str, ...] = ()) -> HostInfo:
        """Set a host's policy: None resets a field to the server's default, a field named in `keep` stays. The
        write is conditional on the policy it read, and read again if another process changed it meanwhile."""
        change = PolicyChange(max_concurrency, min_delay_ms, paused, keep)
        hosts = self.db.hosts
        while True:
            now = self.clock()
            doc = await self._call(hosts.find_one({"_id": host}))
            old, new = _policy(doc), changed(_policy(doc), change)
            fields = {"max_concurrency": new.max_concurrency, "min_delay_ms": new.min_delay_ms,
                      "paused": new.paused, "policy": not new.is_default, "updated_at": now}
            read = {"_id": host, "max_concurrency": old.max_concurrency, "min_delay_ms": old.min_delay_ms}
            if doc is not None:
                read["paused"] = doc.get("paused")
            try:
                done = await self._call(hosts.update_one(
                    read, {"$set": fields, "$setOnInsert": {"next_start_at": 0.0}}, upsert=True),
                    allow=(DuplicateKeyError,))
            except DuplicateKeyError:
                continue  # another process wrote it first: read it again
            if done.matched_count or done.upserted_id is not None:
                break
        if new.is_default:  # nothing left to keep once its next start time has come
            await self._call(hosts.delete_many({"_id": host, "policy": False, "next_start_at": {"$lte": now}}))
        return await self._info(host, {**(doc or {}), **fields}, now) or HostInfo(host, new)

    async def hold_host(self, host: str, until: float) -> None:
        """No fetch of the host starts before `until` (at most HOLD_MAX from now); a later time kept stays."""
        now = self.clock()
        await self._call(self.db.hosts.update_one(
            {"_id": host}, {"$max": {"next_start_at": min(until, now + HOLD_MAX)}, "$set": {"updated_at": now}},
            upsert=True))
