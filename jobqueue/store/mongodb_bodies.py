"""Response bodies on MongoDB, and the freshness reuse that shares them between jobs.

A body is written before the completion that names it in the job's result (`result.body_ref`,
`{"doc": key}`), under a key made of the task and its lease token: a completion repeated under the
same lease (after an ambiguous network error) overwrites its own body instead of leaving a second
one, and a stale worker's body never touches the live one. Bodies are zlib-compressed when that
saves a tenth or more (HTML shrinks 4-8x: less oplog, less disk) and split into parts of at most
PART_SIZE bytes: the head document `{_id: key, task_id, created_at, parts, z, body}` and parts
`{_id: "key#i", of: key, ...}`. No document, and so no oplog entry, carries more than PART_SIZE of
body, and every part lives in one collection that mongomock can hold too. Bodies of older releases
(one document, or GridFS `{"gridfs": id}`) are still read and dropped.

A body whose job (or a reused copy of its result) does not name it is an orphan: a crash between
writing it and completing, a completion refused, a retry that died before letting go of the old
one. `sweep_bodies` (run by the maintenance round, MongoStore.maintain) deletes the orphans older
than SWEEP_GRACE, walking bodies by creation time. A body read that finds its body missing (a retry
dropped it meanwhile) is "no result", never an empty body.

A job with `max_age` may instead get a copy of a fresh job's result sub-document, naming the same
body: shared, not copied. So a body is dropped only when no job's result names it any more (the
"body_ref" index makes that check cheap). The source is found on the "fresh" index: (reuse_key,
reused_from, finished_at desc) over completed jobs.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gridfs.errors import NoFile
from pymongo import ASCENDING, DESCENDING
from pymongo.errors import DuplicateKeyError

from jobqueue.models import COMPLETED, QUEUED
from jobqueue.store.base import Lease, NewTask

PART_SIZE = 256 * 1024  # the most body bytes one document (one oplog entry) carries
COMPRESS_IN_THREAD = 256 * 1024  # larger bodies are compressed off the event loop
SWEEP_GRACE = 3600.0  # a body younger than this may belong to a completion still under way
SWEEP_LIMIT = 500  # bodies examined per sweep


def body_key(lease: Lease) -> str:
    """The key of the body a completion under `lease` writes: the same for a repeat under the same lease."""
    return f"{lease.task_id}:{lease.token}"


def _packed(body: bytes) -> tuple[bytes, bool]:
    """The bytes to store and whether they are compressed (only when that saves a tenth or more)."""
    if len(body) < 512:
        return body, False
    squeezed = zlib.compress(body, 6)
    return (squeezed, True) if len(squeezed) <= len(body) * 0.9 else (body, False)


class MongoBodies:
    """Storing, loading, sharing, dropping and sweeping bodies; finding fresh results to reuse."""

    clock: Callable[[], float]

    if TYPE_CHECKING:  # provided by MongoStore (motor stays there); absent at run time
        @property
        def db(self) -> Any: ...

        @property
        def bucket(self) -> Any: ...

        async def _call(self, operation: Any, allow: tuple[type[Exception], ...] = ()) -> Any: ...

    async def _store_body(self, lease: Lease, body: bytes) -> dict[str, Any]:
        """Write the body of a completion under `lease`; a body of that lease a job already names is left as it is
        (that completion was applied: this repeat will be refused)."""
        key, ref = body_key(lease), {"doc": body_key(lease)}
        data, compressed = (await asyncio.to_thread(_packed, body) if len(body) > COMPRESS_IN_THREAD
                            else _packed(body))
        chunks = [data[i:i + PART_SIZE] for i in range(0, len(data), PART_SIZE)] or [b""]
        now, bodies = self.clock(), self.db.bodies
        common = {"task_id": lease.task_id, "created_at": now}
        head = {"_id": key, **common, "parts": len(chunks), "z": compressed, "body": chunks[0]}
        if len(chunks) == 1:
            try:
                await self._call(bodies.insert_one(head), allow=(DuplicateKeyError,))
                return ref
            except DuplicateKeyError:
                pass  # an earlier completion under this lease wrote it
        if await self._named(ref):
            return ref
        if len(chunks) > 1:
            await self._call(bodies.delete_many({"of": key}))  # a repeat under this lease starts afresh
            await self._call(bodies.insert_many(
                [{"_id": f"{key}#{i}", "of": key, **common, "body": chunk} for i, chunk in enumerate(chunks) if i]))
        # the head last: a body is whole once its head names its parts
        await self._call(bodies.replace_one({"_id": key}, head, upsert=True))
        return ref

    async def _named(self, ref: dict[str, Any], besides: str | None = None) -> bool:
        """Whether a job's result (other than `besides`'s) names the body (on the body_ref index)."""
        query: dict[str, Any] = {"result.body_ref": ref}
        if besides is not None:
            query["_id"] = {"$ne": besides}
        return bool(await self._call(self.db.jobs.count_documents(query, limit=1)))

    async def _drop_body(self, ref: dict[str, Any] | None) -> None:
        if not ref:
            return
        if "gridfs" in ref:
            try:
                await self._call(self.bucket.delete(ref["gridfs"]), allow=(NoFile,))
            except NoFile:
                pass  # two jobs sharing it let go at the same time: the other one dropped it
        else:
            await self._call(self.db.bodies.delete_many({"$or": [{"_id": ref["doc"]}, {"of": ref["doc"]}]}))

    async def _release_body(self, ref: dict[str, Any] | None, task_id: str | None) -> None:
        """Drop a body `task_id` no longer names, unless another job's result still names it (reuse shares it);
        with no `task_id`, unless any job's result names it."""
        if ref and not await self._named(ref, besides=task_id):
            await self._drop_body(ref)

    async def _load_body(self, ref: dict[str, Any]) -> bytes | None:
        """The body a result names, or None when it is gone (a retry or sweep dropped it meanwhile)."""
        if "gridfs" in ref:
            try:
                stream = await self._call(self.bucket.open_download_stream(ref["gridfs"]), allow=(NoFile,))
            except NoFile:
                return None
            return await self._call(stream.read())
        key = ref["doc"]
        head = await self._call(self.db.bodies.find_one({"_id": key}))
        if head is None:
            return None
        pieces = [bytes(head["body"])]
        parts = int(head.get("parts", 1))
        if parts > 1:
            found = self.db.bodies.find({"_id": {"$in": [f"{key}#{i}" for i in range(1, parts)]}})
            rest = {d["_id"]: bytes(d["body"]) for d in await self._call(found.to_list(parts))}
            if len(rest) != parts - 1:
                return None
            pieces += [rest[f"{key}#{i}"] for i in range(1, parts)]
        data = b"".join(pieces)
        if not head.get("z"):
            return data
        return await asyncio.to_thread(zlib.decompress, data) if len(data) > COMPRESS_IN_THREAD \
            else zlib.decompress(data)

    async def sweep_bodies(self, after: float, now: float) -> float:
        """Delete orphan bodies created after `after` and before now - SWEEP_GRACE; return where the walk got to."""
        found = (self.db.bodies.find({"created_at": {"$gt": after, "$lt": now - SWEEP_GRACE}},
                                     {"_id": 1, "of": 1, "created_at": 1})
                 .sort("created_at", ASCENDING).limit(SWEEP_LIMIT))
        docs = await self._call(found.to_list(SWEEP_LIMIT))
        if not docs:
            return after
        heads = list({d.get("of") or d["_id"] for d in docs})
        named = self.db.jobs.find({"result.body_ref": {"$in": [{"doc": k} for k in heads]}}, {"result.body_ref": 1})
        kept = {d["result"]["body_ref"]["doc"] for d in await self._call(named.to_list(None))}
        orphans = [k for k in heads if k not in kept]
        if orphans:
            await self._call(self.db.bodies.delete_many({"$or": [{"_id": {"$in": orphans}}, {"of": {"$in": orphans}}]}))
        return float(docs[-1]["created_at"])

    async def _fresh_sources(self, tasks: list[NewTask], now: float) -> dict[str, dict[str, Any]]:
        """For each task with max_age, the newest completed job of the same fetch within that age (if any).

        The newest one per reuse key is looked up once (on the "fresh" index) and checked against each
        task's own age limit; jobs that themselves reused a result are never a source.
        """
        newest: dict[str, dict[str, Any] | None] = {}
        found: dict[str, dict[str, Any]] = {}
        for task in tasks:
            max_age = task.spec.max_age
            if max_age is None:
                continue
            key = task.reuse_key
            if key not in newest:
                newest[key] = await self._call(self.db.jobs.find_one(
                    {"reuse_key": key, "reused_from": None, "status": COMPLETED, "result": {"$exists": True}},
                    {"result": 1, "http_status": 1, "finished_at": 1}, sort=[("finished_at", DESCENDING)]))
            source = newest[key]
            if source is not None and source["finished_at"] >= now - max_age:
                found[task.id] = source
        return found

    async def _confirm_sources(self, docs: list[dict[str, Any]], now: float) -> bool:
        """After inserting jobs that share a result, check each source still has it; queue the others.

        A source retried (or removed) after we read it may have dropped the body before our job named
        it. If the source is still completed with that body now, any later retry sees our job and keeps
        the body; if not, our job is queued to fetch for itself. Returns whether any job was queued.
        """
        reused = [d for d in docs if d.get("reused_from") is not None]
        wanted = list({d["reused_from"] for d in reused})
        alive = self.db.jobs.find({"_id": {"$in": wanted}, "status": COMPLETED}, {"result.body_ref": 1})
        refs = {d["_id"]: (d.get("result") or {}).get("body_ref") for d in await self._call(alive.to_list(None))}
        changed = False
        for doc in reused:
            ref = doc["result"]["body_ref"]
            if refs.get(doc["reused_from"]) == ref:
                continue
            sets = {"status": QUEUED, "finished_at": None, "http_status": None, "reused_from": None,
                    "updated_at": now}
            await self._call(self.db.jobs.update_one({"_id": doc["_id"], "status": COMPLETED},
                                                     {"$set": sets, "$unset": {"result": ""}}))
            doc.update(sets)
            doc.pop("result")
            await self._release_body(ref, doc["_id"])
            changed = True
        return changed
