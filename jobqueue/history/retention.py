"""Retention: finished jobs older than --retention-days go, a small batch per transaction, sparing the newest
--keep-per-url results of every URL; then the freed pages go back to the file system a step at a time.

What the jobs leave behind goes at the same age, in the store's purge_finished (the same on every store,
tests/test_store_contract_retention.py): a sealed batch once its last job is deleted, and, in the round's
last call, webhook deliveries delivered or failed for good and relayed url.changed records made before the
cutoff (pending deliveries stay whatever their age)."""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("jobqueue.retention")
DAY = 86400.0


@dataclass(frozen=True)
class RetentionPolicy:
    """What to delete and how gently."""

    days: float | None = None  # None: keep everything
    keep_per_url: int = 0
    batch: int = 200  # jobs per delete transaction: a few milliseconds of writer time
    vacuum_pages: int = 256  # pages given back per step (1 MiB of 4 KiB pages)
    max_vacuum_steps: int = 64  # per round, so a huge backlog is given back over several rounds

    @classmethod
    def from_settings(cls, settings: Any) -> RetentionPolicy:
        """The policy of --retention-days and --keep-per-url."""
        return cls(days=settings.retention_days, keep_per_url=settings.keep_per_url)

    @property
    def active(self) -> bool:
        """Whether anything is ever deleted."""
        return self.days is not None


async def apply_retention(store: Any, policy: RetentionPolicy, now: float | None = None,
                          deleted: Callable[[str], None] = lambda _task_id: None) -> int:
    """One round: delete every expired job in small batches, then vacuum a bounded number of steps.

    Returns the number of jobs deleted; `deleted` hears of each (live clients drop the row).
    """
    if policy.days is None:  # not active
        return 0
    if now is None:  # the clock finished_at was written with; a timing wrapper makes methods coroutines
        clock = getattr(store, "clock", None)
        now = clock() if callable(clock) and not inspect.iscoroutinefunction(clock) else time.time()
    cutoff = now - policy.days * DAY
    total, resume = 0, None
    while True:
        ids, resume = await store.purge_finished(cutoff, policy.keep_per_url, policy.batch, resume)
        total += len(ids)
        for task_id in ids:
            deleted(task_id)
        if resume is None:
            break
        await asyncio.sleep(0)  # other writes and requests go between two batches
    if total:
        log.info("retention deleted finished jobs", extra={"jobs": total})
    for _ in range(policy.max_vacuum_steps):
        if not await store.vacuum_step(policy.vacuum_pages):
            break
    return total
