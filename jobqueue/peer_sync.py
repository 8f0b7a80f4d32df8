"""See other processes' work on a shared database: a cheap poll of recently changed tasks.

Processes sharing one SQLite file (or a MongoDB without change streams) each publish only their own
changes; this loop reads what changed since its last look and republishes it to the local hub,
which drops states it has already seen.
"""

from __future__ import annotations

import asyncio
import logging
import time

from jobqueue.events import EventHub
from jobqueue.store.base import Store, StoreError

log = logging.getLogger("jobqueue.peer_sync")
OVERLAP = 2.0  # seconds re-read each time, for commits that land slightly out of clock order
BATCH = 1000


async def poll_changes(store: Store, hub: EventHub, interval: float = 0.5) -> None:
    """Forever: republish tasks changed in the last OVERLAP seconds (the hub ignores states it has).

    Every look starts OVERLAP seconds before the previous one began, because a change is stamped
    when it is made but becomes visible only at its commit, a little later.
    """
    since = time.time() - OVERLAP
    while True:
        await asyncio.sleep(interval)
        started = time.time()
        if hub.subscribers == 0:
            since = started - OVERLAP
            continue
        try:
            await _republish(store, hub, since)
        except StoreError as exc:
            log.warning("reading recent changes failed: %s", exc)
            continue
        since = started - OVERLAP


async def _republish(store: Store, hub: EventHub, since: float) -> None:
    at = since
    while True:
        changed = await store.changed_since(at, BATCH)
        for task in changed:
            hub.publish(task)
        if len(changed) < BATCH or changed[-1].updated_at == at:
            return
        at = changed[-1].updated_at
