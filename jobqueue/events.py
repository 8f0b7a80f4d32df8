"""The event hub: every task state change is published once and fanned out to subscribers.

Each subscriber owns a bounded buffer holding the latest state per task, so a client that falls
behind skips intermediate states but always gets each task's newest one, in lifecycle order. A
subscriber more than `max_pending` distinct tasks behind is told to resync (re-read the list over
REST) instead of growing memory; publishing never waits for anyone.
"""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from collections.abc import Iterable

from jobqueue.models import STATUSES, Task

_RANK = {status: i for i, status in enumerate(STATUSES)}
RESYNC = json.dumps({"type": "resync", "reason": "this client fell too far behind; reload the task list"})


class Subscription:
    """One client's view of the event stream: a coalescing buffer and a wake-up flag."""

    def __init__(self, hub: EventHub, task_ids: Iterable[str] | None, max_pending: int) -> None:
        self.hub = hub
        self.task_ids = frozenset(task_ids) if task_ids else None
        self.max_pending = max_pending
        self._pending: OrderedDict[str, str] = OrderedDict()
        self._resync = False
        self._ready = asyncio.Event()
        self.skipped = 0

    def offer(self, task_id: str, message: str) -> None:
        """Take a new state without ever blocking; older unsent states of the task are replaced."""
        if self.task_ids is not None and task_id not in self.task_ids:
            return
        if self._resync:
            return
        if task_id in self._pending:
            self.skipped += 1
            self._pending[task_id] = message
        elif len(self._pending) >= self.max_pending:
            self._pending.clear()
            self._resync = True
        else:
            self._pending[task_id] = message
        self._ready.set()

    def offer_raw(self, message: str) -> None:
        """Queue a message that is not about one task (counts); the newest replaces older ones."""
        self._pending.pop("", None)
        self._pending[""] = message
        self._ready.set()

    async def next_batch(self, limit: int = 500) -> list[str]:
        """Wait for messages and take up to `limit` of them, oldest change first."""
        await self._ready.wait()
        if self._resync:
            self._resync = False
            if not self._pending:
                self._ready.clear()
            return [RESYNC]
        batch = []
        while self._pending and len(batch) < limit:
            batch.append(self._pending.popitem(last=False)[1])
        if not self._pending:
            self._ready.clear()
        return batch

    @property
    def pending(self) -> int:
        """How many messages wait to be sent (bounded by max_pending + 1)."""
        return len(self._pending)

    def close(self) -> None:
        """Stop receiving events."""
        self.hub.unsubscribe(self)


class EventHub:
    """Fans task states out to subscribers; drops states older than what was already published."""

    def __init__(self, max_pending: int = 5000, remember: int = 20000) -> None:
        self.max_pending = max_pending
        self._subscribers: set[Subscription] = set()
        self._last: OrderedDict[str, tuple[float, int]] = OrderedDict()
        self._remember = remember
        self.published = 0

    @property
    def subscribers(self) -> int:
        """How many clients listen (for /metrics)."""
        return len(self._subscribers)

    def subscribe(self, task_ids: Iterable[str] | None = None) -> Subscription:
        """Start receiving task events (all, or only `task_ids`)."""
        subscription = Subscription(self, task_ids, self.max_pending)
        self._subscribers.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        """Stop sending to a subscription."""
        self._subscribers.discard(subscription)

    def publish(self, task: Task) -> None:
        """Announce a task's new state; a state older than the last one seen is ignored."""
        key = (task.updated_at, _RANK.get(task.status, 0))
        last = self._last.get(task.id)
        if last is not None and key <= last:
            return
        self._last[task.id] = key
        self._last.move_to_end(task.id)
        if len(self._last) > self._remember:
            self._last.popitem(last=False)
        self.published += 1
        if not self._subscribers:
            return
        message = json.dumps({"type": "task", "task": task.to_json()}, separators=(",", ":"))
        for subscription in self._subscribers:
            subscription.offer(task.id, message)

    def publish_counts(self, counts: dict[str, int]) -> None:
        """Send the current counts by status to every client that listens to all tasks."""
        message = json.dumps({"type": "counts", "counts": counts}, separators=(",", ":"))
        for subscription in self._subscribers:
            if subscription.task_ids is None:
                subscription.offer_raw(message)
