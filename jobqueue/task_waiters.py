"""Waiting for one job to finish, woken by its own state change on the event hub: no polling.

A synchronous request (the Firecrawl-compatible `scrape`) submits a job and answers once it is done. It follows
the job through a hub subscription for that one id, which also has the change feed (jobqueue/peer_sync.py) read
other processes' states while it waits, so a job run by another process of --processes wakes it too. The store
is read once after subscribing (the job may have finished already) and once more at the deadline or when the hub
lost changes, never in a loop.
"""

from __future__ import annotations

import asyncio

from jobqueue.events import EventHub
from jobqueue.models import FINISHED, Task
from jobqueue.store.base import Store


def _finished_in_hub(hub: EventHub, task_id: str) -> bool:
    entry = hub.log.latest.get(task_id)
    return entry is not None and entry.status in FINISHED


async def wait_finished(hub: EventHub, store: Store, task_id: str, timeout: float) -> Task | None:
    """The job once it is completed, failed or cancelled; its current state (or None when it is gone) if
    `timeout` seconds pass first."""
    subscription = hub.subscribe([task_id])
    try:
        task = await store.get(task_id)
        if task is None or task.status in FINISHED:
            return task
        try:
            async with asyncio.timeout(timeout):
                while not _finished_in_hub(hub, task_id):
                    await subscription.wait()  # the next change recorded in the hub (any job's)
                    lost = subscription.cursor < hub.log.forgotten
                    subscription.cursor = hub.last_seq
                    if lost:  # changes were pushed out of the log before they were looked at: ask the store
                        task = await store.get(task_id)
                        if task is None or task.status in FINISHED:
                            return task
        except TimeoutError:
            pass
        return await store.get(task_id)
    finally:
        hub.unsubscribe(subscription)
