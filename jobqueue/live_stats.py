"""Live statistics for the dashboard's charts: throughput, errors and fetch time over the last hour.

Kept in memory by each process from the task changes its event hub accepts, which include the
changes other processes make to the same database (they arrive through the peer-changes feed), so
every process sees the whole service without asking the store. Memory is bounded: one slot per
minute for an hour, overall and for each of the most recently active hosts, and one per second for
the last minute. Fetch times go into fixed buckets, so p50 and p95 are the upper bound of the bucket
they fall in (good to about a third of their value), not exact figures.
"""

from __future__ import annotations

import bisect
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from jobqueue.models import COMPLETED, FAILED, FINISHED, Task, iso

BOUNDS_MS = (5, 10, 20, 50, 100, 200, 300, 500, 750, 1000, 1500, 2000, 3000, 5000, 10000, 30000, 60000, 300000)
MINUTES = 60
MAX_HOSTS = 500
SHOWN_HOSTS = 20


@dataclass
class Slot:
    """What finished within one time slot."""

    start: int = -1
    finished: int = 0
    failed: int = 0
    http_errors: int = 0
    buckets: list[int] = field(default_factory=lambda: [0] * (len(BOUNDS_MS) + 1))

    def add(self, failed: bool, http_error: bool, bucket: int | None) -> None:
        self.finished += 1
        self.failed += failed
        self.http_errors += http_error
        if bucket is not None:
            self.buckets[bucket] += 1


class Ring:
    """Slots of `width` seconds covering the last `count` of them; old slots are reused in place."""

    def __init__(self, width: int, count: int) -> None:
        self.width = width
        self.slots = [Slot() for _ in range(count)]

    def slot(self, now: float) -> Slot:
        start = int(now) // self.width * self.width
        slot = self.slots[start // self.width % len(self.slots)]
        if slot.start != start:
            slot.start, slot.finished, slot.failed, slot.http_errors = start, 0, 0, 0
            slot.buckets = [0] * (len(BOUNDS_MS) + 1)
        return slot

    def recent(self, now: float) -> list[Slot]:
        """The slots still inside the window, oldest first."""
        oldest = int(now) // self.width * self.width - (len(self.slots) - 1) * self.width
        return sorted((s for s in self.slots if s.start >= oldest), key=lambda s: s.start)


class LiveStats:
    """Counts finished jobs as the event hub accepts their changes; `snapshot` is the websocket message."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.minutes = Ring(60, MINUTES)
        self.seconds = Ring(1, 60)
        self.hosts: OrderedDict[str, Ring] = OrderedDict()

    def record(self, task: Task) -> None:
        """Count a task that just finished (other changes are ignored)."""
        if task.status not in FINISHED or task.finished_at is None:
            return
        failed = task.status == FAILED
        http_error = task.status == COMPLETED and (task.http_status or 0) >= 400
        bucket = None
        if task.started_at is not None and task.status != "cancelled":
            bucket = bisect.bisect_left(BOUNDS_MS, max(0.0, (task.finished_at - task.started_at) * 1000))
        at = task.finished_at
        self.minutes.slot(at).add(failed, http_error, bucket)
        self.seconds.slot(at).add(failed, http_error, bucket)
        ring = self.hosts.get(task.host)
        if ring is None:
            ring = self.hosts[task.host] = Ring(60, MINUTES)
            if len(self.hosts) > MAX_HOSTS:
                self.hosts.popitem(last=False)
        else:
            self.hosts.move_to_end(task.host)
        ring.slot(at).add(failed, http_error, bucket)

    def snapshot(self) -> dict[str, Any]:
        """The `{"type": "stats"}` message: the last minute, a series per minute, and the busiest hosts."""
        now = self.clock()
        last_minute = _total(self.seconds.recent(now))
        series = [{"t": iso(s.start), **_figures(s)} for s in self.minutes.recent(now)]
        hosts = []
        for host, ring in self.hosts.items():
            total = _total(ring.recent(now))
            if total.finished:
                hosts.append({"host": host, **_figures(total)})
        hosts.sort(key=lambda h: -h["finished"])
        return {
            "type": "stats", "at": iso(now), "window_seconds": MINUTES * 60,
            "last_minute": {**_figures(last_minute), "finished_per_s": round(last_minute.finished / 60, 2)},
            "per_minute": series, "hosts": hosts[:SHOWN_HOSTS], "hosts_seen": len(hosts),
        }


def _total(slots: list[Slot]) -> Slot:
    out = Slot(start=0)
    for slot in slots:
        out.finished += slot.finished
        out.failed += slot.failed
        out.http_errors += slot.http_errors
        out.buckets = [a + b for a, b in zip(out.buckets, slot.buckets, strict=True)]
    return out


def _figures(slot: Slot) -> dict[str, Any]:
    rate = (slot.failed + slot.http_errors) / slot.finished if slot.finished else 0.0
    return {"finished": slot.finished, "failed": slot.failed, "http_errors": slot.http_errors,
            "error_rate": round(rate, 4), "p50_ms": _percentile(slot.buckets, 0.5),
            "p95_ms": _percentile(slot.buckets, 0.95)}


def _percentile(buckets: list[int], q: float) -> int | None:
    """The upper bound of the bucket holding the q-th fetch time (None without any)."""
    total = sum(buckets)
    if not total:
        return None
    seen = 0
    for index, n in enumerate(buckets):
        seen += n
        if seen >= q * total:
            return BOUNDS_MS[index] if index < len(BOUNDS_MS) else BOUNDS_MS[-1] * 2
    return None
