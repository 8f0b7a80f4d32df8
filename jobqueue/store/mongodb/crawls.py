"""MongoDB's side of crawls: the `crawls` collection, and their pages (ordinary job documents with a crawl_id).

Each page goes in once: a unique index on (crawl_id, crawl_key) (migration 14) refuses a second insert of a
page, by another process or after a crash and a second fetch of its parent. `max_pages` is exact: pages are
admitted by raising the crawl's `discovered` with a compare-and-set on its old value (never past max_pages)
before they are inserted; a page that turns out a duplicate gives its place back. A completed page's links
are inserted before its completion is written, so a crash between the two loses nothing (the page runs
again and finds its links present). Counts by status are read from the (crawl_id, status) index; a crawl
finishes when a finishing page sees none queued or running and no sitemap being read. `crawl.finished` is
relayed like `batch.finished`: from crawls finished recently whose `hooked_at` is not their `finished_at`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pymongo import ReturnDocument
from pymongo.errors import BulkWriteError

from jobqueue.errors import NotFound
from jobqueue.models import CRAWL_SKIPS, STATUSES, Crawl, CrawlLinks, Page, Task
from jobqueue.store.mongodb.parts import MongoParts
from jobqueue.store.mongodb.schema import after_cursor, encode_cursor, new_job_doc, task_from_doc
from jobqueue.store.records import NewCrawl, NewTask
from jobqueue.store.transitions import CANCEL, Given, Transition
from jobqueue.webhooks.outbox import Outbox
from jobqueue.webhooks.spec import WebhookSpec

if TYPE_CHECKING:
    from jobqueue.webhooks.delivery import Delivery

RECENT_CRAWLS = 3600.0  # crawl.finished is relayed for crawls finished within this many seconds
_ACTIVE = {"$in": ["queued", "running"]}


class MongoCrawlOps(MongoParts):
    """The crawl operations of MongoStore."""

    clock: Callable[[], float]
    outbox: Outbox | None = None

    if TYPE_CHECKING:  # provided by MongoStore
        async def _bump(self, deltas: dict[str, int]) -> None: ...
        async def _transit(self, move: Transition, task_id: str, given: Given) -> dict[str, Any] | None: ...
        async def _insert(self, deliveries: list[Delivery]) -> int: ...

    async def _crawl(self, doc: dict[str, Any], counted: bool = True) -> Crawl:
        counts: dict[str, int] = {}
        if counted:
            numbers = await asyncio.gather(*(self._call(self.db.jobs.count_documents(
                {"crawl_id": doc["_id"], "status": s})) for s in STATUSES))
            counts = dict(zip(STATUSES, (int(n) for n in numbers), strict=True))
        return Crawl(id=doc["_id"], created_at=doc["created_at"], status=doc["status"], seeds=list(doc["seeds"]),
                     options=dict(doc["options"]), counts=counts,
                     discovered=int(doc.get("discovered", 0)),
                     skipped={k: int(doc.get("skipped", {}).get(k, 0)) for k in CRAWL_SKIPS},
                     finished_at=doc.get("finished_at"), tags=tuple(doc.get("tags") or ()),
                     seeding=doc.get("seeding_until") is not None)

    async def _insert_pages(self, crawl_id: str, links: CrawlLinks, now: float) -> list[Task]:
        """Admit and insert the pages the crawl lacks while it has room (module doc); count the rest."""
        skipped = {k: links.skipped.get(k, 0) for k in CRAWL_SKIPS}
        pending: list[NewTask] = list(links.pages)
        added: list[Task] = []
        while pending:
            crawl = await self._call(self.db.crawls.find_one({"_id": crawl_id}))
            if crawl is None or crawl["status"] != "running":
                return added
            present = {d["crawl_key"] for d in await self._call(self.db.jobs.find(
                {"crawl_id": crawl_id, "crawl_key": {"$in": [p.crawl_key for p in pending]}},
                {"crawl_key": 1}).to_list(None))}
            fresh = [p for p in pending if p.crawl_key not in present]
            skipped["duplicate"] += len(pending) - len(fresh)
            room = max(0, int(crawl["max_pages"]) - int(crawl.get("discovered", 0)))
            take, pending = fresh[:room], []
            skipped["limit"] += len(fresh) - len(take)
            if not take:
                break
            held = await self._call(self.db.crawls.find_one_and_update(
                {"_id": crawl_id, "status": "running", "discovered": crawl.get("discovered", 0)},
                {"$inc": {"discovered": len(take)}}))
            if held is None:  # another process admitted pages in between: count again
                pending = take + fresh[len(take):]
                skipped["limit"] -= len(fresh) - len(take)
                continue
            docs = [new_job_doc(p, now) for p in take]
            refused: set[int] = set()
            try:
                await self._call(self.db.jobs.insert_many(docs, ordered=False), allow=(BulkWriteError,))
            except BulkWriteError as exc:
                refused = {e["index"] for e in exc.details.get("writeErrors", []) if e.get("code") == 11000}
                if len(refused) != len(exc.details.get("writeErrors", [])):
                    raise
            if refused:
                skipped["duplicate"] += len(refused)
                await self._call(self.db.crawls.update_one({"_id": crawl_id}, {"$inc": {"discovered": -len(refused)}}))
            added += [task_from_doc(d) for i, d in enumerate(docs) if i not in refused]
        if added:
            await self._bump({"queued": len(added)})
        if any(skipped.values()):
            await self._call(self.db.crawls.update_one(
                {"_id": crawl_id}, {"$inc": {f"skipped.{k}": n for k, n in skipped.items() if n}}))
        return added

    async def _finish_crawl(self, crawl_id: str, now: float) -> None:
        """Mark a running crawl finished when none of its pages is queued or running and no sitemap is read."""
        if await self._call(self.db.jobs.find_one({"crawl_id": crawl_id, "status": _ACTIVE}, {"_id": 1})):
            return
        await self._call(self.db.crawls.update_one(
            {"_id": crawl_id, "status": "running", "seeding_until": None},
            {"$set": {"status": "finished", "finished_at": now}}))

    async def create_crawl(self, crawl: NewCrawl, seeds: list[NewTask]) -> tuple[Crawl, list[Task]]:
        """Store a crawl, then queue its seeds (each once, up to max_pages)."""
        now = self.clock()
        doc = {"_id": crawl.id, "created_at": now, "status": "running", "seeds": crawl.seeds,
               "options": crawl.options, "max_pages": crawl.max_pages, "tags": list(crawl.tags),
               "webhook": crawl.webhook.to_json() if crawl.webhook is not None else None, "discovered": 0,
               "skipped": dict.fromkeys(CRAWL_SKIPS, 0), "finished_at": None, "hooked_at": None,
               "seeding_until": now + crawl.seeding_seconds if crawl.seeding_seconds else None}
        await self._call(self.db.crawls.insert_one(doc))
        added = await self._insert_pages(crawl.id, CrawlLinks(seeds, crawl.skipped), now)
        await self._finish_crawl(crawl.id, now)
        found = await self.get_crawl(crawl.id)
        assert found is not None
        return found, added

    async def add_crawl_pages(self, crawl_id: str, links: CrawlLinks, seeded: bool = False) -> list[Task]:
        """Queue pages found outside a completion (a sitemap's); `seeded` ends the crawl's sitemap reading."""
        now = self.clock()
        added = await self._insert_pages(crawl_id, links, now)
        if seeded:
            await self._call(self.db.crawls.update_one({"_id": crawl_id}, {"$set": {"seeding_until": None}}))
            await self._finish_crawl(crawl_id, now)
        return added

    async def get_crawl(self, crawl_id: str, counted: bool = True) -> Crawl | None:
        """A crawl with its pages counted by status (unless not `counted`: counts empty), or None."""
        doc = await self._call(self.db.crawls.find_one({"_id": crawl_id}))
        return None if doc is None else await self._crawl(doc, counted)

    async def list_crawls(self, limit: int, cursor: str | None) -> Page:
        """Newest crawls first, `limit` a page."""
        found = self.db.crawls.find(after_cursor("created_at", cursor)).sort([("created_at", -1), ("_id", -1)])
        docs = await self._call(found.limit(limit + 1).to_list(limit + 1))
        items = [await self._crawl(d) for d in docs[:limit]]
        last = docs[limit - 1] if len(docs) > limit else None
        return Page(items, encode_cursor(last["created_at"], last["_id"]) if last is not None else None)

    async def cancel_crawl(self, crawl_id: str, limit: int) -> tuple[Crawl, list[Task]]:
        """Stop a crawl from growing, then cancel up to `limit` of its unfinished pages (call again until none is
        returned); finished pages stay."""
        now = self.clock()
        doc = await self._call(self.db.crawls.find_one_and_update(
            {"_id": crawl_id}, [{"$set": {"status": {"$cond": [{"$eq": ["$status", "running"]}, "cancelled",
                                                              "$status"]}, "seeding_until": None}}],
            return_document=ReturnDocument.AFTER))
        if doc is None:
            raise NotFound(crawl_id, "crawl")
        ids = [d["_id"] for d in await self._call(self.db.jobs.find(
            {"crawl_id": crawl_id, "status": _ACTIVE}, {"_id": 1}).limit(limit).to_list(limit))]
        cancelled = []
        for task_id in ids:
            moved = await self._transit(CANCEL, task_id, Given(now))
            if moved is not None:
                cancelled.append(task_from_doc(moved))
        if not await self._call(self.db.jobs.find_one({"crawl_id": crawl_id, "status": _ACTIVE}, {"_id": 1})):
            await self._call(self.db.crawls.update_one({"_id": crawl_id, "finished_at": None},
                                                       {"$set": {"finished_at": now}}))
        found = await self.get_crawl(crawl_id)
        assert found is not None
        return found, cancelled

    async def take_stalled_seeding(self, seconds: float, limit: int) -> list[Crawl]:
        """Running crawls whose sitemap reading stopped before it ended (its time ran out), each now held by the
        caller for `seconds` (a conditional update: one process takes each)."""
        now = self.clock()
        taken = []
        for _ in range(limit):
            doc = await self._call(self.db.crawls.find_one_and_update(
                {"status": "running", "seeding_until": {"$ne": None, "$lt": now}},
                {"$set": {"seeding_until": now + seconds}}, return_document=ReturnDocument.AFTER))
            if doc is None:
                break
            taken.append(await self._crawl(doc))
        return taken

    async def _relay_crawls(self) -> int:
        """crawl.finished deliveries of crawls finished recently (ids derived from the crawl and the time)."""
        if self.outbox is None:
            return 0
        created = 0
        recent = self.db.crawls.find({"finished_at": {"$gte": self.clock() - RECENT_CRAWLS},
                                      "$expr": {"$ne": ["$hooked_at", "$finished_at"]}})
        for doc in await self._call(recent.limit(200).to_list(200)):
            at = doc["finished_at"]
            crawl = await self._crawl(doc)
            deliveries = self.outbox.for_crawl(crawl, WebhookSpec.from_json(doc.get("webhook")), at)
            for index, delivery in enumerate(deliveries):
                delivery.id = f"msg_{crawl.id}_{round(at * 1000)}_{index}"
            created += await self._insert(deliveries)
            await self._call(self.db.crawls.update_one({"_id": crawl.id, "finished_at": at},
                                                       {"$set": {"hooked_at": at}}))
        return created
