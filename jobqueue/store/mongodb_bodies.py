"""Response bodies on MongoDB, and the freshness reuse that shares them between jobs.

A body lives in `bodies` (one document each) or in GridFS when too large for a document, and is
written before the completion that names it in the job's result (`result.body_ref`). A job with
`max_age` may instead get a copy of a fresh job's result sub-document, naming the same body: shared,
not copied. So a body is dropped only when no job's result names it any more (the "body_ref"
index makes that check cheap). The source is found on the "fresh" index: (reuse_key, reused_from,
finished_at desc) over completed jobs.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gridfs.errors import NoFile
from pymongo import DESCENDING

from jobqueue.models import COMPLETED, QUEUED
from jobqueue.store.base import Lease, NewTask

INLINE_BODY_LIMIT = 8 * 1024 * 1024  # larger bodies go to GridFS (documents stop at 16 MB)


class MongoBodies:
    """Storing, loading, sharing and dropping bodies; finding fresh results to reuse."""

    clock: Callable[[], float]

    if TYPE_CHECKING:  # provided by MongoStore (motor stays there); absent at run time
        @property
        def db(self) -> Any: ...

        @property
        def bucket(self) -> Any: ...

        async def _call(self, operation: Any, allow: tuple[type[Exception], ...] = ()) -> Any: ...

    async def _store_body(self, lease: Lease, body: bytes) -> dict[str, Any]:
        key = f"{lease.task_id}:{lease.token}:{secrets.token_hex(4)}"  # never overwrites another write
        if len(body) > INLINE_BODY_LIMIT:
            file_id = await self._call(self.bucket.upload_from_stream(key, body, metadata={"task_id": lease.task_id}))
            return {"gridfs": file_id}
        await self._call(self.db.bodies.replace_one({"_id": key}, {"_id": key, "task_id": lease.task_id,
                                                                    "body": body}, upsert=True))
        return {"doc": key}

    async def _drop_body(self, ref: dict[str, Any] | None) -> None:
        if not ref:
            return
        if "gridfs" in ref:
            try:
                await self._call(self.bucket.delete(ref["gridfs"]), allow=(NoFile,))
            except NoFile:
                pass  # two jobs sharing it let go at the same time: the other one dropped it
        else:
            await self._call(self.db.bodies.delete_one({"_id": ref["doc"]}))

    async def _release_body(self, ref: dict[str, Any] | None, task_id: str) -> None:
        """Drop a body `task_id` no longer names, unless another job's result still names it (reuse shares it)."""
        if not ref:
            return
        others = await self._call(self.db.jobs.count_documents(
            {"result.body_ref": ref, "_id": {"$ne": task_id}}, limit=1))  # on the body_ref index
        if not others:
            await self._drop_body(ref)

    async def _load_body(self, ref: dict[str, Any]) -> bytes:
        if "gridfs" in ref:
            stream = await self._call(self.bucket.open_download_stream(ref["gridfs"]))
            return await self._call(stream.read())
        doc = await self._call(self.db.bodies.find_one({"_id": ref["doc"]}))
        return bytes(doc["body"]) if doc else b""

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
