"""The event hub: every task state change is recorded once and read by every subscriber.

The hub keeps two bounded views of one sequence of entries, and each subscriber only remembers how
far it has read, so publishing costs the same with one client or a thousand, never waits for any of
them, and a client that stops reading costs no memory per message:

- the recent log holds every entry, the last `max_recent` of them: a client that keeps up (its
  position is still in it) reads every state of every job, in the order they were recorded;
- the latest log holds the newest entry of each task (and of each batch, and the counts), in the
  order of their last change, at most `max_pending` of them: a client that fell behind the recent log
  skips intermediate states but gets each task's newest one, in lifecycle order; one that fell
  further behind than this log reaches is told to resync (re-read the list over REST).

Dashboards that send a view, and `?task_id=` streams, read by task in the latest log (a `?task_id=`
stream also walks back through the task's states still in the recent log).

With a change feed attached (jobqueue/peer_sync.py), this process's own states wait for the feed,
which records every process's states in the order the store made them: so a job run by another
process cannot show `running` before the `queued` this process recorded, or the other way round.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from jobqueue.models import STATUSES, Batch, Task
from jobqueue.store.base import Store, StoreError

log = logging.getLogger("jobqueue.events")

_RANK = {status: i for i, status in enumerate(STATUSES)}
RESYNC = json.dumps({"type": "resync", "reason": "this client fell too far behind; reload the task list"})
_COUNTS_KEY = ""  # no task has an empty id
_STATS_KEY = "stats"  # task ids are 26 characters
DELETED = "deleted"  # the status of a deletion's entry
MAX_BATCH_KEYS = 64  # batch messages a dashboard's view looks through


@dataclass(frozen=True)
class View:
    """What a dashboard shows, so it is sent only that: the tasks on its page, and, on the first
    page, the `newest` tasks created after `after_id` (of one status when `status` is set)."""

    task_ids: frozenset[str]
    newest: int = 0
    after_id: str = ""
    status: str | None = None


class HubClosed(Exception):
    """The server is stopping: event streams end (clients reconnect to the next process)."""


class _Entry:
    """One recorded message: a task's state (`status` set, `prev` its previous state), or the newest batch,
    counts or stats message of its key (`status` empty). `message` is a Task until first read, then its JSON;
    None when nobody listened."""

    __slots__ = ("in_commit_order", "key", "message", "order", "prev", "seq", "status")

    def __init__(self, seq: int, key: str, message: str | Task | None, order: tuple[float, int], status: str,
                 prev: _Entry | None, in_commit_order: bool = False) -> None:
        self.seq = seq
        self.key = key
        self.message = message
        self.order = order
        self.status = status
        self.prev = prev
        self.in_commit_order = in_commit_order  # recorded from the store's feed, in its commit order


class Subscription:
    """One client's position in the hub's log, and what it follows: all tasks, some ids, or a view."""

    def __init__(self, hub: EventHub, task_ids: Iterable[str] | None, cursor: int) -> None:
        self.hub = hub
        self.task_ids = frozenset(task_ids) if task_ids else None
        self.view: View | None = None
        self.cursor = cursor
        self.replay: set[str] = set()  # rows new to the view whose latest state is still to be sent
        self._nudge: asyncio.Future[None] | None = None

    def show(self, view: View) -> None:
        """Follow a dashboard's new view; rows new to it get their latest recorded state at the next read,
        since they may have changed after the page read them and before the view arrived."""
        before = self.view.task_ids if self.view is not None else frozenset()
        self.view = view
        self.replay = (self.replay | (view.task_ids - before)) & view.task_ids
        if self.replay and self._nudge is not None and not self._nudge.done():
            self._nudge.set_result(None)

    async def wait(self) -> None:
        """Return once there is something to read: a change after this position, or rows to replay."""
        hub = self.hub
        try:
            while not self.replay and hub.last_seq <= self.cursor:
                if hub.closed:
                    raise HubClosed()
                self._nudge = asyncio.get_running_loop().create_future()
                hub.wake_at_next_change(self._nudge)
                await self._nudge
        finally:
            self._nudge = None

    async def next_frame(self, interval: float, limit: int = 500) -> str:
        """Take what is new as one {"type": "batch", "messages": [...]} frame, looking at most once per
        `interval` on a grid shared by every client (so they read together and share the work)."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(interval - loop.time() % interval)
            await self.wait()
            frame = self.hub.frame_after(self, limit)
            if frame is not None:
                return frame

    async def next_batch(self, limit: int = 500) -> list[str]:
        """Wait for messages after this subscription's position and take up to `limit`, oldest first."""
        while True:
            await self.wait()
            batch = self.hub.read_after(self, limit)
            if batch:
                return batch

    @property
    def pending(self) -> int:
        """How many tasks (and other keys) changed after this position (at most the latest log's size)."""
        return self.hub.count_after(self.cursor)

    def close(self) -> None:
        """Stop receiving events."""
        self.hub.unsubscribe(self)


class EventHub:
    """Bounded logs of recent states and of the latest state per task, read by any number of subscribers."""

    def __init__(self, max_pending: int = 20000, max_recent: int | None = None) -> None:
        self.max_pending = max_pending
        self.max_recent = max_recent if max_recent is not None else max_pending
        # set by a change feed: takes this process's own states while anyone listens (see the module's doc)
        self.hold: Callable[[Task], None] | None = None
        self._subscribers: set[Subscription] = set()
        self._log: OrderedDict[str, _Entry] = OrderedDict()  # the latest entry per key, oldest change first
        self._recent: list[_Entry] = []  # every entry from sequence number _recent_base on
        self._recent_base = 1
        self._created: deque[str] = deque(maxlen=max_pending)  # ids in the order the hub first saw them
        self._seq = 0
        self._forgotten = 0  # highest sequence number pushed out of the latest log
        self._sleepers: list[asyncio.Future[None]] = []  # readers waiting for the next change
        self._memo: dict[tuple[int, int], tuple[list[str], int]] = {}
        self._frames: dict[int, tuple[list[str], str]] = {}
        self._batch_keys: OrderedDict[str, None] = OrderedDict()  # log keys of recent batch messages
        self._touched: set[str] = set()  # batches whose jobs changed since the last look
        self.published = 0
        self.closed = False

    @property
    def subscribers(self) -> int:
        """How many clients listen (for /metrics and the websocket cap)."""
        return len(self._subscribers)

    def subscribe(self, task_ids: Iterable[str] | None = None) -> Subscription:
        """Start receiving changes made from now on (all tasks, or only `task_ids`)."""
        subscription = Subscription(self, task_ids, self._seq)
        self._subscribers.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        """Stop sending to a subscription."""
        self._subscribers.discard(subscription)

    def publish(self, task: Task) -> None:
        """Record a state this process gave a task; while a change feed is attached and anyone listens, the feed
        records it instead, in the store's order among every process's states (within milliseconds)."""
        if self.hold is not None and self._subscribers:
            self.hold(task)
            return
        self.accept(task)

    def accept(self, task: Task, in_commit_order: bool = False) -> None:
        """Record a task's state; one stamped no later than the last recorded (a repeat, or a late arrival) is
        ignored, unless both came from the store's feed in the order it committed them: then that order is the
        truth (a cancel stamped before a claim that committed first is the job's latest state). Nothing of a
        deleted task is recorded."""
        key = (task.updated_at, _RANK.get(task.status, 0))
        last = self._log.get(task.id)
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
            elif not in_commit_order and last.in_commit_order and _among_states(last, key):
                return  # the feed brought it already, and a state committed after it, stamped earlier
        else:
            self._created.append(task.id)
        self._append(task.id, task if self._subscribers else None, key, task.status, in_commit_order)
        self.published += 1
        if task.batch_id is not None and self._subscribers:
            self._touched.add(task.batch_id)

    def lost_changes(self) -> None:
        """Some changes will never be recorded (the change feed lost them): every current reader must resync."""
        self._seq += 1  # a position no current reader has reached, and nothing to read at it
        self._forgotten = self._seq
        self._recent_base = self._seq + 1
        for entry in self._recent:
            entry.prev = None
        self._recent = []
        self._memo.clear()
        self._wake_readers()

    def touch_batch(self, batch_id: str) -> None:
        """Have a batch's counts (and finish) looked at again, e.g. once it is sealed."""
        if self._subscribers:
            self._touched.add(batch_id)

    def take_touched_batches(self) -> set[str]:
        """The batches whose jobs changed since the last call (for coalesced batch.progress messages)."""
        touched, self._touched = self._touched, set()
        return touched

    def publish_batch(self, batch: Batch, finished: bool = False) -> None:
        """Record a batch's latest counts (one entry per batch, so a burst of changes is one message), or that
        it finished; clients that follow every task, and dashboards, receive them."""
        kind = "batch.finished" if finished else "batch.progress"
        key = f"{kind}:{batch.id}"  # never a task id: those have no '.' or ':'
        self._append(key, json.dumps({"type": kind, "batch": batch.to_json()}, separators=(",", ":")), (0.0, 0), "")
        self._batch_keys[key] = None
        self._batch_keys.move_to_end(key)
        if len(self._batch_keys) > MAX_BATCH_KEYS:
            self._batch_keys.popitem(last=False)

    def publish_url_changed(self, task: Task, previous_id: str) -> None:
        """Record that a recurring run's page differs from the previous run's; delivered like batch messages."""
        key = f"url.changed:{task.id}"
        message = {"type": "url.changed", "task": task.to_json(), "previous_id": previous_id}
        self._append(key, json.dumps(message, separators=(",", ":")), (0.0, 0), "")
        self._batch_keys[key] = None
        self._batch_keys.move_to_end(key)
        if len(self._batch_keys) > MAX_BATCH_KEYS:
            self._batch_keys.popitem(last=False)

    def publish_counts(self, counts: dict[str, int]) -> None:
        """Record the current counts by status, for clients that follow every task."""
        message = json.dumps({"type": "counts", "counts": counts}, separators=(",", ":"))
        self._append(_COUNTS_KEY, message, (0.0, 0), "")

    def close_streams(self) -> None:
        """End every event stream (the server is stopping): waiting readers raise HubClosed."""
        self.closed = True
        sleepers, self._sleepers = self._sleepers, []
        for sleeper in sleepers:
            if not sleeper.done():
                sleeper.set_result(None)

    def publish_deleted(self, task_id: str) -> None:
        """Record that a job was deleted (once: the process that deleted it records it, then its change feed
        brings it); no later state of it is recorded."""
        last = self._log.get(task_id)
        if last is not None and last.status == DELETED:
            return
        message = json.dumps({"type": "task.deleted", "task_id": task_id}, separators=(",", ":"))
        self._append(task_id, message, (float("inf"), len(_RANK)), DELETED)
        self.published += 1

    def publish_stats(self, stats: dict[str, Any]) -> None:
        """Record the latest live statistics (one entry, replaced each time) for dashboards."""
        self._append(_STATS_KEY, json.dumps(stats, separators=(",", ":")), (0.0, 0), "")

    def _append(self, key: str, message: str | Task | None, order: tuple[float, int], status: str,
                in_commit_order: bool = False) -> None:
        self._seq += 1
        previous = self._log.get(key)
        entry = _Entry(self._seq, key, message, order, status,
                       previous if status and previous is not None and previous.status else None, in_commit_order)
        self._log[key] = entry
        self._log.move_to_end(key)
        if len(self._log) > self.max_pending:
            _, oldest = self._log.popitem(last=False)
            self._forgotten = max(self._forgotten, oldest.seq)
        recent = self._recent
        recent.append(entry)
        if len(recent) > self.max_recent + self.max_recent // 8:  # trimmed in steps: amortised O(1) per entry
            cut = len(recent) - self.max_recent
            for old in recent[:cut]:
                old.prev = None  # a state out of the recent log keeps no older one alive
            del recent[:cut]
            self._recent_base += cut
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
        return self._seq

    def wake_at_next_change(self, sleeper: asyncio.Future[None]) -> None:
        """Resolve `sleeper` when the next change is recorded (one plain future per waiting reader)."""
        self._sleepers.append(sleeper)

    def count_after(self, cursor: int) -> int:
        """How many keys of the latest log changed after `cursor`."""
        count = 0
        for entry in reversed(self._log.values()):
            if entry.seq <= cursor:
                break
            count += 1
        return count

    def read_after(self, subscription: Subscription, limit: int) -> list[str]:
        """The messages a subscription has not read yet (up to `limit`), advancing its position.

        Clients that follow every task and read at the same moment share one computed answer.
        """
        cursor = subscription.cursor
        everything = subscription.view is None and subscription.task_ids is None
        recent = cursor + 1 >= self._recent_base  # every entry after the position is still in the recent log
        if cursor < self._forgotten and not (everything and recent):
            subscription.cursor = self._seq
            subscription.replay = set()
            return [RESYNC]
        replayed = self._replay(subscription) if subscription.replay else None
        wanted = subscription.task_ids
        if subscription.view is not None:
            messages, cursor = self._read_view(cursor, subscription.view, limit)
        elif wanted is not None:
            messages, cursor = self._read_some(cursor, wanted, limit)
        else:
            # Readers from the same position share one snapshot, even if changes arrived since it was
            # taken: they read those on their next turn (a task's newer state always comes later).
            key = (cursor, limit)
            cached = self._memo.get(key)
            if cached is None:
                if len(self._memo) >= 64:
                    self._memo.clear()
                cached = self._memo[key] = (self._read_recent(cursor, limit) if recent
                                            else self._read_all(cursor, limit))
            messages, cursor = cached
        subscription.cursor = cursor
        return replayed + messages if replayed else messages

    def _replay(self, subscription: Subscription) -> list[str]:
        """Latest states of the rows new to a view, except those the regular read brings anyway."""
        ids, subscription.replay = subscription.replay, set()
        found = []
        for task_id in ids:
            entry = self._log.get(task_id)
            if entry is not None and entry.message is not None and entry.seq <= subscription.cursor:
                found.append((entry.seq, _serialised(entry)))
        return [message for _seq, message in sorted(found)]

    def frame_after(self, subscription: Subscription, limit: int) -> str | None:
        """Like read_after, joined into one batch frame; clients reading together share the string."""
        messages = self.read_after(subscription, limit)
        if not messages:
            return None
        key = id(messages)
        cached = self._frames.get(key)
        if cached is not None and cached[0] is messages:
            return cached[1]
        frame = '{"type":"batch","messages":[' + ",".join(messages) + "]}"
        if len(self._frames) >= 64:
            self._frames.clear()
        self._frames[key] = (messages, frame)
        return frame

    def _read_recent(self, after: int, limit: int) -> tuple[list[str], int]:
        """Every entry after `after`, in order: each state of each task; of a batch, counts or stats key, only
        an entry no newer one replaced."""
        recent, latest = self._recent, self._log
        out: list[str] = []
        i = after + 1 - self._recent_base
        while i < len(recent) and len(out) < limit:
            entry = recent[i]
            i += 1
            if entry.message is None:
                continue
            if not entry.status:
                newest = latest.get(entry.key)
                if newest is not None and newest is not entry:
                    continue
            out.append(_serialised(entry))
        cursor = recent[i - 1].seq if len(out) == limit else self._seq
        return out, cursor

    def _read_all(self, after: int, limit: int) -> tuple[list[str], int]:
        newer: list[tuple[int, str]] = []
        for entry in reversed(self._log.values()):
            if entry.seq <= after:
                break
            if entry.message is not None:
                newer.append((entry.seq, _serialised(entry)))
        return self._page(newer, limit)

    def _read_some(self, after: int, wanted: frozenset[str], limit: int) -> tuple[list[str], int]:
        """The wanted tasks' states after `after`: each one still in the recent log, and always the latest."""
        newer = []
        for task_id in wanted:
            entry = self._log.get(task_id)
            while entry is not None and entry.seq > after:
                if entry.message is not None:
                    newer.append((entry.seq, _serialised(entry)))
                entry = entry.prev
        newer.sort(reverse=True)
        return self._page(newer, limit)

    def _read_view(self, after: int, view: View, limit: int) -> tuple[list[str], int]:
        """Changes to the page's tasks, the newest tasks created since `after_id`, and the counts."""
        picked: dict[str, _Entry] = {}
        log = self._log
        for task_id in (*view.task_ids, _COUNTS_KEY, _STATS_KEY, *self._batch_keys):
            entry = log.get(task_id)
            if entry is not None and entry.seq > after and entry.message is not None:
                picked[task_id] = entry
        found = 0
        for task_id in reversed(self._created):
            if found >= view.newest or task_id <= view.after_id:
                break
            entry = log.get(task_id)
            if entry is None or (view.status is not None and entry.status != view.status):
                continue
            found += 1
            if entry.seq > after and entry.message is not None:
                picked[task_id] = entry
        newer = sorted(((entry.seq, _serialised(entry)) for entry in picked.values()), reverse=True)
        return self._page(newer, limit)

    def _page(self, newest_first: list[tuple[int, str]], limit: int) -> tuple[list[str], int]:
        if not newest_first:
            return [], self._seq
        newest_first.reverse()
        taken = newest_first[:limit]
        cursor = taken[-1][0] if len(newest_first) > limit else self._seq
        return [message for _seq, message in taken], cursor


def _among_states(entry: _Entry, order: tuple[float, int]) -> bool:
    """Whether a state of this order is among the task's states still in the recent log (newest first)."""
    walked: _Entry | None = entry
    while walked is not None:
        if walked.order == order:
            return True
        walked = walked.prev
    return False


def _serialised(entry: _Entry) -> str:
    """The entry's message as JSON, made on first read and kept for the other readers."""
    message = entry.message
    if isinstance(message, Task):
        message = json.dumps({"type": "task", "task": message.to_json()}, separators=(",", ":"))
        entry.message = message
    assert message is not None
    return message


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
