"""MongoDB's side of derived views (jobqueue/store/views.py): the `body_views` collection.

A document `{sha, v, codec, size, created_at, data}` holds the compressed views of the body whose head is
`bodies._id == sha`, by extractor version `v`; the unique "key" index on (sha, v) (migration 12) makes a
second put of a key, from any process, a no-op, and serves the deletion of a body's views by its prefix.

Without transactions a put may race the deletion of its body: drop_head (mongodb/bodies.py) deletes the
head, then its views; a put inserts, then looks for the head again and takes its views back when the head
is gone. Whichever order the two take, no view is left without its body.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pymongo.errors import DuplicateKeyError

from jobqueue.store.mongodb.parts import MongoParts
from jobqueue.store.views import pack_views, unpack_views_async


async def drop_views(db: Any, sha: str) -> None:
    """Delete every view of a body (its head is gone)."""
    await db.body_views.delete_many({"sha": sha})


class MongoViewOps(MongoParts):
    """get_views and put_views of MongoStore."""

    clock: Callable[[], float]

    async def get_views(self, sha256: str, version: int) -> str | None:
        """The views kept for a body by an extractor version (decompressed off the loop when large); None if none."""
        doc = await self._call(self.db.body_views.find_one({"sha": sha256, "v": version},
                                                           {"codec": 1, "size": 1, "data": 1}))
        if doc is None:
            return None
        return await unpack_views_async(doc["codec"], bytes(doc["data"]), int(doc["size"]))

    async def put_views(self, sha256: str, version: int, document: str) -> None:
        """Keep a body's views once (the first put of a key wins) while its body is stored; drop its older views."""
        db = self.db
        packed = await pack_views(sha256, document)
        if packed is None or not await self._body_stored(sha256):
            return
        doc = {"sha": sha256, "v": version, "codec": packed.codec, "size": packed.size, "created_at": self.clock(),
               "data": packed.data}
        try:
            await self._call(db.body_views.insert_one(doc), allow=(DuplicateKeyError,))
        except DuplicateKeyError:
            pass  # kept already, by this process or another
        await self._call(db.body_views.delete_many({"sha": sha256, "v": {"$lt": version}}))
        if not await self._body_stored(sha256):  # its body went meanwhile (module doc)
            await self._call(drop_views(db, sha256))

    async def _body_stored(self, sha256: str) -> bool:
        """Whether a content-addressed body of this sha256 is stored."""
        return await self._call(self.db.bodies.find_one({"_id": sha256}, {"_id": 1})) is not None
