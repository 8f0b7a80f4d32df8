"""SQLite's per-host pacing (jobqueue/hosts.py): the `hosts` table, what a claim reads of it, and GET/PUT /hosts.

A row is a host with a policy (max_concurrency, min_delay_ms, paused) or a next allowed start time still to come
(its delay after a fetch started, or a Retry-After). Rows of neither are deleted by the next claim, so the table
holds the hosts with a policy and those paced right now, whatever the queue holds. A claim reads those rows
(`Pacing`, in its write transaction, so every process on the file shares one budget), and moves the next start
time of each paced host it takes a job of.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING

from jobqueue.hosts import HOLD_MAX, RECENT, HostInfo, HostPolicy, PolicyChange, changed
from jobqueue.live_stats import MINUTE
from jobqueue.models import Page
from jobqueue.store.sqlite.thread import T

UNLIMITED = 1 << 30  # a claim without --per-host: only a host's own max_concurrency limits it

# Migration 17. Never edited once released.
V17_HOSTS = """
-- A host's pacing policy and its next allowed fetch start, shared by every process's claims (sqlite/hosts.py).
CREATE TABLE hosts (
    host TEXT PRIMARY KEY,
    max_concurrency INTEGER,
    min_delay_ms INTEGER,
    paused INTEGER NOT NULL DEFAULT 0,
    next_start_at REAL NOT NULL DEFAULT 0,
    updated_at REAL NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX hosts_by_next_start ON hosts(next_start_at);
CREATE INDEX hosts_with_policy ON hosts(host)
    WHERE max_concurrency IS NOT NULL OR min_delay_ms IS NOT NULL OR paused != 0;
"""

_POLICY = "max_concurrency IS NOT NULL OR min_delay_ms IS NOT NULL OR paused != 0"
_COLUMNS = "host, max_concurrency, min_delay_ms, paused, next_start_at"
_SWEEP = ("DELETE FROM hosts WHERE next_start_at <= ? AND max_concurrency IS NULL AND min_delay_ms IS NULL"
          " AND paused = 0")
_POLICIES = f"SELECT {_COLUMNS} FROM hosts INDEXED BY hosts_with_policy WHERE {_POLICY}"
_WAITING = "SELECT host FROM hosts INDEXED BY hosts_by_next_start WHERE next_start_at > ? LIMIT ?"
WAITING_READ = 256  # waiting hosts a claim reads whole; beyond, it looks up each host it meets
_START = ("INSERT INTO hosts (host, next_start_at, updated_at) VALUES (?, ?, ?) ON CONFLICT (host) DO UPDATE SET"
          " next_start_at = MAX(next_start_at, excluded.next_start_at), updated_at = excluded.updated_at")
_SET = ("INSERT INTO hosts (host, max_concurrency, min_delay_ms, paused, next_start_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (host) DO UPDATE SET max_concurrency = excluded.max_concurrency,"
        " min_delay_ms = excluded.min_delay_ms, paused = excluded.paused, updated_at = excluded.updated_at")
# a host's unfinished jobs: the plain ones counted on the claim's host index alone, the rendered ones (few) and
# the running ones (at most the workers' slots, and leases run out) read whole
_PLAIN = ("FROM jobs INDEXED BY jobs_due_by_host WHERE status IN ('queued', 'running') AND render IS NULL")
_RENDERED = ("FROM jobs INDEXED BY jobs_due_rendered WHERE status IN ('queued', 'running') AND render IS NOT NULL")
_COUNTS = (f"SELECT (SELECT COUNT(*) {_PLAIN} AND host = ?1) + (SELECT COUNT(*) {_RENDERED} AND host = ?1),"
           " (SELECT COUNT(*) FROM jobs INDEXED BY jobs_by_status WHERE status = 'running' AND host = ?1)")
# the hosts of unfinished jobs after a name, one index seek each (a skip scan), however many jobs each has
_HOSTS_AFTER = (
    f"WITH RECURSIVE h(host) AS (SELECT (SELECT host {_PLAIN} AND host > ?1 ORDER BY host LIMIT 1)"
    f" UNION ALL SELECT (SELECT host {_PLAIN} AND host > h.host ORDER BY host LIMIT 1) FROM h"
    " WHERE h.host IS NOT NULL)"
    " SELECT host FROM h WHERE host IS NOT NULL AND instr(host, ?2) > 0 LIMIT ?3")
_RENDERED_HOSTS = f"SELECT DISTINCT host {_RENDERED} AND host > ?1 AND instr(host, ?2) > 0 ORDER BY host LIMIT ?3"

class Pacing:
    """Inside a claim's write transaction: each host's limit and delay, the hosts that may not start a fetch now,
    and the starts this claim makes (written by `record`).

    The hosts with a policy are read whole (few: users set them). So are the hosts waiting for their next start
    while there are at most WAITING_READ of them; beyond that (every host paced by --host-delay, thousands started
    within a delay) a host met by the claim is looked up by its name once, so a claim reads the rows of the hosts
    it meets, not of every host started within the last delay."""

    def __init__(self, conn: sqlite3.Connection, per_host: int | None, host_delay: float, now: float) -> None:
        self.conn = conn
        self.per_host = UNLIMITED if per_host is None else per_host
        self.host_delay = host_delay
        self.now = now
        self.limits: dict[str, int] = {}
        self.delays: dict[str, float] = {}
        self.blocked: set[str] = set()  # paused, or their next start time has not come: known to start nothing
        self.free: set[str] = set()  # looked up, and may start
        self.starts: dict[str, float] = {}
        conn.execute(_SWEEP, (now,))
        policies = conn.execute(_POLICIES).fetchall()
        for host, most, delay_ms, paused, next_start_at in policies:
            if most is not None:
                self.limits[host] = most
            if delay_ms is not None:
                self.delays[host] = delay_ms / 1000
            if paused or next_start_at > now:
                self.blocked.add(host)
        waiting = conn.execute(_WAITING, (now, WAITING_READ + 1)).fetchall()
        self.blocked.update(host for (host,) in waiting[:WAITING_READ])
        self.complete = len(waiting) <= WAITING_READ  # every waiting host is in `blocked`
        self.active = per_host is not None or host_delay > 0 or bool(policies) or bool(waiting)

    def waits(self, host: str) -> bool:
        """Whether the host may start nothing now (paused, its next start time to come, or started by this
        claim with a delay)."""
        if host in self.blocked:
            return True
        if self.complete or host in self.free:
            return False
        row = self.conn.execute("SELECT next_start_at FROM hosts WHERE host = ?", (host,)).fetchone()
        if row is not None and row[0] > self.now:
            self.blocked.add(host)
            return True
        self.free.add(host)
        return False

    def limit(self, host: str) -> int:
        """Fetches the host may have in flight."""
        return self.limits.get(host, self.per_host)

    def delay(self, host: str) -> float:
        """Seconds between two fetch starts at the host."""
        return self.delays.get(host, self.host_delay)

    def started(self, host: str) -> None:
        """This claim starts a fetch at the host: a paced host starts no other one before its delay is over."""
        delay = self.delay(host)
        if delay > 0:
            self.starts[host] = self.now + delay
            self.blocked.add(host)

    def record(self, conn: sqlite3.Connection) -> None:
        """Write the next start time of each paced host this claim took a job of."""
        if self.starts:
            conn.executemany(_START, [(host, at, self.now) for host, at in self.starts.items()])


def _policy_of(conn: sqlite3.Connection, host: str) -> tuple[HostPolicy, float] | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM hosts WHERE host = ?", (host,)).fetchone()
    if row is None:
        return None
    return HostPolicy(row[1], row[2], bool(row[3])), row[4]


def _info(conn: sqlite3.Connection, host: str, now: float) -> HostInfo | None:
    kept = _policy_of(conn, host)
    unfinished, running = conn.execute(_COUNTS, (host,)).fetchone()
    policy, next_start_at = kept or (HostPolicy(), 0.0)
    if policy.is_default and next_start_at <= now and not unfinished:
        return None
    finished, failed, errors = conn.execute(
        "SELECT SUM(finished), SUM(failed), SUM(http_errors) FROM stats_slots WHERE width = ? AND host = ?"
        " AND start >= ?", (MINUTE, host, int(now) - RECENT)).fetchone()
    return HostInfo(host, policy, next_start_at or None, max(unfinished - running, 0), running, finished or 0,
                    failed or 0, errors or 0)


def _hosts_after(conn: sqlite3.Connection, after: str, q: str, limit: int, now: float) -> list[str]:
    """The first `limit` hosts after `after` that have unfinished jobs, a policy or a next start time to come,
    containing `q`."""
    with_jobs = [row[0] for query in (_HOSTS_AFTER, _RENDERED_HOSTS) for row in conn.execute(query, (after, q, limit))]
    kept = [row[0] for row in conn.execute(f"SELECT host FROM hosts WHERE host > ? AND instr(host, ?) > 0 AND"
                                           f" ({_POLICY} OR next_start_at > ?) ORDER BY host LIMIT ?",
                                           (after, q, now, limit))]
    return sorted(set(with_jobs) | set(kept))[:limit]


class SQLiteHostOps:
    """get_host, list_hosts, set_host_policy and hold_host of SQLiteStore."""

    clock: Callable[[], float]

    if TYPE_CHECKING:  # provided by SQLiteStore
        async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T: ...
        async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T: ...

    async def get_host(self, host: str) -> HostInfo | None:
        """The host's policy, next start time, unfinished jobs and recent outcomes; None when it has no policy and
        no unfinished job."""
        now = self.clock()
        return await self._read(lambda conn: _info(conn, host, now))

    async def list_hosts(self, q: str | None, limit: int, cursor: str | None) -> Page:
        """Hosts with unfinished jobs or a policy, by name, a page at a time; `q` keeps those containing it."""
        now = self.clock()

        def read(conn: sqlite3.Connection) -> Page:
            names = _hosts_after(conn, cursor or "", q or "", limit + 1, now)
            items = [info for name in names[:limit] if (info := _info(conn, name, now)) is not None]
            return Page(items, names[limit - 1] if len(names) > limit else None)

        return await self._read(read)

    async def set_host_policy(self, host: str, max_concurrency: int | None, min_delay_ms: int | None,
                              paused: bool | None, keep: tuple[str, ...] = ()) -> HostInfo:
        """Set a host's policy: None resets a field to the server's default, a field named in `keep` stays."""
        now = self.clock()
        change = PolicyChange(max_concurrency, min_delay_ms, paused, keep)

        def write(conn: sqlite3.Connection) -> HostInfo:
            policy, next_start_at = _policy_of(conn, host) or (HostPolicy(), 0.0)
            new = changed(policy, change)
            conn.execute(_SET, (host, new.max_concurrency, new.min_delay_ms, int(new.paused), next_start_at, now))
            info = _info(conn, host, now) or HostInfo(host, new)
            if new.is_default and next_start_at <= now:  # nothing left to keep
                conn.execute("DELETE FROM hosts WHERE host = ?", (host,))
            return info

        return await self._write(write)

    async def hold_host(self, host: str, until: float) -> None:
        """No fetch of the host starts before `until` (at most HOLD_MAX from now); a later time kept stays."""
        now = self.clock()
        at = min(until, now + HOLD_MAX)
        await self._write(lambda conn: conn.execute(_START, (host, at, now)) and None)
