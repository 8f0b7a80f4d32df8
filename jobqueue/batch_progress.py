"""Batch and crawl progress for live clients: coalesced `batch.progress` / `crawl.progress` messages and one
`batch.finished` / `crawl.finished` per finish.

Task changes mark their batch or crawl as touched in the hub (this process's own and, through the change feed,
every other process's). A few times a second this loop reads the touched batches' counts (one row
each, whatever the batch's size) and records them in the hub, which keeps only the latest per batch. Crawls are
read once a second (their counts come from an index of their pages, so they cost more the bigger they are).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict

from jobqueue.events import EventHub
from jobqueue.store.base import Store, StoreError

log = logging.getLogger("jobqueue.batch_progress")
INTERVAL = 0.25
CRAWL_EVERY = 4  # turns of the loop between two reads of the touched crawls
_REMEMBERED = 10_000  # finishes already announced, so each is announced once


async def batch_progress_loop(store: Store, hub: EventHub, interval: float = INTERVAL) -> None:
    """Forever: publish the counts of batches whose jobs changed, and each batch's finish once."""
    announced: OrderedDict[tuple[str, float], None] = OrderedDict()
    turn = 0
    while True:
        await asyncio.sleep(interval)
        turn += 1
        if turn % CRAWL_EVERY == 0:
            await _crawl_progress(store, hub, announced)
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


async def _crawl_progress(store: Store, hub: EventHub, announced: OrderedDict[tuple[str, float], None]) -> None:
    """Publish the counts of the crawls whose pages changed, and each crawl's end (finished or cancelled) once."""
    for crawl_id in sorted(hub.take_touched_crawls()):
        try:
            crawl = await store.get_crawl(crawl_id)
        except StoreError as exc:
            log.warning("reading crawl progress failed: %s", exc)
            return
        if crawl is None:
            continue
        hub.publish_crawl(crawl)
        if crawl.finished_at is not None and (crawl.id, crawl.finished_at) not in announced:
            announced[(crawl.id, crawl.finished_at)] = None
            if len(announced) > _REMEMBERED:
                announced.popitem(last=False)
            hub.publish_crawl(crawl, finished=True)
