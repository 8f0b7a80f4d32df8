"""The event hub: every task state change is recorded once and read by every subscriber.

The hub keeps one log of entries in two bounded views (jobqueue/event_log.py), and each subscriber only
remembers how far it has read (jobqueue/event_reads.py), so publishing costs the same with one client
or a thousand, never waits for any of them, and a client that stops reading costs no memory per
message. A client that keeps up reads every state of every job, in the order they were recorded; one
that fell behind gets each task's newest state; one that fell further behind is told to resync.

This module decides what is recorded. A task's state is recorded once: a state stamped no later than
the task's last one is a repeat or a late arrival, and is ignored, except that states the store's
feed brings in its commit order (SQLite's change log) are recorded in that order, since it is the
truth where the stamps are not (a cancel stamped before a claim that committed first is the job's
latest state). A deletion is recorded once, and nothing of the task after it.

With a change feed attached (jobqueue/peer_sync.py), this process's own states wait for the feed,
which records every process's states in the order the store made them: so a job run by another
process cannot show `running` before the `queued` this process recorded, or the other way round.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterable
from typing import Any

from jobqueue.event_log import COUNTS_KEY, DELETED, STATS_KEY, EventLog
from jobqueue.event_reads import RESYNC, HubClosed, LogReader, Subscription, View
from jobqueue.models import FINISHED, STATUSES, Batch, Crawl, Task
from jobqueue.store.base import Store, StoreError

__all__ = ["RESYNC", "EventHub", "HubClosed", "Subscription", "View", "counts_loop", "stats_loop"]

log = logging.getLogger("jobqueue.events")

_RANK = {status: i for i, status in enumerate(STATUSES)}


class EventHub:
    """Records task states, deletions, batch, counts and stats messages in a bounded log, read by any number of
    subscribers."""

    def __init__(self, max_pending: int = 20000, max_recent: int | None = None) -> None:
        self.max_pending = max_pending
        self.max_recent = max_recent if max_recent is not None else max_pending
        # set by a change feed: takes this process's own states while anyone listens (see the module's doc)
        self.hold: Callable[[Task], None] | None = None
        self.log = EventLog(max_pending, self.max_recent)
        self._reader = LogReader(self.log)
        self._subscribers: set[Subscription] = set()
        self._streams: set[Subscription] = set()  # the subscribers that are websocket streams
        self._sleepers: list[asyncio.Future[None]] = []  # readers waiting for the next change
        self._touched: set[str] = set()  # batches whose jobs changed since the last look
        self._touched_crawls: set[str] = set()  # crawls whose pages changed since the last look
        self._finish_watchers: dict[str, list[asyncio.Future[Task]]] = {}  # see watch_finish
        self.published = 0
        self.closed = False

    @property
    def subscribers(self) -> int:
        """How many listen: websocket streams and requests waiting for a job (while any does, changes are read)."""
        return len(self._subscribers)

    @property
    def streams(self) -> int:
        """How many websocket streams listen (for /metrics and the --max-websockets cap, which a synchronous
        request waiting for its job does not count against)."""
        return len(self._streams)

    def subscribe(self, task_ids: Iterable[str] | None = None, *, stream: bool = False) -> Subscription:
        """Start receiving changes made from now on (all tasks, or only `task_ids`); `stream`: for a websocket."""
        subscription = Subscription(self, task_ids, self.log.seq)
        self._subscribers.add(subscription)
        if stream:
            self._streams.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        """Stop sending to a subscription."""
        self._subscribers.discard(subscription)
        self._streams.discard(subscription)

    def watch_finish(self, task_id: str) -> asyncio.Future[Task]:
        """A future set to the job once this process gives it or hears of a finished state: a request waiting
        for its job needs that state, not its place among other jobs' states, so this process's own finish
        is told at once, without waiting for the change feed that orders states (call unwatch_finish after)."""
        watcher: asyncio.Future[Task] = asyncio.get_running_loop().create_future()
        self._finish_watchers.setdefault(task_id, []).append(watcher)
        return watcher

    def unwatch_finish(self, task_id: str, watcher: asyncio.Future[Task]) -> None:
        """Stop watching a job's finish."""
        watchers = self._finish_watchers.get(task_id)
        if watchers is not None and watcher in watchers:
            watchers.remove(watcher)
            if not watchers:
                del self._finish_watchers[task_id]

    def _tell_finish(self, task: Task) -> None:
        for watcher in self._finish_watchers.pop(task.id, ()):
            if not watcher.done():
                watcher.set_result(task)

    def publish(self, task: Task) -> None:
        """Record a state this process gave a task; while a change feed is attached and anyone listens, the feed
        records it instead, in the store's order among every process's states (within milliseconds)."""
        if task.status in FINISHED and task.id in self._finish_watchers:
            self._tell_finish(task)
        if self.hold is not None and self._subscribers:
            self.hold(task)
            return
        self.accept(task)

    def accept(self, task: Task, in_commit_order: bool = False) -> None:
        """Record a task's state; one stamped no later than the last recorded (a repeat, or a late arrival) is
        ignored, unless both came from the store's feed in the order it committed them: then that order is the
        truth. Nothing of a deleted task is recorded."""
        if task.status in FINISHED and task.id in self._finish_watchers:
            self._tell_finish(task)
        key = (task.updated_at, _RANK.get(task.status, 0))
        last = self.log.latest.get(task.id)
        if last is not None:
            if last.status == DELETED:
                return
            if key <= last.order:
                if not in_commit_order:
                    return
                if key == last.order:  # a state recorded directly, now seen in its place in the store's order
                    last.in_commit_order = True
                    return
                if not last.in_commit_order:  # where the store put the last one is unknown: trust the stamps
                    return
            elif not in_commit_order and last.in_commit_order and last.had_state(key):
                return  # the feed brought it already, and a state committed after it, stamped earlier
        else:
            self.log.created.append(task.id)
        self._append(task.id, task if self._subscribers else None, key, task.status, in_commit_order)
        self.published += 1
        if task.batch_id is not None and self._subscribers:
            self._touched.add(task.batch_id)
        if task.crawl_id is not None and self._subscribers:
            self._touched_crawls.add(task.crawl_id)

    def publish_deleted(self, task_id: str) -> None:
        """Record that a job was deleted (once: the process that deleted it records it, then its change feed
        brings it); no later state of it is recorded."""
        last = self.log.latest.get(task_id)
        if last is not None and last.status == DELETED:
            return
        message = json.dumps({"type": "task.deleted", "task_id": task_id}, separators=(",", ":"))
        self._append(task_id, message, (float("inf"), len(_RANK)), DELETED)
        self.published += 1

    def lost_changes(self) -> None:
        """Some changes will never be recorded (the change feed lost them): every current reader must resync."""
        self.log.forget_recent()
        self._reader.forget_shared()
        self._wake_readers()

    def touch_batch(self, batch_id: str) -> None:
        """Have a batch's counts (and finish) looked at again, e.g. once it is sealed."""
        if self._subscribers:
            self._touched.add(batch_id)

    def take_touched_batches(self) -> set[str]:
        """The batches whose jobs changed since the last call (for coalesced batch.progress messages)."""
        touched, self._touched = self._touched, set()
        return touched

    def take_touched_crawls(self) -> set[str]:
        """The crawls whose pages changed since the last call (for coalesced crawl.progress messages)."""
        touched, self._touched_crawls = self._touched_crawls, set()
        return touched

    def publish_crawl(self, crawl: Crawl, finished: bool = False) -> None:
        """Record a crawl's latest counts (one entry per crawl), or that it finished or was cancelled and has no
        page left; delivered like batch messages."""
        kind = "crawl.finished" if finished else "crawl.progress"
        self.log.append_batch_message(f"{kind}:{crawl.id}", json.dumps({"type": kind, "crawl": crawl.to_json()},
                                                                      separators=(",", ":")))
        self._wake_readers()

    def publish_batch(self, batch: Batch, finished: bool = False) -> None:
        """Record a batch's latest counts (one entry per batch, so a burst of changes is one message), or that
        it finished; clients that follow every task, and dashboards, receive them."""
        kind = "batch.finished" if finished else "batch.progress"
        key = f"{kind}:{batch.id}"  # never a task id: those have no '.' or ':'
        self.log.append_batch_message(key, json.dumps({"type": kind, "batch": batch.to_json()}, separators=(",", ":")))
        self._wake_readers()

    def publish_url_changed(self, task: Task, previous_id: str) -> None:
        """Record that a recurring run's page differs from the previous run's; delivered like batch messages."""
        message = {"type": "url.changed", "task": task.to_json(), "previous_id": previous_id}
        self.log.append_batch_message(f"url.changed:{task.id}", json.dumps(message, separators=(",", ":")))
        self._wake_readers()

    def publish_counts(self, counts: dict[str, int]) -> None:
        """Record the current counts by status, for clients that follow every task."""
        self._append(COUNTS_KEY, json.dumps({"type": "counts", "counts": counts}, separators=(",", ":")), (0.0, 0), "")

    def publish_stats(self, stats: dict[str, Any]) -> None:
        """Record the latest live statistics (one entry, replaced each time) for dashboards."""
        self._append(STATS_KEY, json.dumps(stats, separators=(",", ":")), (0.0, 0), "")

    def close_streams(self) -> None:
        """End every event stream (the server is stopping): waiting readers raise HubClosed."""
        self.closed = True
        sleepers, self._sleepers = self._sleepers, []
        for sleeper in sleepers:
            if not sleeper.done():
                sleeper.set_result(None)

    def _append(self, key: str, message: str | Task | None, order: tuple[float, int], status: str,
                in_commit_order: bool = False) -> None:
        self.log.append(key, message, order, status, in_commit_order)
        self._wake_readers()

    def _wake_readers(self) -> None:
        if self._sleepers:
            sleepers, self._sleepers = self._sleepers, []
            for sleeper in sleepers:
                if not sleeper.done():  # a reader cancelled meanwhile (its client left)
                    sleeper.set_result(None)

    @property
    def last_seq(self) -> int:
        """The sequence number of the newest log entry."""
        return self.log.seq

    def wake_at_next_change(self, sleeper: asyncio.Future[None]) -> None:
        """Resolve `sleeper` when the next change is recorded (one plain future per waiting reader)."""
        self._sleepers.append(sleeper)

    def count_after(self, cursor: int) -> int:
        """How many keys of the latest log changed after `cursor`."""
        return self.log.count_after(cursor)

    def read_after(self, subscription: Subscription, limit: int) -> list[str]:
        """The messages a subscription has not read yet (up to `limit`), advancing its position (event_reads)."""
        return self._reader.read_after(subscription, limit)

    def frame_after(self, subscription: Subscription, limit: int) -> str | None:
        """Like read_after, joined into one batch frame; clients reading together share the string."""
        return self._reader.frame_after(subscription, limit)


async def counts_loop(hub: EventHub, store: Store, interval: float = 0.5) -> None:
    """Push counts by status to dashboards twice a second while anything changes.

    Changes are marked seen only once counts read after them were published, so a failed read is
    retried at the next tick; an unexpected error ends the loop for its supervisor to log and restart.
    """
    seen = -1
    while True:
        await asyncio.sleep(interval)
        published = hub.published
        if hub.subscribers == 0 or published == seen:
            continue
        try:
            counts = await store.counts()
        except StoreError as exc:
            log.warning("reading counts for dashboards failed: %s", exc)
            continue
        hub.publish_counts(counts)
        seen = published


async def stats_loop(hub: EventHub, stats: Any, interval: float = 5.0) -> None:
    """Send the service's live statistics (jobqueue/shared_stats.py: read from the store, so every process sends
    the same) to dashboards every few seconds while any is connected; a failed read sends nothing that turn."""
    while True:
        await asyncio.sleep(interval)
        if hub.subscribers:
            snapshot = await stats.snapshot()
            if snapshot is not None:
                hub.publish_stats(snapshot)
