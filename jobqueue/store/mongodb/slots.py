"""MongoDB's slots: how many requests may be in flight at once to one host (or webhook endpoint), held as
documents, so the limit holds across every process on the database without a transaction.

A key with a limit of N has the slot documents `{scope}|{key}|0` to `|N-1`. A slot is taken by one
conditional upsert on its `_id`: it matches only a slot whose lease ran out (its holder died), and
where the slot is held the upsert's insert fails on the unique `_id`, so two processes can never hold
the same slot. A taken slot names its holder (the job or delivery id) and the holder's lease token and
expiry; the holder deletes it when its request is over, and renews it with its lease. Documents of
holders that died are taken over, or deleted by the next claim that reads them.

Per-host policies (a host's own max_concurrency, pauses, a minimum delay between starts) fit here:
`Rooms` is where a key's limit is decided.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from pymongo.errors import DuplicateKeyError

from jobqueue.store.base import Lease

HOST = "host"
ENDPOINT = "endpoint"

Call = Callable[..., Awaitable[Any]]  # MongoStore._call


def slot_id(scope: str, key: str, number: int) -> str:
    """The `_id` of one of a key's slots."""
    return f"{scope}|{key}|{number}"


class Rooms:
    """For one claim: the slots of a scope held when it began (one read), then taken one at a time."""

    def __init__(self, db: Any, call: Call, scope: str, limit: int, now: float) -> None:
        self.db, self.call, self.scope, self.limit, self.now = db, call, scope, limit, now
        self.held: defaultdict[str, set[int]] = defaultdict(set)

    @classmethod
    async def read(cls, db: Any, call: Call, scope: str, limit: int, now: float) -> Rooms:
        """The slots held now; those whose holder's lease ran out are deleted on the way."""
        rooms = cls(db, call, scope, limit, now)
        expired = []
        for doc in await call(db.slots.find({"scope": scope}, {"key": 1, "n": 1, "expires_at": 1}).to_list(None)):
            if doc["expires_at"] <= now:
                expired.append(doc["_id"])
            else:
                rooms.held[doc["key"]].add(doc["n"])
        if expired:
            await call(db.slots.delete_many({"_id": {"$in": expired}, "expires_at": {"$lte": now}}))
        return rooms

    def full(self) -> list[str]:
        """The keys with no slot left."""
        return sorted(key for key, numbers in self.held.items() if len(numbers) >= self.limit)

    async def take(self, key: str, holder: str, token: str, expires_at: float) -> bool:
        """Take one of the key's free slots for `holder`; False when every one is held (by now, by anyone)."""
        held = self.held[key]
        for number in range(self.limit):
            if len(held) >= self.limit:
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
