"""MongoDB's slots: how many requests may be in flight at once to one host (or webhook endpoint), held as
documents, so the limit holds across every process on the database without a transaction.

A key with a limit of N has the slot documents `{scope}|{key}|0` to `|N-1`. A slot is taken by one
conditional upsert on its `_id`: it matches only a slot whose lease ran out (its holder died), and
where the slot is held the upsert's insert fails on the unique `_id`, so two processes can never hold
the same slot. A taken slot names its holder (the job or delivery id) and the holder's lease token and
expiry; the holder deletes it when its request is over, and renews it with its lease. Documents of
holders that died are taken over, or deleted by the next claim that reads them.

A host's own policy (its max_concurrency, a pause, a minimum delay between starts, a Retry-After) comes from
the `hosts` collection (mongodb/hosts.py `Pacing`): `Rooms` asks it each host's limit and which hosts may start
nothing now, and takes a paced host's start after its slot (giving the slot back if another process started
that host first).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

from pymongo.errors import DuplicateKeyError

from jobqueue.store.base import Lease

HOST = "host"
ENDPOINT = "endpoint"

if TYPE_CHECKING:
    from jobqueue.store.mongodb.hosts import Pacing

Call = Callable[..., Awaitable[Any]]  # MongoStore._call


def slot_id(scope: str, key: str, number: int) -> str:
    """The `_id` of one of a key's slots."""
    return f"{scope}|{key}|{number}"


class Rooms:
    """For one claim: the slots of a scope held when it began (one read), then taken one at a time."""

    def __init__(self, db: Any, call: Call, scope: str, limit: int, now: float, pacing: Pacing | None = None
                 ) -> None:
        self.db, self.call, self.scope, self.limit, self.now = db, call, scope, limit, now
        self.pacing = pacing
        self.held: defaultdict[str, set[int]] = defaultdict(set)

    @classmethod
    async def read(cls, db: Any, call: Call, scope: str, limit: int, now: float, pacing: Pacing | None = None
                   ) -> Rooms:
        """The slots held now; those whose holder's lease ran out are deleted on the way."""
        rooms = cls(db, call, scope, limit, now, pacing)
        expired = []
        for doc in await call(db.slots.find({"scope": scope}, {"key": 1, "n": 1, "expires_at": 1}).to_list(None)):
            if doc["expires_at"] <= now:
                expired.append(doc["_id"])
            else:
                rooms.held[doc["key"]].add(doc["n"])
        if expired:
            await call(db.slots.delete_many({"_id": {"$in": expired}, "expires_at": {"$lte": now}}))
        return rooms

    def _limit(self, key: str) -> int:
        return self.limit if self.pacing is None else self.pacing.limit(key)

    def full(self) -> list[str]:
        """The keys with no slot left (or, for hosts, that may start nothing now)."""
        full = {key for key, numbers in self.held.items() if len(numbers) >= self._limit(key)}
        return sorted(full if self.pacing is None else full | self.pacing.blocked)

    async def take(self, key: str, holder: str, token: str, expires_at: float) -> bool:
        """Take one of the key's free slots for `holder`, and a paced host's start; False when every slot is held
        (by now, by anyone), or the host may start nothing now."""
        pacing = self.pacing
        if pacing is not None and key in pacing.blocked:
            return False
        if not await self._slot(key, holder, token, expires_at):
            return False
        if pacing is not None and not await pacing.start(key):
            await free(self.db, self.call, self.scope, [Lease(holder, token)])
            return False
        return True

    async def _slot(self, key: str, holder: str, token: str, expires_at: float) -> bool:
        held = self.held[key]
        limit = self._limit(key)
        for number in range(limit):
            if len(held) >= limit:
                return False
            if number in held:
                continue
            try:
                await self.call(self.db.slots.update_one(
                    {"_id": slot_id(self.scope, key, number), "expires_at": {"$lte": self.now}},
                    {"$set": {"scope": self.scope, "key": key, "n": number, "holder": holder, "token": token,
                              "expires_at": expires_at}},
                    upsert=True), allow=(DuplicateKeyError,))
            except DuplicateKeyError:
                held.add(number)  # another process holds it
                continue
            held.add(number)
            return True
        return False


def _held_by(scope: str, leases: Iterable[Lease]) -> dict[str, Any] | None:
    pairs = [{"holder": lease.task_id, "token": lease.token} for lease in leases]
    return {"scope": scope, "$or": pairs} if pairs else None


async def free(db: Any, call: Call, scope: str, leases: Iterable[Lease]) -> None:
    """Give back the slots these leases hold (a slot another lease of the same holder took is left alone)."""
    query = _held_by(scope, leases)
    if query is not None:
        await call(db.slots.delete_many(query))


async def free_tokens(db: Any, call: Call, scope: str, tokens: Iterable[str]) -> None:
    """Give back every slot taken under these lease tokens (a claim that failed half way)."""
    await call(db.slots.delete_many({"scope": scope, "token": {"$in": list(tokens)}}))


async def renew(db: Any, call: Call, scope: str, leases: Iterable[Lease], expires_at: float) -> None:
    """Push the expiry of the slots these leases hold, as their leases are renewed."""
    query = _held_by(scope, leases)
    if query is not None:
        await call(db.slots.update_many(query, {"$set": {"expires_at": expires_at}}))
