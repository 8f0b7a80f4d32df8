"""See other processes' work on a shared database: a change stream, or a cheap poll of recent changes.

Processes sharing one database each publish only their own changes. With MongoDB on a replica set
a change stream brings every process's changes; on SQLite, or MongoDB without change streams, a
loop reads what changed recently. Either way the local hub drops states it has already sent.
"""

from __future__ import annotations

import asyncio
import logging
import time

from jobqueue.events import EventHub
from jobqueue.store.base import ChangesUnavailable, Store, StoreError

log = logging.getLogger("jobqueue.peer_sync")
OVERLAP = 2.0  # seconds re-read each time, for commits that land slightly out of clock order
# A write stamped while another process holds SQLite's lock commits up to busy_timeout (5 s) plus its
# queue later: every CATCH_UP_EVERY-th look re-reads this much, so such a change still arrives.
CATCH_UP = 15.0
CATCH_UP_EVERY = 5
BATCH = 1000


async def follow_changes(store: Store, hub: EventHub) -> None:
    """Feed other processes' changes to the hub: a change stream where the backend has one, else a poll.

    Whatever ends the change stream (no change streams on this server, an outage, a bug), live
    updates go on by polling.
    """
    if store.capabilities.change_stream:
        try:
            async for task in store.watch():  # type: ignore[attr-defined]
                hub.publish(task)
            log.warning("the change stream ended; polling recent changes instead")
        except ChangesUnavailable as exc:
            log.info("%s; polling recent changes instead", exc)
        except StoreError as exc:
            log.warning("the change stream failed (%s); polling recent changes instead", exc)
        except Exception:
            log.exception("the change stream failed unexpectedly; polling recent changes instead")
    await poll_changes(store, hub)


async def poll_changes(store: Store, hub: EventHub, interval: float = 1.0) -> None:
    """Forever: republish tasks changed in the last OVERLAP seconds (the hub ignores states it has).

    Every look starts OVERLAP seconds before the previous one began, because a change is stamped
    when it is made but becomes visible only at its commit, a little later (and every fifth look
    CATCH_UP seconds, for a write that waited for another process's lock).
    """
    since = time.time() - OVERLAP
    looks = 0
    while True:
        await asyncio.sleep(interval)
        started = time.time()
        if hub.subscribers == 0:
            since = started - OVERLAP
            continue
        looks += 1
        if looks % CATCH_UP_EVERY == 0:
            since = min(since, started - CATCH_UP)
        try:
            await _republish(store, hub, since)
        except StoreError as exc:
            log.warning("reading recent changes failed: %s", exc)
            continue
        except Exception:  # a bug must not stop live updates for good
            log.exception("reading recent changes failed unexpectedly")
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
