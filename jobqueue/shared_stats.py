"""The service's live statistics, the same from every process: each adds its counts to shared slots in the store.

Every FLUSH_SECONDS a process adds what it counted since (jobqueue/live_stats.LiveStats: the jobs it
finished, the fetches it made) to the store's slots, with additions that commute, so the slots hold
what every process counted. The figures dashboards get are read back from those slots: a few rows,
whatever the number of jobs. A process that stops cleanly adds its last counts; one killed loses at
most its last FLUSH_SECONDS of them. While the store is unreachable counts wait in memory (bounded:
too old to be shown, they are dropped).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from jobqueue.live_stats import HOUR, KEEP, MINUTE, SECONDS, SHOWN_HOSTS, LiveStats, StatsSlot, stats_message, windows
from jobqueue.store.base import Store, StoreError

log = logging.getLogger("jobqueue.stats")
FLUSH_SECONDS = 2.0
PURGE_SECONDS = 60.0
SETTLE_SECONDS = 5.0  # how long a stopping process waits for a flush under way


class SharedStats:
    """Adds this process's counts to the store's shared slots, and reads the service's figures back from them."""

    def __init__(self, store: Store, live: LiveStats, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.live = live
        self.clock = clock
        self._failing = False
        self._writing: set[asyncio.Future[None]] = set()  # writes under way, kept even when their flush is cancelled

    async def flush(self) -> None:
        """Add the counts gathered since the last flush to the store (kept for the next one if it fails).

        Cancelled (a loop stopped at shutdown), the write already handed to the store goes on and counts:
        `settle` waits for it. Giving its counts back instead would add them twice, since the store commits it."""
        slots = self.live.take()
        if not slots:
            return
        write = asyncio.ensure_future(self._add(slots))
        self._writing.add(write)
        write.add_done_callback(self._writing.discard)
        try:
            await asyncio.shield(write)
        except asyncio.CancelledError:
            write.add_done_callback(_report)  # nobody awaits it any more
            raise

    async def settle(self, timeout: float = SETTLE_SECONDS) -> None:
        """Wait (at most `timeout`) for writes whose flush was cancelled, so none is under way when the store
        closes and a last flush adds only what they did not."""
        if self._writing:
            await asyncio.wait(set(self._writing), timeout=timeout)

    async def _add(self, slots: list[StatsSlot]) -> None:
        try:
            await self.store.add_stats(slots)
        except StoreError as exc:
            # the store took none of them: they wait for the next flush
            self.live.give_back(slots)
            self._warn(f"adding live statistics to the database failed ({exc}); they wait for the next try")
            raise
        self._failing = False

    async def purge(self) -> None:
        """Delete slots older than any figure shows."""
        now = int(self.clock())
        for (width, hosts), keep in KEEP.items():
            await self.store.purge_stats(width, hosts, now - keep)

    async def run(self, interval: float = FLUSH_SECONDS) -> None:
        """Forever: flush every `interval`, purge old slots every PURGE_SECONDS; a database error waits for the
        next turn, a bug ends the loop for its supervisor to log and restart."""
        purged = 0.0
        while True:
            await asyncio.sleep(interval)
            try:
                await self.flush()
                if self.clock() - purged >= PURGE_SECONDS:
                    await self.purge()
                    purged = self.clock()
            except StoreError:
                continue

    async def snapshot(self) -> dict[str, Any] | None:
        """The `{"type": "stats"}` message, the whole service's, with this process's latest counts in it (None when
        the database cannot be read: the dashboard keeps the figures it has)."""
        try:
            await self.flush()
        except StoreError:
            pass  # the figures read next miss this process's last seconds at most
        now = self.clock()
        start = windows(now)
        store = self.store
        try:
            last_minute = await store.stats_series(SECONDS, start["last_minute"], SECONDS)
            minutes = await store.stats_series(MINUTE, start["hour"], MINUTE)
            hours = await store.stats_series(MINUTE, start["day"], HOUR)
            hosts, seen = await store.stats_hosts(start["hour"], SHOWN_HOSTS)
        except StoreError as exc:
            self._warn(f"reading live statistics failed ({exc}); dashboards keep their figures until it works")
            return None
        return stats_message(now, last_minute, minutes, hours, hosts, seen)

    def _warn(self, message: str) -> None:
        """Log a database failure once until something works again, not at every turn."""
        if not self._failing:
            log.warning(message)
        self._failing = True


def _report(write: asyncio.Future[None]) -> None:
    """The end of a write whose flush was cancelled: a database error was logged (its counts given back), a bug
    is logged here, as the flush's caller would have."""
    if write.cancelled():
        return
    exc = write.exception()
    if exc is not None and not isinstance(exc, StoreError):
        log.error("adding live statistics to the database failed", exc_info=exc)
