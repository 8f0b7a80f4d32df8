"""Housekeeping: the periodic clean-ups a long-running store needs, in small bounded steps.

Each step deletes a bounded number of rows per call, so a backlog never becomes a long write.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from jobqueue.history.retention import RetentionPolicy, apply_retention
from jobqueue.idempotency import KEY_TTL
from jobqueue.store.base import Store, StoreError

log = logging.getLogger("jobqueue.housekeeping")
INTERVAL = 60.0
# how long the change log keeps a change: far longer than a process takes to read it (about a second),
# short enough that the log stays small; a process that reads later tells its clients to reload
CHANGES_KEPT = 120.0
KEEP_ALL = RetentionPolicy()


async def housekeeping_loop(store: Store, interval: float = INTERVAL, retention: RetentionPolicy = KEEP_ALL,
                            deleted: Callable[[str], None] = lambda _task_id: None) -> None:
    """Forever: remove batches whose storing process died, idempotency keys older than a day, changes older
    than CHANGES_KEPT, and jobs past their retention."""
    while True:
        try:
            await housekeep(store, retention, deleted)
        except StoreError as exc:
            log.warning("housekeeping failed, trying again in %.0fs: %s", interval, exc)
        await asyncio.sleep(interval)


async def housekeep(store: Store, retention: RetentionPolicy = KEEP_ALL,
                    deleted: Callable[[str], None] = lambda _task_id: None) -> None:
    """One round of every clean-up, each repeated while it still finds work."""
    while removed := await store.drop_abandoned_batches():
        log.info("removed the jobs of batches whose process died before answering", extra={"jobs": removed})
    while await store.purge_idempotency(time.time() - KEY_TTL):
        pass
    while await store.prune_changes(time.time() - CHANGES_KEPT):
        pass
    await apply_retention(store, retention, deleted=deleted)
