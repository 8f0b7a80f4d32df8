"""Waiting for one job to finish, woken by its own state change on the event hub: no polling.

A synchronous request (the Firecrawl-compatible `scrape`) submits a job and answers once it is done. A finish
this process gives the job wakes it at once (EventHub.watch_finish), without the change feed's wait that orders
states for the dashboards. It also follows the job through a hub subscription for that one id, which has the
change feed (jobqueue/peer_sync.py) read other processes' states while it waits, so a job run by another process
of --processes (or deleted) wakes it too. A job its
submission stored finished (a result reused by max_age) is not waited for. Else the store is read once after
subscribing: another process may have finished the job before this one listened, and while nobody listens this
hub does not follow other processes' changes. The finished job is then the one the hub recorded (as the store
made it); the store is read again only when the hub holds its JSON instead, lost changes, or at the deadline.
"""

from __future__ import annotations

import asyncio

from jobqueue.event_log import DELETED
from jobqueue.events import EventHub, Subscription
from jobqueue.models import FINISHED, Task
from jobqueue.store.base import Store


def _settled(hub: EventHub, task_id: str) -> bool:
    """Whether the hub recorded the job finished (or deleted since the read): the wait is over."""
    entry = hub.log.latest.get(task_id)
    return entry is not None and (entry.status in FINISHED or entry.status == DELETED)


async def _as_recorded(hub: EventHub, store: Store, task_id: str) -> Task | None:
    """The job in the state the hub recorded last, without a read when the hub still holds it as a Task."""
    entry = hub.log.latest.get(task_id)
    if entry is not None and isinstance(entry.message, Task) and entry.message.status in FINISHED:
        return entry.message
    return await store.get(task_id)


async def wait_finished(hub: EventHub, store: Store, submitted: Task, timeout: float) -> Task | None:
    """The job once it is completed, failed or cancelled; its current state (or None when it is gone) if
    `timeout` seconds pass first. `submitted`: the job as its submission returned it (stored, maybe finished
    already: a result reused by max_age)."""
    if submitted.status in FINISHED:
        return submitted
    task_id = submitted.id
    watcher = hub.watch_finish(task_id)  # this process's own finish, told at once
    subscription = hub.subscribe([task_id])  # and the feed's states: another process's finish, a deletion
    following: asyncio.Task[Task | None] | None = None
    try:
        task = await store.get(task_id)
        if task is None or task.status in FINISHED:
            return task
        following = asyncio.ensure_future(_follow(hub, store, subscription, task_id))
        try:
            async with asyncio.timeout(timeout):
                await asyncio.wait((watcher, following), return_when=asyncio.FIRST_COMPLETED)
        except TimeoutError:
            return await store.get(task_id)
        return watcher.result() if watcher.done() else following.result()
    finally:
        if following is not None and not following.done():
            following.cancel()
        hub.unwatch_finish(task_id, watcher)
        hub.unsubscribe(subscription)


async def _follow(hub: EventHub, store: Store, subscription: Subscription, task_id: str) -> Task | None:
    """The job once the hub recorded it finished or deleted, reading the store when changes were lost."""
    while not _settled(hub, task_id):
        await subscription.wait()  # the next change recorded in the hub (any job's)
        lost = subscription.cursor < hub.log.forgotten
        subscription.cursor = hub.last_seq
        if lost:  # changes were pushed out of the log before they were looked at: ask the store
            task = await store.get(task_id)
            if task is None or task.status in FINISHED:
                return task
    return await _as_recorded(hub, store, task_id)
