"""SQLite's slots: how many requests may be in flight at once to one host (or webhook endpoint), counted in
the database, so the limit holds across every process on the file.

A slot is a row of `slots` (migration 9): the scope (`host` or `endpoint`), the key (the host name, or
the endpoint), the holder (the job or delivery id) and the holder's lease token and expiry. A claim
counts the live rows of a key and takes one for each job it starts, in its own write transaction, so
two processes can never both take the last slot. A row is one request, keyed by its holder and lease
token: a job cancelled and retried while its first request still runs (its worker learns of the cancel
at its next heartbeat, in another process) holds two rows, one per request, as MongoDB's numbered slot
documents do. The holder gives its slot back when its request is over (the token guards against a
stale holder freeing a newer one), renews it with its lease, and a holder that died frees it when its
lease runs out.

A host's own policy (its max_concurrency, a pause, a minimum delay between starts, a Retry-After) comes from
the `hosts` table (sqlite/hosts.py `Pacing`): `Rooms` asks it each host's limit, and which hosts may start
nothing now.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING

from jobqueue.store.base import Lease

if TYPE_CHECKING:
    from jobqueue.store.sqlite.hosts import Pacing

HOST = "host"
ENDPOINT = "endpoint"

V9_SLOTS = """
-- One row per request in flight to a host (or a webhook endpoint), held under its job's (delivery's)
-- lease: claims count them, so --per-host and --webhook-concurrency hold across processes.
CREATE TABLE slots (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    holder TEXT NOT NULL,
    token TEXT NOT NULL,
    expires_at REAL NOT NULL,
    PRIMARY KEY (scope, holder, token)
) WITHOUT ROWID;
CREATE INDEX slots_by_key ON slots(scope, key);
CREATE INDEX slots_by_expiry ON slots(expires_at);
-- A claim that finds the first due jobs all of full hosts looks for the others host by host (sqlite_claims.py).
CREATE INDEX jobs_due_by_host ON jobs(host, priority DESC, available_at) WHERE status IN ('queued', 'running');
"""


class Rooms:
    """Inside a write transaction: how many more requests each key of a scope may start now."""

    def __init__(self, conn: sqlite3.Connection, scope: str, limit: int, now: float,
                 pacing: Pacing | None = None) -> None:
        conn.execute("DELETE FROM slots WHERE expires_at <= ?", (now,))  # their holders died
        self.scope = scope
        self.limit = limit
        self.pacing = pacing
        self.held: Counter[str] = Counter(dict(conn.execute(
            "SELECT key, COUNT(*) FROM slots WHERE scope = ? GROUP BY key", (scope,)).fetchall()))

    def _limit(self, key: str) -> int:
        return self.limit if self.pacing is None else self.pacing.limit(key)

    def full(self) -> list[str]:
        """The keys with no slot left (or, for hosts, that may start nothing now)."""
        full = {key for key, n in self.held.items() if n >= self._limit(key)}
        return sorted(full if self.pacing is None else full | self.pacing.blocked)

    def room(self, key: str) -> int:
        """How many more requests `key` may start (one at most for a paced host)."""
        pacing = self.pacing
        if pacing is None:
            return max(0, self.limit - self.held[key])
        if pacing.waits(key):
            return 0
        left = max(0, pacing.limit(key) - self.held[key])
        return min(left, 1) if pacing.delay(key) > 0 else left

    def take(self, key: str) -> bool:
        """Count one more request for `key` if it has room (written by `hold`)."""
        if self.room(key) <= 0:
            return False
        self.held[key] += 1
        if self.pacing is not None:
            self.pacing.started(key)
        return True


def hold(conn: sqlite3.Connection, scope: str, holders: Iterable[tuple[str, str]], token: str,
         expires_at: float) -> None:
    """Write the slots taken for (holder, key) pairs under the claim's token; a slot the holder's earlier request
    holds stays until that request ends (or its lease runs out)."""
    conn.executemany("INSERT INTO slots (scope, key, holder, token, expires_at) VALUES (?, ?, ?, ?, ?)",
                     [(scope, key, holder, token, expires_at) for holder, key in holders])


def free(conn: sqlite3.Connection, scope: str, leases: Iterable[Lease]) -> None:
    """Give back the slots these leases hold (a slot another lease of the same holder took is left alone)."""
    conn.executemany("DELETE FROM slots WHERE scope = ? AND holder = ? AND token = ?",
                     [(scope, lease.task_id, lease.token) for lease in leases])


def renew(conn: sqlite3.Connection, scope: str, leases: Iterable[Lease], expires_at: float) -> None:
    """Push the expiry of the slots these leases hold, as their leases are renewed."""
    conn.executemany("UPDATE slots SET expires_at = ? WHERE scope = ? AND holder = ? AND token = ?",
                     [(expires_at, scope, lease.task_id, lease.token) for lease in leases])
