"""Reading the event hub's log: each subscriber is a position in it and what it follows (every task, some task
ids, or a dashboard's view), and LogReader turns a position into the messages after it.

- A reader that follows every task and whose position is still in the recent log reads every entry,
  in order: every state of every job. Readers at the same position share one computed answer.
- One that fell behind the recent log reads each key's latest entry, in the order of their last
  change (so each task's newest state, in lifecycle order); one that fell behind what the latest log
  reaches is told to resync (re-read the list over REST).
- Dashboards that sent a view, and `?task_id=` streams, read by task in the latest log (a `?task_id=`
  stream also walks back through the task's states still in the recent log).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from jobqueue.event_log import COUNTS_KEY, STATS_KEY, Entry, EventLog, serialised

if TYPE_CHECKING:
    from jobqueue.events import EventHub

RESYNC = json.dumps({"type": "resync", "reason": "this client fell too far behind; reload the task list"})


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


class LogReader:
    """Reads the log after a subscriber's position, sharing answers and frames among readers that read together."""

    def __init__(self, log: EventLog) -> None:
        self.log = log
        self._memo: dict[tuple[int, int], tuple[list[str], int]] = {}
        self._frames: dict[int, tuple[list[str], str]] = {}

    def forget_shared(self) -> None:
        """Drop the shared answers (the log forgot its recent entries)."""
        self._memo.clear()

    def read_after(self, subscription: Subscription, limit: int) -> list[str]:
        """The messages a subscription has not read yet (up to `limit`), advancing its position.

        Clients that follow every task and read at the same moment share one computed answer.
        """
        log = self.log
        cursor = subscription.cursor
        everything = subscription.view is None and subscription.task_ids is None
        recent = cursor + 1 >= log.recent_base  # every entry after the position is still in the recent log
        if cursor < log.forgotten and not (everything and recent):
            subscription.cursor = log.seq
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

    def _replay(self, subscription: Subscription) -> list[str]:
        """Latest states of the rows new to a view, except those the regular read brings anyway."""
        ids, subscription.replay = subscription.replay, set()
        found = []
        for task_id in ids:
            entry = self.log.latest.get(task_id)
            if entry is not None and entry.message is not None and entry.seq <= subscription.cursor:
                found.append((entry.seq, serialised(entry)))
        return [message for _seq, message in sorted(found)]

    def _read_recent(self, after: int, limit: int) -> tuple[list[str], int]:
        """Every entry after `after`, in order: each state of each task; of a batch, counts or stats key, only
        an entry no newer one replaced."""
        recent, latest = self.log.recent, self.log.latest
        out: list[str] = []
        i = after + 1 - self.log.recent_base
        while i < len(recent) and len(out) < limit:
            entry = recent[i]
            i += 1
            if entry.message is None:
                continue
            if not entry.status:
                newest = latest.get(entry.key)
                if newest is not None and newest is not entry:
                    continue
            out.append(serialised(entry))
        cursor = recent[i - 1].seq if len(out) == limit else self.log.seq
        return out, cursor

    def _read_all(self, after: int, limit: int) -> tuple[list[str], int]:
        newer: list[tuple[int, str]] = []
        for entry in reversed(self.log.latest.values()):
            if entry.seq <= after:
                break
            if entry.message is not None:
                newer.append((entry.seq, serialised(entry)))
        return self._page(newer, limit)

    def _read_some(self, after: int, wanted: frozenset[str], limit: int) -> tuple[list[str], int]:
        """The wanted tasks' states after `after`: each one still in the recent log, and always the latest."""
        newer = []
        for task_id in wanted:
            entry = self.log.latest.get(task_id)
            while entry is not None and entry.seq > after:
                if entry.message is not None:
                    newer.append((entry.seq, serialised(entry)))
                entry = entry.prev
        newer.sort(reverse=True)
        return self._page(newer, limit)

    def _read_view(self, after: int, view: View, limit: int) -> tuple[list[str], int]:
        """Changes to the page's tasks, the newest tasks created since `after_id`, and the counts."""
        picked: dict[str, Entry] = {}
        latest = self.log.latest
        for task_id in (*view.task_ids, COUNTS_KEY, STATS_KEY, *self.log.batch_keys):
            entry = latest.get(task_id)
            if entry is not None and entry.seq > after and entry.message is not None:
                picked[task_id] = entry
        found = 0
        for task_id in reversed(self.log.created):
            if found >= view.newest or task_id <= view.after_id:
                break
            entry = latest.get(task_id)
            if entry is None or (view.status is not None and entry.status != view.status):
                continue
            found += 1
            if entry.seq > after and entry.message is not None:
                picked[task_id] = entry
        newer = sorted(((entry.seq, serialised(entry)) for entry in picked.values()), reverse=True)
        return self._page(newer, limit)

    def _page(self, newest_first: list[tuple[int, str]], limit: int) -> tuple[list[str], int]:
        if not newest_first:
            return [], self.log.seq
        newest_first.reverse()
        taken = newest_first[:limit]
        cursor = taken[-1][0] if len(newest_first) > limit else self.log.seq
        return [message for _seq, message in taken], cursor
