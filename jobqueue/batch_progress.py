"""Batch progress for live clients: coalesced `batch.progress` messages and one `batch.finished` per finish.

Task changes mark their batch as touched in the hub (this process's own and, through the change feed,
every other process's). A few times a second this loop reads the touched batches' counts (one row
each, whatever the batch's size) and records them in the hub, which keeps only the latest per batch.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict

from jobqueue.events import EventHub
from jobqueue.store.base import Store, StoreError

log = logging.getLogger("jobqueue.batch_progress")
INTERVAL = 0.25
_REMEMBERED = 10_000  # finishes already announced, so each is announced once


async def batch_progress_loop(store: Store, hub: EventHub, interval: float = INTERVAL) -> None:
    """Forever: publish the counts of batches whose jobs changed, and each batch's finish once."""
    announced: OrderedDict[tuple[str, float], None] = OrderedDict()
    while True:
        await asyncio.sleep(interval)
        touched = hub.take_touched_batches()
        if not touched:
            continue
        try:
            batches = await store.get_batches(sorted(touched))
        except StoreError as exc:
            log.warning("reading batch progress failed: %s", exc)
            continue
        for batch in batches:
            hub.publish_batch(batch)
            if batch.finished_at is not None and (batch.id, batch.finished_at) not in announced:
                announced[(batch.id, batch.finished_at)] = None
                if len(announced) > _REMEMBERED:
                    announced.popitem(last=False)
                hub.publish_batch(batch, finished=True)
