"""Live statistics for the dashboard: what finished and how long fetches took, counted in slots of time.

Each process counts only its own work here: the jobs it finished (their state changes it published)
and the fetch attempts its workers made. It keeps only what it has not yet added to the store;
jobqueue/shared_stats.py adds those counts to rows every process shares, and builds the figures
from the shared rows, so every process shows the same figures, the whole service's.

Slots are 10 s wide for the whole service (the last minute, as a sliding window), and a minute wide
for the whole service (kept a day) and for each host (kept an hour). Fetch times go into fixed
buckets, so p50 and p95 are the upper bound of the bucket they fall in, or the slowest fetch when
that is lower: never more than a fetch took.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from jobqueue.models import COMPLETED, FAILED, FINISHED, Task, iso

BOUNDS_MS = (5, 10, 20, 50, 100, 200, 300, 500, 750, 1000, 1500, 2000, 3000, 5000, 10000, 30000, 60000, 300000)
BUCKETS = len(BOUNDS_MS) + 1  # the last one holds fetches slower than every bound
SERVICE = ""  # the host of the slots that count the whole service
SECONDS, MINUTE, HOUR = 10, 60, 3600  # slot widths (SECONDS: the last minute's) and the hourly sums
KEEP = {(SECONDS, False): 2 * MINUTE, (MINUTE, False): 25 * HOUR, (MINUTE, True): HOUR + 5 * MINUTE}
SHOWN_HOSTS = 20
# Bounds on the hosts' rows (each costs every read of the host table): hosts counted per minute by one process,
# and host slots waiting for a flush (while the database is down). Beyond, a host's jobs count for the service only.
HOSTS_PER_MINUTE = 500
MAX_PENDING_HOST_SLOTS = 2000


@dataclass
class StatsSlot:
    """What finished, and the fetch times measured, within one slot of `width` seconds from `start`, for one
    host (or SERVICE). As a change to add to the store it holds counts; read back it holds totals."""

    width: int
    start: int
    host: str = SERVICE
    finished: int = 0
    failed: int = 0
    http_errors: int = 0
    max_ms: float = 0.0  # the slowest fetch
    buckets: list[int] = field(default_factory=lambda: [0] * BUCKETS)

    def merge(self, other: StatsSlot) -> None:
        """Add another slot's counts to this one's."""
        self.finished += other.finished
        self.failed += other.failed
        self.http_errors += other.http_errors
        self.max_ms = max(self.max_ms, other.max_ms)
        self.buckets = [a + b for a, b in zip(self.buckets, other.buckets, strict=True)]

    @property
    def key(self) -> tuple[int, str, int]:
        """The slot's identity in the store."""
        return self.width, self.host, self.start


def bucket_of(ms: float) -> int:
    """The index of the fetch-time bucket `ms` falls in."""
    return bisect.bisect_left(BOUNDS_MS, ms)


class LiveStats:
    """This process's counts not yet added to the store (jobqueue/shared_stats.py takes them)."""

    def __init__(self, clock: Callable[[], float] = time.time, fetch_timeout: float | None = None) -> None:
        self.clock = clock
        self.fetch_timeout = fetch_timeout  # the server's --fetch-timeout: the limit of a fetch whose job sets none
        self._pending: dict[tuple[int, str, int], StatsSlot] = {}
        self._host_slots = 0
        self._hosts_by_minute: dict[int, set[str]] = {}  # the hosts counted in each recent minute
        self.dropped = 0  # changes left out of their host's figures by the bounds (the service's still count them)

    def record(self, task: Task) -> None:
        """Count a task this process just finished (other changes are ignored)."""
        if task.status not in FINISHED or task.finished_at is None:
            return
        failed = task.status == FAILED
        http_error = task.status == COMPLETED and (task.http_status or 0) >= 400
        for slot in self._slots(task.host, task.finished_at):
            slot.finished += 1
            slot.failed += failed
            slot.http_errors += http_error

    def fetched(self, task: Task, seconds: float) -> None:
        """Count one fetch attempt of `task` that took `seconds` (the fetch itself, not the wait for a slot), at most
        its timeout: curl stops a fetch then, and what a busy event loop adds before the worker hears of it is not
        fetch time (a 2 s timeout read "p95 2.2 s" on a loaded machine)."""
        limit = (task.fetch.timeout or self.fetch_timeout) if task.render is None else None
        ms = min(seconds, limit) * 1000 if limit else seconds * 1000
        index = bucket_of(ms)
        for slot in self._slots(task.host, self.clock()):
            slot.buckets[index] += 1
            if ms > slot.max_ms:
                slot.max_ms = ms

    def _slots(self, host: str, at: float) -> list[StatsSlot]:
        """The pending slots a change at `at` counts in: the service's two widths, and its host's minute."""
        found = [self._slot(SECONDS, SERVICE, int(at)), self._slot(MINUTE, SERVICE, int(at))]
        hosted = self._host_slot(host or "?", int(at))
        if hosted is not None:
            found.append(hosted)
        return found

    def _slot(self, width: int, host: str, at: int) -> StatsSlot:
        key = (width, host, at // width * width)
        slot = self._pending.get(key)
        if slot is None:
            slot = self._pending[key] = StatsSlot(width, key[2], host)
        return slot

    def _host_slot(self, host: str, at: int, admitted: bool = False) -> StatsSlot | None:
        """A host's minute slot, unless HOSTS_PER_MINUTE other hosts are counted in that minute already, or too many
        host slots wait for the flush (None); `admitted`: a slot given back, whose host was counted then."""
        minute = at // MINUTE * MINUTE
        if not admitted:
            hosts = self._hosts_by_minute.get(minute)
            if hosts is None:
                hosts = self._hosts_by_minute[minute] = set()
                for old in [m for m in self._hosts_by_minute if m < minute - MINUTE]:
                    del self._hosts_by_minute[old]
            if host not in hosts:
                if len(hosts) >= HOSTS_PER_MINUTE:
                    self.dropped += 1
                    return None
                hosts.add(host)
        if (MINUTE, host, minute) not in self._pending:
            if self._host_slots >= MAX_PENDING_HOST_SLOTS:
                self.dropped += 1
                return None
            self._host_slots += 1
        return self._slot(MINUTE, host, at)

    def take(self) -> list[StatsSlot]:
        """The counts gathered since the last take, to add to the store; they are forgotten here."""
        taken = list(self._pending.values())
        self._pending.clear()
        self._host_slots = 0
        return taken

    def give_back(self, slots: list[StatsSlot]) -> None:
        """Keep counts the store did not take, to add at the next flush; those too old to be shown are dropped."""
        now = self.clock()
        for slot in slots:
            if slot.start + slot.width < now - KEEP[(slot.width, slot.host != SERVICE)]:
                continue
            mine = self._slot(slot.width, slot.host, slot.start) if slot.host == SERVICE else \
                self._host_slot(slot.host, slot.start, admitted=True)
            if mine is not None:
                mine.merge(slot)


def figures(slot: StatsSlot) -> dict[str, Any]:
    """A slot's figures as the `stats` message shows them."""
    rate = (slot.failed + slot.http_errors) / slot.finished if slot.finished else 0.0
    return {"finished": slot.finished, "failed": slot.failed, "http_errors": slot.http_errors,
            "error_rate": round(rate, 4), "p50_ms": percentile(slot, 0.5), "p95_ms": percentile(slot, 0.95)}


def percentile(slot: StatsSlot, q: float) -> int | None:
    """The upper bound of the bucket holding the q-th fetch time, or the slowest fetch if lower (None without any)."""
    total = sum(slot.buckets)
    if not total:
        return None
    slowest = max(1, round(slot.max_ms))
    seen = 0
    for index, n in enumerate(slot.buckets):
        seen += n
        if seen >= q * total:
            return min(BOUNDS_MS[index], slowest) if index < len(BOUNDS_MS) else slowest
    return slowest


def total(slots: list[StatsSlot]) -> StatsSlot:
    """The sum of several slots."""
    out = StatsSlot(0, 0)
    for slot in slots:
        out.merge(slot)
    return out


def stats_message(now: float, last_minute: list[StatsSlot], minutes: list[StatsSlot], hours: list[StatsSlot],
                  hosts: list[StatsSlot], hosts_seen: int) -> dict[str, Any]:
    """The `{"type": "stats"}` message: the last minute, a series per minute over the hour and per hour over the
    day, and the busiest hosts of the hour; slots with nothing in them are left out of the series."""
    last = total(last_minute)
    covered = max(1.0, now - (int(now) // SECONDS * SECONDS - (MINUTE - SECONDS)))
    return {
        "type": "stats", "at": iso(now), "window_seconds": HOUR, "scope": "service",
        "last_minute": {**figures(last), "finished_per_s": round(last.finished / covered, 2)},
        "per_minute": [{"t": iso(s.start), **figures(s)} for s in minutes if s.finished or any(s.buckets)],
        "per_hour": [{"t": iso(s.start), **figures(s)} for s in hours if s.finished or any(s.buckets)],
        "hosts": [{"host": s.host, **figures(s)} for s in hosts], "hosts_seen": hosts_seen,
    }


def windows(now: float) -> dict[str, int]:
    """Where each figure's window starts: the last minute's (10 s slots), the hour's and the day's (minute slots)."""
    second, minute, hour = (int(now) // w * w for w in (SECONDS, MINUTE, HOUR))
    return {"last_minute": second - (MINUTE - SECONDS), "hour": minute - (HOUR - MINUTE), "day": hour - 23 * HOUR}

