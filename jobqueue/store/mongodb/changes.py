"""MongoDB's change log, for servers without change streams (a standalone server, or a mock).

On a replica set every process follows a change stream (mongodb_watch.py), which brings each change
in order; nothing here is written. Without one, each state change a store method makes is also
written to `job_changes` (the methods that return the jobs they changed are wrapped by
`logs_changes`), and `changes_after` reads that log. Each log write first reserves numbers from a
counter the server increments (`counters/job_changes_seq`), so the log is read by number, not by
anyone's clock: a follower reads on from the lowest number it has not had, returns what it finds
(any number of changes made at one instant page exactly), and remembers the numbers it returned past
a missing one. A number still missing after GAP_WAIT seconds (a write that failed or is that slow, a
writer that died between its reservation and its insert) is given up and the follower is told
(`lost`), as it is when pruning (the oldest run by number, horizon in `counters/job_changes_pruned`)
removed changes it had not read, or a writer could not log a change. The jobs a store method deletes
are logged the same way (status `deleted`), so every process's dashboards drop them. Where the
server has change streams but the stream failed for good, `changes_after` reads the jobs themselves
by time (a Window): each job's latest state, none lost, intermediate ones skipped, and no deletions
(a deleted job is simply not there to be read).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pymongo import ASCENDING, ReturnDocument
from pymongo.errors import PyMongoError

from jobqueue.models import Task, TaskError
from jobqueue.store.base import ChangePage, StoreError
from jobqueue.store.mongodb.schema import TASK_FIELDS, task_from_doc

log = logging.getLogger("jobqueue.store.mongodb.store")
OVERLAP = 2.0  # seconds a look through the jobs re-reads, for documents that became visible after later-stamped ones
GAP_WAIT = 10.0  # seconds a follower waits for a reserved log number before telling its clients it is lost
PRUNE_LIMIT = 5000
PRUNED = "job_changes_pruned"  # counters document: log numbers up to `upto` may be gone
NUMBERS = "job_changes_seq"  # counters document: `n`, the highest log number reserved
# the store methods that return the jobs they changed (stop_schedule: a pair whose second part is the jobs)
CHANGING = ("add", "claim", "release", "complete", "reschedule", "fail", "cancel", "retry", "cancel_many",
            "retry_many", "cancel_batch", "retry_batch", "stop_schedule", "_queue_next")
# the store methods that delete jobs, and where their answer holds the deleted ids
DELETING: dict[str, Callable[[Any], list[str]]] = {"delete_many": lambda ids: ids,
                                                    "purge_finished": lambda answer: answer[0]}
DELETED = "deleted"  # the status of a deletion's log document


@dataclass
class Window:
    """Where a follower of the log stands: the next look starts OVERLAP seconds before `since`, never before
    `start` (what was stamped before the follower started is not its own); `seen` holds what the overlap
    re-reads; `after` is where a look cut short by its limit goes on."""

    start: float
    since: float = 0.0
    seen: dict[Any, float] = field(default_factory=dict)
    after: tuple[float, Any] | None = None
    started: float = 0.0

    def __post_init__(self) -> None:
        self.since = max(self.since, self.start)

    @property
    def floor(self) -> float:
        """Where the next look starts."""
        return max(self.since - OVERLAP, self.start)


@dataclass
class LogPosition:
    """Where a follower of the numbered log stands: every number below `next` was returned or given up; `seen`
    holds the numbers from `next` on returned already (read past a missing one); `after` is where a look cut
    short by its limit goes on; `gap` is since when (the follower's clock) `next` has been missing, and the
    highest number reserved then: those still missing after GAP_WAIT are given up."""

    next: int
    seen: set[int] = field(default_factory=set)
    after: int | None = None
    reserved: int = 0
    gap: tuple[float, int] | None = None

    def returned(self, numbers: list[int]) -> None:
        """Record numbers returned, and move past those that now follow on."""
        self.seen.update(numbers)
        while self.next in self.seen:
            self.seen.discard(self.next)
            self.next += 1

    def skip_to(self, number: int) -> None:
        """Give up every number below `number`."""
        if number > self.next:
            self.next = number
            self.seen = {n for n in self.seen if n >= number}
            self.returned([])

    def settle(self, now: float) -> bool:
        """At the end of a complete look: whether numbers missing for GAP_WAIT were given up."""
        highest = max(self.reserved, max(self.seen, default=0))
        lost = False
        if self.gap is not None and self.next <= self.gap[1] and now - self.gap[0] >= GAP_WAIT:
            self.skip_to(self.gap[1] + 1)
            lost = True
        if self.next > highest:
            self.gap = None
        elif self.gap is None or self.next > self.gap[1]:
            self.gap = (now, highest)
        return lost


def change_doc(task: Task, now: float) -> dict[str, Any]:
    """The log document of one state change: the state's own fields (the rest is read from the job)."""
    error = {"code": task.error.code, "message": task.error.message} if task.error is not None else None
    return {"ts": now, "task_id": task.id, "status": task.status, "attempts": task.attempts, "at": task.updated_at,
            "started_at": task.started_at, "finished_at": task.finished_at, "http_status": task.http_status,
            "error": error}


def task_as_logged(job: dict[str, Any], change: dict[str, Any]) -> Task:
    """The job as the logged change left it."""
    task = task_from_doc(job)
    at = change["at"]
    error = change.get("error")
    return dataclasses.replace(
        task, status=change["status"], attempts=change["attempts"], updated_at=at, started_at=change["started_at"],
        finished_at=change["finished_at"], http_status=change["http_status"], lease_token=None,
        error=TaskError(error["code"], error["message"]) if error else None,
        attempt_log=tuple(entry for entry in task.attempt_log if entry.get("at", at) <= at))


def deletion_doc(task_id: str, now: float) -> dict[str, Any]:
    """The log document of a deleted job."""
    return {"ts": now, "task_id": task_id, "status": DELETED}


def _changed_jobs(out: Any) -> list[Task]:
    if isinstance(out, Task):
        return [out]
    if isinstance(out, list | tuple):
        return [task for part in out for task in _changed_jobs(part)]
    return []


def logs_changes(cls: type) -> type:
    """Wrap the CHANGING and DELETING methods of a store class so that, where the log is kept (decided at `open`),
    the states they return, and the jobs they deleted, are written to it. A failure to write is logged, not raised:
    the change itself is made."""
    for name in CHANGING:
        method = getattr(cls, name, None)
        if method is not None:
            setattr(cls, name, _logged(method))
    for name, deleted in DELETING.items():
        method = getattr(cls, name, None)
        if method is not None:
            setattr(cls, name, _logged_deletions(method, deleted))
    opened = cls.open  # type: ignore[attr-defined]

    @functools.wraps(opened)
    async def open_and_decide(self: Any) -> None:
        await opened(self)
        await self._decide_logging()

    cls.open = open_and_decide  # type: ignore[attr-defined]
    return cls


def _logged(method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(method)
    async def logged(self: Any, *args: Any, **kwargs: Any) -> Any:
        out = await method(self, *args, **kwargs)
        if self.log_changes:
            await self._log_states(_changed_jobs(out))
        return out

    return logged


def _logged_deletions(method: Callable[..., Awaitable[Any]],
                      deleted: Callable[[Any], list[str]]) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(method)
    async def logged(self: Any, *args: Any, **kwargs: Any) -> Any:
        out = await method(self, *args, **kwargs)
        if self.log_changes:
            await self._log_deletions(deleted(out))
        return out

    return logged


class MongoChangeOps:
    """The change log's reads and writes over MongoStore's database handle."""

    clock: Callable[[], float]
    log_changes: bool = False  # set at open: whether this server lacks change streams
    _unlogged = False  # a change could not even be numbered: followers are told at the next reservation

    if TYPE_CHECKING:
        @property
        def where(self) -> str: ...  # MongoStore's: the server, for messages

    @property
    def db(self) -> Any: ...  # provided by MongoStore

    async def _call(self, operation: Any, allow: tuple[type[Exception], ...] = ()) -> Any: ...  # MongoStore's

    async def _decide_logging(self) -> None:
        """Keep the log only where no change stream can bring the changes: a replica set or mongos has them."""
        try:
            hello = await self.db.command("hello")
        except (PyMongoError, NotImplementedError):  # a mock, or a server too old for `hello`
            hello = {}
        self.log_changes = "setName" not in hello and hello.get("msg") != "isdbgrid"

    async def _log_states(self, tasks: list[Task]) -> None:
        now = self.clock()
        await self._log([change_doc(t, now) for t in tasks], "job state change(s) are stored")

    async def _log_deletions(self, task_ids: list[str]) -> None:
        now = self.clock()
        await self._log([deletion_doc(i, now) for i in task_ids], "job(s) are deleted")

    async def _log(self, docs: list[dict[str, Any]], what: str) -> None:
        """Number the documents from the server's counter and insert them. A failure is logged, not raised (the
        change itself is made), and followers are told they lost changes: by the pruning horizon, at once, or at
        this store's next reservation when even the counter failed; else by the missing numbers, after GAP_WAIT."""
        if not docs:
            return
        reserved = 0
        try:
            counter = await self._call(self.db.counters.find_one_and_update(
                {"_id": NUMBERS}, {"$inc": {"n": len(docs)}}, upsert=True, return_document=ReturnDocument.AFTER))
            if counter is None:  # an upsert returning the document after it always has one
                raise StoreError(f"MongoDB at {self.where} did not return the change log's counter")
            reserved = int(counter["n"])
            if self._unlogged:  # a change before these went unnumbered: whoever has not read past here missed it
                await self._mark_lost(reserved - len(docs))
                self._unlogged = False
            for number, doc in enumerate(docs, start=reserved - len(docs) + 1):
                doc["seq"] = number
            await self._call(self.db.job_changes.insert_many(docs, ordered=False))
        except StoreError as exc:
            log.warning("%d %s but could not be logged for other processes' live updates (their clients are told "
                        "to reload): %s", len(docs), what, exc)
            if not reserved:
                self._unlogged = True
                return
            try:
                await self._mark_lost(reserved)
            except StoreError:
                pass  # followers give the missing numbers up after GAP_WAIT

    async def _mark_lost(self, upto: int) -> None:
        await self._call(self.db.counters.update_one({"_id": PRUNED}, {"$max": {"upto": upto}}, upsert=True))

    async def changes_after(self, position: Any, limit: int) -> ChangePage:
        """The changes after `position` (changed in place; None: from now on), oldest first: from the log where it
        is kept (a LogPosition), else each changed job's latest state (a Window)."""
        db = self.db  # a closed store refuses, as every operation does
        if self.log_changes:
            return await self._read_log(position, limit)
        if position is None or limit <= 0:
            return ChangePage([], position if position is not None else Window(self.clock()))
        docs, more = await self._look(position, db.jobs, "updated_at", lambda d: (d["_id"], d["updated_at"]), limit,
                                      TASK_FIELDS)
        return ChangePage([task_from_doc(d) for d in docs], position, more=more)

    async def _read_log(self, position: LogPosition | None, limit: int) -> ChangePage:
        """One page of the numbered log after `position`; at the start of a look, whether numbers it had not read
        were pruned or given up by their writer."""
        db = self.db
        if position is None:
            counter = await self._call(db.counters.find_one({"_id": NUMBERS}))
            return ChangePage([], LogPosition(int(counter["n"]) + 1 if counter else 1))
        if limit <= 0:
            return ChangePage([], position)
        lost = False
        if position.after is None:
            counters = {d["_id"]: d for d in await self._call(
                db.counters.find({"_id": {"$in": [PRUNED, NUMBERS]}}).to_list(2))}
            position.reserved = int(counters.get(NUMBERS, {}).get("n", 0))
            upto = int(counters.get(PRUNED, {}).get("upto", 0))
            if upto >= position.next:
                position.skip_to(upto + 1)
                lost = True
        after = position.next - 1 if position.after is None else position.after
        docs = await self._call(db.job_changes.find({"seq": {"$gt": after}}).sort("seq", ASCENDING).limit(limit)
                                .to_list(limit))
        fresh = [d for d in docs if d["seq"] not in position.seen and d["seq"] >= position.next]
        position.returned([d["seq"] for d in fresh])
        more = len(docs) == limit
        if more:
            position.after = docs[-1]["seq"]
        else:
            position.after = None
            lost = position.settle(self.clock()) or lost
        deleted = [d["task_id"] for d in fresh if d["status"] == DELETED]
        tasks = await self._as_logged([d for d in fresh if d["status"] != DELETED])
        return ChangePage(tasks, position, more=more, lost=lost, deleted=deleted)

    async def _look(self, window: Window, collection: Any, stamp: str, key: Callable[[dict[str, Any]], Any],
                    limit: int, projection: dict[str, Any] | None = None) -> tuple[list[dict[str, Any]], bool]:
        """One page of a look through `collection` by (stamp, _id): the documents not returned before."""
        if window.after is None:
            window.started = self.clock()
        query: dict[str, Any] = {stamp: {"$gte": window.floor}}
        if window.after is not None:
            at, last = window.after
            query = {"$and": [query, {"$or": [{stamp: {"$gt": at}}, {stamp: at, "_id": {"$gt": last}}]}]}
        found = collection.find(query, projection).sort([(stamp, ASCENDING), ("_id", ASCENDING)]).limit(limit)
        docs = await self._call(found.to_list(limit))
        fresh = [d for d in docs if key(d) not in window.seen]
        window.seen.update((key(d), d[stamp]) for d in docs)
        if len(docs) == limit:
            window.after = (docs[-1][stamp], docs[-1]["_id"])
            return fresh, True
        window.after = None
        window.since = window.started
        floor = window.floor
        window.seen = {k: at for k, at in window.seen.items() if at >= floor}
        return fresh, False

    async def _as_logged(self, changes: list[dict[str, Any]]) -> list[Task]:
        """The logged changes as tasks, skipping jobs deleted since."""
        ids = list({c["task_id"] for c in changes})
        if not ids:
            return []
        jobs = {d["_id"]: d for d in await self._call(self.db.jobs.find({"_id": {"$in": ids}}, TASK_FIELDS)
                                                      .to_list(None))}
        return [task_as_logged(jobs[c["task_id"]], c) for c in changes if c["task_id"] in jobs]

    async def changed_from(self, since: float, page: int = 1000) -> AsyncIterator[Task]:
        """Every job changed at or after `since`, each once, paged by (updated_at, _id) (a change stream's
        catch-up after a gap)."""
        window = Window(since)
        while True:
            docs, more = await self._look(window, self.db.jobs, "updated_at", lambda d: d["_id"], page, TASK_FIELDS)
            for doc in docs:
                yield task_from_doc(doc)
            if not more:
                return

    async def prune_changes(self, before: float) -> int:
        """Forget the oldest run (by number) of changes logged before `before`, at most PRUNE_LIMIT per call;
        followers that had not read them yet learn it from the recorded horizon."""
        head = self.db.job_changes.find({"seq": {"$gt": 0}}, {"_id": 0, "seq": 1, "ts": 1})
        docs = await self._call(head.sort("seq", ASCENDING).limit(PRUNE_LIMIT).to_list(PRUNE_LIMIT))
        old = 0
        while old < len(docs) and docs[old]["ts"] < before:
            old += 1
        if not old:
            return 0
        upto = docs[old - 1]["seq"]
        await self._mark_lost(upto)
        deleted = await self._call(self.db.job_changes.delete_many({"seq": {"$lte": upto}}))
        return int(deleted.deleted_count)
