"""SQLite's look past a full host's backlog: the due jobs of hosts with a free slot, read on the
`jobs_due_by_host` index (host, priority DESC, available_at) without reading the full hosts' jobs.

The index is read in stretches between the full hosts (a range each, so a full host's thousands of due
jobs are stepped over, not read), from where the store's last claim stopped (`Cursor`) on to the end
and round from the start, in reads of `FIRST_READ` entries and then twice as many each time, until the
due jobs found can fill the claim (once `FIRST_READ` entries are read), or `ENTRIES_MAX` entries or
`READS_MAX` reads. So what a claim reads
is bounded, and every host is reached within a few claims however many hosts sort before it, whether
their jobs are due or all wait for later (a recurring fetch's next run, a retry's backoff, not_before),
which a walk from the first host on every claim never got past. A host's due jobs come first in each of
its (host, priority) groups (they are ordered by due time), so a read that stops inside a group has seen
that group's due jobs, and the next read goes on after the group.

Priority order holds among the jobs a claim reads here, so among all of them while the hosts beyond the
full ones have fewer than `FIRST_READ` jobs queued or running; otherwise a host's better job further on
may wait for a later claim (a few: at most a round of the index).
"""

from __future__ import annotations

import sqlite3
from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Callable, Iterator
from itertools import pairwise

FIRST_READ = 256  # index entries in a claim's first read here (about 0.1 ms)
ENTRIES_MAX = 2000  # in all its reads (about 0.6 ms)
READS_MAX = 32  # reads in one claim (a read ends at each full host)
_ABOVE = 11  # above every priority (-10 to 10): (host, _ABOVE) is the place before all of a host's jobs
_BELOW = -11  # below every priority: (host, _BELOW) is the place after all of a host's jobs
_READ = ("WITH seen AS MATERIALIZED (SELECT seq, host, priority, available_at FROM jobs INDEXED BY jobs_due_by_host"
         " WHERE status IN ('queued', 'running') AND render IS NULL AND {where}"
         " ORDER BY host, priority DESC, available_at LIMIT ?)"
         " SELECT seq, host, priority, available_at FROM seen WHERE available_at <= ?"
         " UNION ALL SELECT NULL, host, priority, (SELECT count(*) FROM seen) FROM (SELECT host, priority FROM seen"
         " LIMIT 1 OFFSET (SELECT count(*) FROM seen) - 1)")

Place = tuple[str, int]  # after this (host, priority) group of the index
Due = tuple[int, str, int, float]  # a due job's seq, host, priority and due time
Stretch = tuple[str, tuple[object, ...], Place | None]  # a condition on the index, its arguments, the place after it


class Cursor:
    """Where a store's last claim stopped reading the index (None: at the start)."""

    def __init__(self) -> None:
        self.place: Place | None = None


def due_jobs(conn: sqlite3.Connection, cursor: Cursor, full: list[str], now: float,
             enough: Callable[[list[Due]], bool]) -> list[Due]:
    """The due jobs of hosts not in `full` that this claim reads, until `enough` of them are found; moves the cursor
    on to where the reading stopped."""
    due: list[Due] = []
    budget, size, reads = ENTRIES_MAX, FIRST_READ, 0
    stretches = deque(_stretches(cursor.place, sorted(set(full))))
    rows = conn.cursor()
    rows.row_factory = None  # plain tuples: a few times faster to build than sqlite3.Row
    while stretches:
        where, args, end = stretches.popleft()
        limit = min(size, budget)
        read, last = 0, end
        for seq, host, priority, value in rows.execute(_READ.format(where=where), (*args, limit, now)):
            if seq is not None:
                due.append((seq, host, priority, value))
            else:  # the last row: the last entry read, and how many were read
                read, last = value, (host, priority)
        budget, reads = budget - read, reads + 1
        if read == limit:  # the stretch may go on after this group
            assert last is not None  # a read of `limit` > 0 entries ends with the row naming its last group
            stretches.extendleft(reversed(_rest(last, where, args, end)))
            size *= 2
        cursor.place = last if read == limit else end
        if budget == 0 or reads == READS_MAX or (ENTRIES_MAX - budget >= FIRST_READ and enough(due)):
            return due
    cursor.place = None  # read all round: the next claim begins a round at the start
    return due


def _rest(place: Place, where: str, args: tuple[object, ...], end: Place | None) -> list[Stretch]:
    """What is left of a stretch after `place` (a group inside it)."""
    host, priority = place
    if where.startswith("host = "):  # a part of one host's groups
        return [(f"{where} AND priority < ?", (*args, priority), end)]
    high = end[0] if end is not None else None
    return [("host = ? AND priority < ?", (host, priority), (host, _BELOW)), *_between(host, high, [])]


def _stretches(place: Place | None, full: list[str]) -> Iterator[Stretch]:
    """The index from `place` to its end and then from its start round to `place`, as ranges that leave out the
    full hosts."""
    if place is None:
        yield from _between(None, None, full)
        return
    host, priority = place
    if host not in full:
        yield "host = ? AND priority < ?", (host, priority), (host, _BELOW)
    yield from _between(host, None, full)
    yield from _between(None, host, full)
    if host not in full:
        yield "host = ? AND priority >= ?", (host, priority), (host, _BELOW)


def _between(low: str | None, high: str | None, full: list[str]) -> Iterator[Stretch]:
    """The hosts strictly between `low` and `high` (None: no bound), in ranges split at the full hosts."""
    start = 0 if low is None else bisect_right(full, low)
    stop = len(full) if high is None else bisect_left(full, high)
    bounds: list[str | None] = [low, *full[start:stop], high]
    for above, below in pairwise(bounds):
        conditions, args = [], []
        if above is not None:
            conditions.append("host > ?")
            args.append(above)
        if below is not None:
            conditions.append("host < ?")
            args.append(below)
        yield " AND ".join(conditions) or "1", tuple(args), (below, _ABOVE) if below is not None else None
