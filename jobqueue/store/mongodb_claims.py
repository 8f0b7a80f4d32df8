"""Claiming, renewing and releasing leases on MongoDB, a batch of jobs per round trip.

A claim is four round trips whatever its size: find the candidates' ids on the "due_by_host" index
(status, priority desc, available_at, host: equality, sort, then the host exclusion read from the
index keys, so a host that dominates the queue is skipped without reading its documents; the find
is hinted and time-capped), `update_many` them with the original filter plus `_id: {$in}` and a
fresh lease token (so a job another process took meanwhile is left alone), read the claimed ones
back by that token, and move the counters. A due job is queued or running with a lapsed lease; each
kind is claimed by its own update, so the counters move exactly (queued -> running, or no move).

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
from jobqueue.store.mongodb_batches import Moves
from jobqueue.store.mongodb_schema import CLAIM_INDEX_NAME, CLAIM_ORDER, TASK_FIELDS, task_from_doc

CLAIM_MAX_TIME_MS = 2000


class MongoClaimOps:
    """claim, extend and release of MongoStore."""

    clock: Callable[[], float]

    if TYPE_CHECKING:  # provided by MongoStore and its other mixins
        @property
        def db(self) -> Any: ...

        async def _call(self, operation: Any, allow: tuple[type[Exception], ...] = ()) -> Any: ...
        async def _move(self, moves: Moves, now: float) -> None: ...

    async def claim(self, limit: int, lease_seconds: float, exclude_hosts: list[str]) -> list[Task]:
        """Take up to `limit` due tasks under one fresh lease token: higher priority first, then older due time.
        Returned in that order."""
        if limit <= 0:
            return []
        now = self.clock()
        due: dict[str, Any] = {"status": {"$in": [QUEUED, RUNNING]}, "available_at": {"$lte": now}}
        if exclude_hosts:
            due["host"] = {"$nin": exclude_hosts}
        candidates = (self.db.jobs.find(due, {"_id": 1}).sort(CLAIM_ORDER).hint(CLAIM_INDEX_NAME).limit(limit)
                      .max_time_ms(CLAIM_MAX_TIME_MS))
        try:
            # the client's timeoutMS would replace the cursor's maxTimeMS with its own, longer one (CSOT)
            with pymongo.timeout(CLAIM_MAX_TIME_MS / 1000):
                ids = [d["_id"] for d in await self._call(candidates.to_list(limit), allow=(ExecutionTimeout,))]
        except ExecutionTimeout:
            return []  # the index did not answer in time: an idle poll, tried again shortly
        if not ids:
            return []
        # one token per old status, so each claimed job tells which it left (a lapsed lease moves no count)
        tokens = {QUEUED: secrets.token_hex(8), RUNNING: secrets.token_hex(8)}
        try:
            for old, token in tokens.items():
                sets = {"status": RUNNING, "lease_token": token, "available_at": now + lease_seconds,
                        "started_at": now, "updated_at": now}
                await self._call(self.db.jobs.update_many(
                    {**due, "status": old, "_id": {"$in": ids}}, {"$set": sets, "$inc": {"attempts": 1}}))
            found = self.db.jobs.find({"_id": {"$in": ids}, "lease_token": {"$in": list(tokens.values())}},
                                      TASK_FIELDS)
            docs = await self._call(found.to_list(len(ids)))
        except StoreError:
            await self._give_back(tokens, now)
            raise
        moves = Moves()
        for doc in docs:
            moves.add(doc.get("batch_id"), QUEUED if doc["lease_token"] == tokens[QUEUED] else RUNNING, RUNNING)
        await self._move(moves, now)
        order = {task_id: i for i, task_id in enumerate(ids)}
        return [task_from_doc(d) for d in sorted(docs, key=lambda d: order[d["_id"]])]

    async def _give_back(self, tokens: dict[str, str], now: float) -> None:
        """Release every job a failed claim took (its attempt not counted); silent if this fails too."""
        try:
            for old, token in tokens.items():
                back = await self._call(self.db.jobs.update_many(
                    {"lease_token": token, "status": RUNNING},
                    {"$set": {"status": QUEUED, "lease_token": None, "available_at": now, "updated_at": now},
                     "$inc": {"attempts": -1}}))
                if old == RUNNING and back.modified_count:  # those were counted running already
                    moves = Moves()
                    moves.add(None, RUNNING, QUEUED, int(back.modified_count))
                    await self._move(moves, now)
        except (StoreError, PyMongoError):
            pass  # the leases run out instead; a recount repairs the counters

    async def extend(self, leases: list[Lease], lease_seconds: float) -> list[str]:
        """Renew every lease still held in one update; report the lost ones."""
        if not leases:
            return []
        until = self.clock() + lease_seconds
        held = [{"_id": lease.task_id, "lease_token": lease.token} for lease in leases]
        renewed = await self._call(self.db.jobs.update_many(
            {"$or": held, "status": RUNNING}, {"$set": {"available_at": until}}))
        if renewed.matched_count == len(leases):
            return []
        found = self.db.jobs.find({"_id": {"$in": [lease.task_id for lease in leases]}, "status": RUNNING},
                                  {"lease_token": 1})
        holding = {(d["_id"], d.get("lease_token")) for d in await self._call(found.to_list(None))}
        return [lease.task_id for lease in leases if (lease.task_id, lease.token) not in holding]

    async def release(self, leases: list[Lease]) -> list[Task]:
        """Give tasks back as queued without counting the interrupted attempt."""
        now = self.clock()
        released, moves = [], Moves()
        try:
            for lease in leases:
                doc = await self._call(self.db.jobs.find_one_and_update(
                    {"_id": lease.task_id, "lease_token": lease.token, "status": RUNNING},
                    {"$set": {"status": QUEUED, "lease_token": None, "available_at": now, "updated_at": now},
                     "$inc": {"attempts": -1}},
                    projection=TASK_FIELDS, return_document=True))
                if doc is not None:
                    moves.add(doc.get("batch_id"), RUNNING, QUEUED)
                    released.append(task_from_doc(doc))
        finally:
            await self._move(moves, now)
        return released
