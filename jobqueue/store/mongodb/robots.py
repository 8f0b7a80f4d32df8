"""MongoDB's side of robots.txt (jobqueue/robots.py): the `robots` collection, one document per origin.

`{origin, status, body, fetched_at, expires_at}`, unique on `origin` (migration 13). A put replaces the kept
document only with a fetch at least as new; when two processes fetch at once, the loser of the upsert meets
the unique index and keeps nothing: either fetch is a true answer.
"""

from __future__ import annotations

from collections.abc import Callable

from pymongo.errors import DuplicateKeyError

from jobqueue.store.mongodb.parts import MongoParts
from jobqueue.store.records import RobotsEntry


class MongoRobotsOps(MongoParts):
    """get_robots and put_robots of MongoStore."""

    clock: Callable[[], float]

    async def get_robots(self, origin: str) -> RobotsEntry | None:
        """The document kept for an origin, expired or not; None when there is none."""
        doc = await self._call(self.db.robots.find_one({"origin": origin}))
        if doc is None:
            return None
        return RobotsEntry(origin, doc.get("status"), doc.get("body") or "", float(doc["fetched_at"]),
                           float(doc["expires_at"]))

    async def put_robots(self, origin: str, status: int | None, body: str, fetched_at: float,
                         expires_at: float) -> None:
        """Keep an origin's robots.txt unless a newer fetch of it is kept already."""
        doc = {"origin": origin, "status": status, "body": body, "fetched_at": fetched_at, "expires_at": expires_at}
        try:
            await self._call(self.db.robots.replace_one({"origin": origin, "fetched_at": {"$lte": fetched_at}}, doc,
                                                        upsert=True), allow=(DuplicateKeyError,))
        except DuplicateKeyError:
            pass  # a newer fetch is kept (module doc)
