"""Response bodies on MongoDB: stored once per sha256, zstd-compressed, shared by every result that has them.

A result names its body by content, `result.body_ref = {"sha": <sha256 hex>}` (and keeps its raw
length in `result.body_size`). The body is a head document in `bodies`, `_id` = the sha256, holding
the codec (jobqueue.history.codec), the raw and stored sizes, and either the stored bytes themselves
(up to PART_SIZE) or the number of parts written under a `layout` (the lease that wrote them):
`{_id: "sha:layout#i", of: sha, layout, task_id, body}`. No document, and so no oplog entry,
carries more than PART_SIZE of body. A head is `ready` once its bytes are all written; a second
writer of a body already stored writes no bytes at all (one small update).

Without transactions a body could be deleted between a completion finding it and the completion
naming it. So a completion *pins* the body first (`$inc` of `pending` and `rev`, `pending_until` a
bound on how long a completion takes), names it in its one lease-guarded update, then unpins it.
A deletion reads the head, skips it while pinned, checks that no job names it (the "body_ref" index),
and deletes it only if `rev` has not moved since its read: any completion that started meanwhile
moved it. A pin left by a process that died expires after PIN_SECONDS.

Bodies of older releases are read as they were written (`{"doc": "task:lease"}` documents, zlib
`z` flag, parts `key#i`; `{"gridfs": id}` files) until migration 5 (content_address_bodies) turns
them into content-addressed ones. `sweep_bodies` (the maintenance round) deletes what a crash left:
bodies no result names, parts of a writer that lost or died, walked by creation time.

A job with `max_age` may get a copy of a fresh job's result sub-document, naming the same body: so a
body is deleted only when no job names it. The source is found on the "fresh" index.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pymongo import ASCENDING, DESCENDING
from pymongo.errors import DuplicateKeyError

from jobqueue.history.codec import Packed, pack, unpack
from jobqueue.models import COMPLETED
from jobqueue.store.base import Lease, NewTask, StoreError
from jobqueue.store.mongodb.parts import MongoParts
from jobqueue.store.mongodb.views import drop_views

PART_SIZE = 256 * 1024  # the most body bytes one document (one oplog entry) carries
COMPRESS_IN_THREAD = 256 * 1024  # larger bodies are hashed and compressed off the event loop
SWEEP_GRACE = 3600.0  # a body younger than this may belong to a completion still under way
PIN_SECONDS = SWEEP_GRACE  # a completion's pin on its body lasts at most this long
SWEEP_LIMIT = 500  # bodies examined per sweep


def body_key(lease: Lease) -> str:
    """The layout of the parts a completion under `lease` writes: the same for a repeat under the same lease."""
    return f"{lease.task_id}:{lease.token}"


def sha_ref(sha256: str) -> dict[str, str]:
    """How a result names a content-addressed body."""
    return {"sha": sha256}


async def packed(body: bytes) -> Packed:
    """A body hashed and compressed (off the event loop when large)."""
    return await asyncio.to_thread(pack, body) if len(body) > COMPRESS_IN_THREAD else pack(body)


def _chunks(data: bytes) -> list[bytes]:
    return [data[i:i + PART_SIZE] for i in range(0, len(data), PART_SIZE)] or [b""]


async def keep_body(bodies: Any, body: Packed, layout: str, task_id: str, now: float) -> dict[str, str]:
    """Make the body stored and ready under its sha256 and pin it; its ref. The caller unpins it (`unpin`).

    One upsert pins it and, for a new body of one part, writes it whole. A body of several parts is
    written under this writer's own layout, then made ready by a guarded update naming that layout; a
    writer that lost the race deletes its parts.
    """
    sha, chunks = body.sha256, _chunks(body.data)
    whole = len(chunks) == 1
    head = {"created_at": now, "codec": body.codec, "size": body.size, "stored": len(body.data),
            "parts": len(chunks), "ready": whole, "layout": None}
    if whole:
        head["body"] = chunks[0]
    pin = {"$inc": {"rev": 1, "pending": 1}, "$max": {"pending_until": now + PIN_SECONDS}}
    try:
        doc = await bodies.find_one_and_update({"_id": sha}, {**pin, "$setOnInsert": head}, upsert=True,
                                               projection={"ready": 1}, return_document=True)
    except DuplicateKeyError:  # two first writers at once (a server retries most of these itself): pin theirs
        doc = await bodies.find_one_and_update({"_id": sha}, pin, projection={"ready": 1}, return_document=True)
    if doc.get("ready"):
        return sha_ref(sha)
    parts = [{"_id": f"{sha}:{layout}#{i}", "of": sha, "layout": layout, "task_id": task_id, "created_at": now,
              "body": chunk} for i, chunk in enumerate(chunks)]
    await bodies.delete_many({"of": sha, "layout": layout})  # a repeat under this lease starts afresh
    await bodies.insert_many(parts)
    made = await bodies.update_one(
        {"_id": sha, "ready": False},
        {"$set": {"ready": True, "layout": layout, "codec": body.codec, "size": body.size,
                  "stored": len(body.data), "parts": len(chunks)}})
    if not made.modified_count:
        await bodies.delete_many({"of": sha, "layout": layout})  # another writer's parts were ready first
    return sha_ref(sha)


async def unpin(bodies: Any, ref: dict[str, Any]) -> None:
    """Let go of a pin taken by keep_body (the completion has named the body, or given up)."""
    await bodies.update_one({"_id": ref["sha"], "pending": {"$gt": 0}}, {"$inc": {"pending": -1, "rev": 1}})


async def load_head(bodies: Any, head: dict[str, Any]) -> bytes | None:
    """The original bytes of a content-addressed head, or None when it is not whole."""
    if not head.get("ready"):
        return None
    if "body" in head:
        data = bytes(head["body"])
    else:
        sha, layout, parts = head["_id"], head["layout"], int(head["parts"])
        names = [f"{sha}:{layout}#{i}" for i in range(parts)]
        found = {d["_id"]: bytes(d["body"]) for d in await bodies.find({"_id": {"$in": names}}).to_list(parts)}
        if len(found) != parts:
            return None
        data = b"".join(found[n] for n in names)
    size = int(head["size"])
    if len(data) > COMPRESS_IN_THREAD or size > COMPRESS_IN_THREAD:
        return await asyncio.to_thread(unpack, head["codec"], data, size)
    return unpack(head["codec"], data, size)


async def load_legacy(db: Any, ref: dict[str, Any]) -> bytes | None:
    """A body as releases before content addressing wrote it (a `doc` key, or a GridFS file), or None."""
    if "gridfs" in ref:  # read through the collections GridFS keeps, so no motor is needed here
        files = await db["bodies_fs.files"].find_one({"_id": ref["gridfs"]}, {"length": 1})
        if files is None:
            return None
        chunks = await db["bodies_fs.chunks"].find({"files_id": ref["gridfs"]}).sort("n", ASCENDING).to_list(None)
        data = b"".join(bytes(c["data"]) for c in chunks)
        return data if len(data) == int(files["length"]) else None
    key = ref["doc"]
    head = await db.bodies.find_one({"_id": key})
    if head is None:
        return None
    pieces = [bytes(head["body"])]
    parts = int(head.get("parts", 1))
    if parts > 1:
        found = db.bodies.find({"_id": {"$in": [f"{key}#{i}" for i in range(1, parts)]}})
        rest = {d["_id"]: bytes(d["body"]) for d in await found.to_list(parts)}
        if len(rest) != parts - 1:
            return None
        pieces += [rest[f"{key}#{i}"] for i in range(1, parts)]
    data = b"".join(pieces)
    if not head.get("z"):
        return data
    return await asyncio.to_thread(zlib.decompress, data) if len(data) > COMPRESS_IN_THREAD else zlib.decompress(data)


async def drop_legacy(db: Any, ref: dict[str, Any]) -> None:
    """Delete a body of an older release (a `doc` head with its parts, or a GridFS file with its chunks)."""
    if "gridfs" in ref:
        await db["bodies_fs.chunks"].delete_many({"files_id": ref["gridfs"]})
        await db["bodies_fs.files"].delete_one({"_id": ref["gridfs"]})
    else:
        await db.bodies.delete_many({"$or": [{"_id": ref["doc"]}, {"of": ref["doc"]}]})


async def named(db: Any, ref: dict[str, Any], besides: str | None = None) -> bool:
    """Whether a job's result (other than `besides`'s) names the body, as its body or as a render's capture (on
    the body_ref and artifact_refs indexes)."""
    query: dict[str, Any] = {"$or": [{"result.body_ref": ref}, {"result.artifact_refs": ref}]}
    if besides is not None:
        query["_id"] = {"$ne": besides}
    return bool(await db.jobs.count_documents(query, limit=1))


async def release(db: Any, ref: dict[str, Any] | None, besides: str | None, now: float) -> None:
    """Delete a body no job (other than `besides`) names, unless a completion pinned it since (module doc)."""
    if not ref:
        return
    if "sha" not in ref:
        if not await named(db, ref, besides):
            await drop_legacy(db, ref)
        return
    head = await db.bodies.find_one({"_id": ref["sha"]}, {"rev": 1, "pending": 1, "pending_until": 1})
    if head is None or _pinned(head, now) or await named(db, ref, besides):
        return
    await drop_head(db, ref["sha"], head.get("rev"))


def _pinned(head: dict[str, Any], now: float) -> bool:
    return int(head.get("pending") or 0) > 0 and float(head.get("pending_until") or 0.0) > now


async def drop_head(db: Any, sha: str, rev: Any) -> bool:
    """Delete a head if nobody pinned it since its `rev` was read, with the parts of the layout that head named
    and the body's derived views (mongodb/views.py): a completion storing the same body again once the head is
    gone writes a new head and parts of its own layout, which must stay."""
    bodies = db.bodies
    gone = await bodies.find_one_and_delete({"_id": sha, "rev": rev}, projection={"layout": 1})
    if gone is None:
        return False
    if gone.get("layout") is not None:
        await bodies.delete_many({"of": sha, "layout": gone["layout"]})
    await drop_views(db, sha)
    return True


MIGRATION_CHUNK = 200


async def content_address_bodies(db: Any, now: float) -> int:
    """Migration 5's data: every result naming a body of an older release names its content-addressed copy.

    Byte for byte: a copy is checked against the original before the result is pointed at it. Results
    that shared a body (freshness reuse) share the copy; the old body goes with its last name. Safe to
    run again or from two processes at once (each result moves by an update guarded by its old ref).
    Returns the number of results moved.
    """
    moved, after = 0, ""
    while True:
        found = db.jobs.find({"_id": {"$gt": after}, "result.body_ref": {"$exists": True},
                              "result.body_ref.sha": {"$exists": False}}, {"result.body_ref": 1})
        docs = await found.sort("_id", ASCENDING).limit(MIGRATION_CHUNK).to_list(MIGRATION_CHUNK)
        if not docs:
            return moved
        copies: dict[str, tuple[dict[str, str], int] | None] = {}
        for doc in docs:
            old = doc["result"]["body_ref"]
            name = repr(sorted(old.items()))
            if name not in copies:
                copies[name] = await _copy_legacy(db, old, now)
            copy = copies[name]
            if copy is None:
                continue  # its body was already lost: the result stays as it was ("no result" when read)
            ref, size = copy
            done = await db.jobs.update_one({"_id": doc["_id"], "result.body_ref": old},
                                            {"$set": {"result.body_ref": ref, "result.body_size": size}})
            moved += done.modified_count
        for copy in copies.values():
            if copy is not None:
                await unpin(db.bodies, copy[0])
        for old in {repr(sorted(d["result"]["body_ref"].items())): d["result"]["body_ref"] for d in docs}.values():
            if not await named(db, old):
                await drop_legacy(db, old)
        after = docs[-1]["_id"]


async def _copy_legacy(db: Any, old: dict[str, Any], now: float) -> tuple[dict[str, str], int] | None:
    body = await load_legacy(db, old)
    if body is None:
        return None
    body_packed = await packed(body)
    if unpack(body_packed.codec, body_packed.data, body_packed.size) != body:  # never trust a codec with the only copy
        raise StoreError(f"a body did not read back identical after compression ({old})")
    ref = await keep_body(db.bodies, body_packed, "migration", "migration", now)
    copy = await load_head(db.bodies, await db.bodies.find_one({"_id": ref["sha"]}))
    if copy != body:
        raise StoreError(f"a body's content-addressed copy does not read back identical ({old})")
    return ref, len(body)


class MongoBodies(MongoParts):
    """Storing, loading, sharing, dropping and sweeping bodies; finding fresh results to reuse."""

    clock: Callable[[], float]

    if TYPE_CHECKING:  # provided by MongoStore (motor stays there); absent at run time
        async def _unshare(self, doc: dict[str, Any], now: float) -> None: ...  # mongodb/transitions.py

    async def _store_body(self, lease: Lease, body: bytes) -> dict[str, Any]:
        """Store (or find) the body of a completion under `lease` and pin it; the completion unpins it."""
        return await self._call(keep_body(self.db.bodies, await packed(body), body_key(lease), lease.task_id,
                                          self.clock()))

    async def _unpin_body(self, ref: dict[str, Any]) -> None:
        """Let go of the pin _store_body took."""
        await self._call(unpin(self.db.bodies, ref))

    async def _named(self, ref: dict[str, Any], besides: str | None = None) -> bool:
        """Whether a job's result (other than `besides`'s) names the body."""
        return await self._call(named(self.db, ref, besides))

    async def _release_body(self, ref: dict[str, Any] | None, task_id: str | None) -> None:
        """Drop a body `task_id` no longer names, unless another job's result still names it (reuse and equal
        pages share it); with no `task_id`, unless any job's result names it."""
        await self._call(release(self.db, ref, task_id, self.clock()))

    async def _release_result(self, result: dict[str, Any] | None, task_id: str | None) -> None:
        """Drop what a result `task_id` no longer has named: its body and a render's captures (each unless
        another job's result still names it)."""
        result = result or {}
        for ref in (result.get("body_ref"), *(result.get("artifact_refs") or ())):
            await self._release_body(ref, task_id)

    async def _load_body(self, ref: dict[str, Any]) -> bytes | None:
        """The body a result names, or None when it is gone (a retry or sweep dropped it meanwhile)."""
        if "sha" not in ref:
            return await self._call(load_legacy(self.db, ref))
        head = await self._call(self.db.bodies.find_one({"_id": ref["sha"]}))
        return await self._call(load_head(self.db.bodies, head)) if head is not None else None

    async def sweep_bodies(self, after: float, now: float) -> float:
        """Delete what crashes left (bodies no job names, parts no head uses) created after `after` and before
        now - SWEEP_GRACE; return where the walk got to."""
        found = (self.db.bodies.find({"created_at": {"$gt": after, "$lt": now - SWEEP_GRACE}},
                                     {"_id": 1, "of": 1, "layout": 1, "created_at": 1, "rev": 1, "pending": 1,
                                      "pending_until": 1, "codec": 1})
                 .sort("created_at", ASCENDING).limit(SWEEP_LIMIT))
        docs = await self._call(found.to_list(SWEEP_LIMIT))
        if not docs:
            return after
        await self._call(self._sweep(docs, now))
        return float(docs[-1]["created_at"])

    async def _sweep(self, docs: list[dict[str, Any]], now: float) -> None:
        db = self.db
        heads = [d for d in docs if "of" not in d and "codec" in d]
        for head in heads:
            if not _pinned(head, now) and not await named(db, sha_ref(head["_id"])):
                await drop_head(db, head["_id"], head.get("rev"))
        layouts = {(d["of"], d["layout"]) for d in docs if "of" in d and "layout" in d}  # every one, not one per sha
        if layouts:
            live = db.bodies.find({"_id": {"$in": list({sha for sha, _ in layouts})}, "ready": True}, {"layout": 1})
            used = {(h["_id"], h["layout"]) for h in await live.to_list(None)}
            for sha, layout in layouts - used:  # a writer that lost the race, or died writing
                await db.bodies.delete_many({"of": sha, "layout": layout})
        legacy = list({d.get("of") or d["_id"] for d in docs if "codec" not in d and "layout" not in d})
        if legacy:
            kept = db.jobs.find({"result.body_ref": {"$in": [{"doc": k} for k in legacy]}}, {"result.body_ref": 1})
            names = {d["result"]["body_ref"]["doc"] for d in await kept.to_list(None)}
            orphans = [k for k in legacy if k not in names]
            if orphans:
                await db.bodies.delete_many({"$or": [{"_id": {"$in": orphans}}, {"of": {"$in": orphans}}]})

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
            await self._unshare(doc, now)
            await self._release_body(ref, doc["_id"])
            changed = True
        return changed
