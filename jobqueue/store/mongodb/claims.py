"""Claiming, renewing and releasing leases on MongoDB, a batch of jobs per round trip.

A claim is four round trips whatever its size: find the candidates' ids on the "due_by_host" index
(status, priority desc, available_at, host: equality, sort, then the host exclusion read from the
index keys, so a host that dominates the queue is skipped without reading its documents; the find
is hinted and time-capped), `update_many` them with the original filter plus `_id: {$in}` and a
fresh lease token (so a job another process took meanwhile is left alone), read the claimed ones
back by that token, and move the counters. A due job is queued or running with a lapsed lease; each
kind is claimed by its own update, so the counters move exactly (queued -> running, or no move).

Under a per-host limit a claim first reads the slots held (mongodb_slots.py), leaves full hosts out of
the find, and takes a slot (one upsert) for each candidate before claiming it, so a job is claimed only
when its request may start at once; the slot of a candidate that another process took meanwhile is
given back, and a host that fills up is left out of one more find. A host's policy (mongodb/hosts.py, one find
per claim) counts as the limit does: a paused host, or one whose next start time has not come, is a full host,
and a paced host's job is claimed only once its start is taken.

If reading them back fails, the jobs just claimed are released at once (queued again, the attempt
not counted) before the error is reported: none sits `running` until its lease runs out, and none
is pushed towards `abandoned` by a failover. If that release fails too, their leases run out as
any dead process's would.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pymongo
from pymongo.errors import ExecutionTimeout, PyMongoError

from jobqueue.models import QUEUED, RUNNING, Task
from jobqueue.store.base import Lease, StoreError
from jobqueue.store.mongodb import slots
from jobqueue.store.mongodb.batches import Moves
from jobqueue.store.mongodb.hosts import SWEEP_SECONDS, Pacing
from jobqueue.store.mongodb.parts import MongoParts
from jobqueue.store.mongodb.schema import (
    CLAIM_INDEX_NAME,
    CLAIM_ORDER,
    PLAIN_FILTER,
    RENDER_CLAIM_INDEX_NAME,
    RENDERED_FILTER,
    TASK_FIELDS,
    task_from_doc,
)
from jobqueue.store.mongodb.transitions import leased, status_filter, update_doc
from jobqueue.store.transitions import CLAIM, RELEASE, Given

CLAIM_MAX_TIME_MS = 2000
MAX_ROUNDS = 8  # reads of due jobs in one claim, each after hosts filled up


class MongoClaimOps(MongoParts):
    """claim, extend and release of MongoStore."""

    clock: Callable[[], float]
    _hosts_swept_at = 0.0  # when this store's claims last deleted the hosts no longer paced

    if TYPE_CHECKING:  # provided by MongoStore and its other mixins
        async def _move(self, moves: Moves, now: float) -> None: ...

    async def claim(self, limit: int, lease_seconds: float, exclude_hosts: list[str],
                    per_host: int | None = None, ended: list[Lease] | None = None,
                    rendered: bool = False, host_delay: float = 0.0) -> list[Task]:
        """Take up to `limit` due tasks: higher priority first, then older due time; returned in that order. With
        `per_host`, each first takes one of its host's slots (mongodb_slots.py), hosts with none left are passed
        over, and a host that fills up is left out of the next read. The slots of `ended` are freed first. Only jobs
        of one kind: rendered (on their own index) or fetched. Hosts their policies hold back are passed over too,
        and a paced host (its min_delay_ms, else `host_delay` seconds) gets one job per claim."""
        if ended:
            await slots.free(self.db, self._call, slots.HOST, ended)
        if limit <= 0:
            return []
        now = self.clock()
        until = now + lease_seconds
        # one token per old status, so each claimed job tells which it left (a lapsed lease moves no count)
        tokens = {QUEUED: secrets.token_hex(8), RUNNING: secrets.token_hex(8)}
        claimed: list[dict[str, Any]] = []
        order: dict[str, int] = {}  # each round reads on from where the last one's jobs were, so one ranking
        try:
            rooms = None
            sweep = now - self._hosts_swept_at >= SWEEP_SECONDS
            if sweep:
                self._hosts_swept_at = now
            pacing = await Pacing.read(self.db, self._call, per_host, host_delay, now, sweep, self.clock)
            if pacing.active:
                rooms = await slots.Rooms.read(self.db, self._call, slots.HOST, pacing.per_host, now, pacing)
            for _round in range(MAX_ROUNDS):
                want = limit - len(claimed)
                skip = sorted({*exclude_hosts, *(rooms.full() if rooms is not None else ())})
                due: dict[str, Any] = {**status_filter(CLAIM), "available_at": {"$lte": now},
                                       **(RENDERED_FILTER if rendered else PLAIN_FILTER)}
                if skip:
                    due["host"] = {"$nin": skip}
                found = await self._candidates(due, want, RENDER_CLAIM_INDEX_NAME if rendered else CLAIM_INDEX_NAME)
                if found is None:
                    break  # the index did not answer in time: an idle poll, tried again shortly
                chosen = []
                for doc in found:
                    order.setdefault(doc["_id"], len(order))
                    if rooms is None or await rooms.take(doc["host"], doc["_id"], tokens[doc["status"]], until):
                        chosen.append(doc)
                if chosen:
                    claimed += await self._take(chosen, due, tokens, now, until)
                if len(found) < want or len(chosen) == len(found) or len(claimed) >= limit:
                    break  # nothing more is due, or nothing was passed over that a next read could replace
        except StoreError:
            await self._give_back(tokens, now)
            raise
        moves = Moves()
        for doc in claimed:
            moves.add(doc.get("batch_id"), QUEUED if doc["lease_token"] == tokens[QUEUED] else RUNNING, RUNNING)
        await self._move(moves, now)
        return [task_from_doc(d) for d in sorted(claimed, key=lambda d: order[d["_id"]])]

    async def _candidates(self, due: dict[str, Any], want: int, index: str) -> list[dict[str, Any]] | None:
        """The first `want` due jobs' ids, statuses and hosts, on the claim index, time-capped (None: it ran out)."""
        candidates = (self.db.jobs.find(due, {"_id": 1, "status": 1, "host": 1}).sort(CLAIM_ORDER)
                      .hint(index).limit(want).max_time_ms(CLAIM_MAX_TIME_MS))
        try:
            # the client's timeoutMS would replace the cursor's maxTimeMS with its own, longer one (CSOT)
            with pymongo.timeout(CLAIM_MAX_TIME_MS / 1000):
                return list(await self._call(candidates.to_list(want), allow=(ExecutionTimeout,)))
        except ExecutionTimeout:
            return None

    async def _take(self, chosen: list[dict[str, Any]], due: dict[str, Any], tokens: dict[str, str], now: float,
                    until: float) -> list[dict[str, Any]]:
        """Claim the chosen jobs that are still due, each kind by one update, and read them back; the slot of a job
        another process took meanwhile is given back."""
        ids = [doc["_id"] for doc in chosen]
        for old, token in tokens.items():
            mine = [doc["_id"] for doc in chosen if doc["status"] == old]
            if not mine:
                continue
            await self._call(self.db.jobs.update_many(
                {**due, "status": old, "_id": {"$in": mine}},
                update_doc(CLAIM, Given(now, token=token, until=until), None)))
        found = self.db.jobs.find({"_id": {"$in": ids}, "lease_token": {"$in": list(tokens.values())}}, TASK_FIELDS)
        docs: list[dict[str, Any]] = await self._call(found.to_list(len(ids)))
        taken = {doc["_id"] for doc in docs}
        lost = [Lease(doc["_id"], tokens[doc["status"]]) for doc in chosen if doc["_id"] not in taken]
        if lost:
            await slots.free(self.db, self._call, slots.HOST, lost)
        return docs

    async def _give_back(self, tokens: dict[str, str], now: float) -> None:
        """Release every job a failed claim took (its attempt not counted), and its slot; silent if this fails
        too."""
        try:
            for old, token in tokens.items():
                back = await self._call(self.db.jobs.update_many(
                    {"lease_token": token, **status_filter(RELEASE)}, update_doc(RELEASE, Given(now), None)))
                if old == RUNNING and back.modified_count:  # those were counted running already
                    moves = Moves()
                    moves.add(None, RUNNING, QUEUED, int(back.modified_count))
                    await self._move(moves, now)
            await slots.free_tokens(self.db, self._call, slots.HOST, tokens.values())
        except (StoreError, PyMongoError):
            pass  # the leases run out instead; a recount repairs the counters

    async def free_slots(self, leases: list[Lease]) -> None:
        """The requests of these leases are over: their hosts' slots go to the next claims."""
        await slots.free(self.db, self._call, slots.HOST, leases)

    async def extend(self, leases: list[Lease], lease_seconds: float) -> list[str]:
        """Renew every lease still held in one update, and the host slots they hold; report the lost ones."""
        if not leases:
            return []
        until = self.clock() + lease_seconds
        held = [{"_id": lease.task_id, "lease_token": lease.token} for lease in leases]
        renewed = await self._call(self.db.jobs.update_many(
            {"$or": held, "status": RUNNING}, {"$set": {"available_at": until}}))
        # a lost lease's request may still be under way: its slot lives until the worker stops it
        await slots.renew(self.db, self._call, slots.HOST, leases, until)
        if renewed.matched_count == len(leases):
            return []
        found = self.db.jobs.find({"_id": {"$in": [lease.task_id for lease in leases]}, "status": RUNNING},
                                  {"lease_token": 1})
        holding = {(d["_id"], d.get("lease_token")) for d in await self._call(found.to_list(None))}
        return [lease.task_id for lease in leases if (lease.task_id, lease.token) not in holding]

    async def release(self, leases: list[Lease]) -> list[Task]:
        """Give tasks back as queued without counting the interrupted attempt; free their host slots."""
        now = self.clock()
        released, moves = [], Moves()
        try:
            await slots.free(self.db, self._call, slots.HOST, leases)
            for lease in leases:
                doc = await self._call(self.db.jobs.find_one_and_update(
                    leased(RELEASE, lease.task_id, lease.token), update_doc(RELEASE, Given(now), None),
                    projection=TASK_FIELDS, return_document=True))
                if doc is not None:
                    moves.add(doc.get("batch_id"), RUNNING, RELEASE.target)
                    released.append(task_from_doc(doc))
        finally:
            await self._move(moves, now)
        return released
