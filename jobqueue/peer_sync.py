"""Every process's job changes, in the store's order, for this process's event hub.

Processes sharing one database each make their own changes; every websocket client must see every
job's states in order, whichever process made them. So the hub is fed from the store's record of
changes, in the order the store made them:

- the change log (`Store.changes_after`: SQLite's `job_changes`, MongoDB's log where there are no
  change streams), read by position, so no change is skipped however many share a time, and each
  intermediate state arrives, not only the latest;
- on a MongoDB replica set, a change stream, which brings each change in order as it happens.

Both bring deletions too (EventHub.publish_deleted), so a job deleted by one process (a purge, a
bulk delete, retention) leaves every process's dashboards.

While anyone listens, this process's own states are held (EventHub.hold) until the feed has passed
them: else a job this process claims could show `running` before the `queued` another process
recorded a moment earlier reached this one, and that `queued` would then be dropped as older. With
the log, a held state waits for one read that starts after it (a few milliseconds); with a stream,
at most HOLD seconds. Where the log is in commit order (SQLite), a read that succeeded brought every
held state in its place, so the held ones are let go; elsewhere, or when the read failed, a held
state is recorded itself, which the hub ignores as a repeat when the feed brought it, so none is lost.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from typing import Any

from jobqueue.events import EventHub
from jobqueue.models import Task
from jobqueue.store.base import ChangesUnavailable, JobDeleted, Store, StoreError

log = logging.getLogger("jobqueue.peer_sync")
INTERVAL = 1.0  # seconds between looks at the log when this process made no change
MIN_GAP = 0.02  # seconds between two reads of the log, so a burst of own changes costs one read, not one each
HOLD = 0.5  # seconds an own state waits for the change stream to bring it
BATCH = 1000
_FOLLOWED: weakref.WeakSet[EventHub] = weakref.WeakSet()  # hubs a follower fed before: a new one is a restart


class HeldStates:
    """This process's own states, waiting for the change feed to pass them."""

    def __init__(self) -> None:
        self.items: list[tuple[float, Task]] = []
        self.arrived = asyncio.Event()

    def add(self, task: Task) -> None:
        """Hold one state (EventHub.hold)."""
        self.items.append((time.monotonic(), task))
        self.arrived.set()

    def take(self, older_than: float | None = None) -> list[Task]:
        """Stop holding every state (or those held for longer than `older_than` seconds), oldest first."""
        if older_than is None:
            items, self.items = self.items, []
        else:
            limit = time.monotonic() - older_than
            items = [item for item in self.items if item[0] <= limit]
            self.items = self.items[len(items):]  # held in time order: the old ones are a prefix
        return [task for _at, task in items]


async def follow_changes(store: Store, hub: EventHub) -> None:
    """Feed every process's changes to the hub: a change stream where the backend has one, else the change log.

    Whatever ends the change stream (no change streams on this server, an outage, a bug), live
    updates go on from the log. A bug reading the log raises to the supervisor, which calls this again:
    the feed then starts from the newest change, so clients listening are told to reload (hub.lost_changes).
    """
    if hub in _FOLLOWED and hub.subscribers:  # started again after a failure: what changed meanwhile is not read
        log.warning("following other processes' changes again after a failure; live clients are told to reload")
        hub.lost_changes()
    _FOLLOWED.add(hub)
    if store.capabilities.change_stream:
        try:
            await follow_stream(store, hub)
            log.warning("the change stream ended; reading the change log instead")
        except ChangesUnavailable as exc:
            log.info("%s; reading the change log instead", exc)
        except StoreError as exc:
            log.warning("the change stream failed (%s); reading the change log instead", exc)
        except Exception:
            log.exception("the change stream failed unexpectedly; reading the change log instead")
    await follow_log(store, hub)


async def follow_stream(store: Store, hub: EventHub) -> None:
    """Record each change the stream brings; own states are recorded by it, or after HOLD seconds."""
    held = HeldStates()

    async def release() -> None:
        while True:
            await asyncio.sleep(HOLD / 5)
            for task in held.take(older_than=HOLD):
                hub.accept(task)

    hub.hold = held.add
    releaser = asyncio.ensure_future(release())
    try:
        async for change in store.watch():  # type: ignore[attr-defined]
            if isinstance(change, JobDeleted):
                hub.publish_deleted(change.task_id)
            else:
                hub.accept(change)
    finally:
        releaser.cancel()
        _let_go(hub, held)


async def follow_log(store: Store, hub: EventHub, interval: float = INTERVAL) -> None:
    """Forever: read the change log on from where the last read ended, at once when this process holds a state
    of its own (at most every MIN_GAP seconds), else every `interval` seconds. While nobody listens, only keep
    the position at the newest change, which costs next to nothing."""
    held = HeldStates()
    hub.hold = held.add
    position: Any = None
    try:
        try:  # from now on: a client may connect as soon as the server listens
            position = (await store.changes_after(None, 0)).position
        except StoreError as exc:
            log.warning("reading the change log failed: %s", exc)
        positioned = False  # the position was last taken without reading: it may be past states held since
        while True:
            try:
                await asyncio.wait_for(held.arrived.wait(), interval)
                await asyncio.sleep(MIN_GAP)  # gather the rest of a burst
            except TimeoutError:
                pass
            held.arrived.clear()
            waiting = held.take()  # the read below starts after each of these was stored: it brings them
            complete = False
            try:
                if not hub.subscribers:
                    position = (await store.changes_after(None, 0)).position
                    positioned = True
                else:
                    position, complete = await _read_on(store, hub, position)
                    # a listener that came during the position's read: its process may hold a state committed
                    # before it, which no read on from there brings
                    complete, positioned = complete and not positioned, False
            except StoreError as exc:
                log.warning("reading the change log failed: %s", exc)
            finally:  # a bug raises on to the supervisor, which starts the follower again
                if not complete:
                    for task in waiting:
                        hub.accept(task)  # a repeat of what the log brought, unless the read failed or missed it
    finally:
        _let_go(hub, held)


async def _read_on(store: Store, hub: EventHub, position: Any) -> tuple[Any, bool]:
    """Record every change after `position`, page by page: the position reached, and whether the log is complete
    and in commit order (then it brought every state stored before the read, with nothing missing or out of order,
    and held states are repeats)."""
    complete = position is not None  # else what was stored before the read is not read
    if position is None:
        position = (await store.changes_after(None, 0)).position
    while True:
        page = await store.changes_after(position, BATCH)
        if page.lost:
            log.warning("changes other processes made were pruned from the change log before this process read "
                        "them; live clients are told to reload")
            hub.lost_changes()
        for task in page.tasks:
            hub.accept(task, in_commit_order=page.commit_order)
        for task_id in page.deleted:
            hub.publish_deleted(task_id)
        complete = complete and page.commit_order
        position = page.position
        if not page.more:
            return position, complete


def _let_go(hub: EventHub, held: HeldStates) -> None:
    """The feed stops: own states are recorded directly again, the held ones first."""
    hub.hold = None
    for task in held.take():
        hub.accept(task)
