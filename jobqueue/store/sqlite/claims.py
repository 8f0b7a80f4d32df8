"""SQLite's claim: which due jobs one write transaction takes, and under a per-host limit, their hosts' slots.

Without a limit, one UPDATE takes the first due jobs (higher priority, then older due time). With one
(sqlite_slots.py), the claim first reads a window of the first due jobs and keeps each whose host has a
slot left. When that window is all of full hosts (a crawl of one site: thousands of its pages due, its
slots all taken), the jobs beyond it are not read one by one: the due jobs of the other hosts are read on
the `jobs_due_by_host` index, stepping over the full hosts, a bounded part of it per claim, each claim
going on from where the store's last one stopped (sqlite_host_scan.py), and the best of them are taken.
So a claim costs about the same whether one host has ten due jobs or a million, and however many hosts
have jobs waiting for later, every host with a free slot and a due job is reached within a few claims.

A host's policy (sqlite/hosts.py `Pacing`) counts as the limit does: a paused host, or one whose next start
time has not come (a min_delay, a Retry-After), is a full host, and a paced host gets one job per claim, its
next start time moved in the same transaction.
"""

from __future__ import annotations

import sqlite3
from collections import Counter

from jobqueue.store.sqlite import host_scan as scan
from jobqueue.store.sqlite import slots
from jobqueue.store.sqlite.hosts import Pacing
from jobqueue.store.sqlite.rendered import PLAIN, RENDERED
from jobqueue.store.sqlite.schema import CLAIMABLE, JOB_COLUMNS
from jobqueue.store.sqlite.transitions import assignments
from jobqueue.store.transitions import CLAIM, Given

WINDOW_MIN = 64  # due jobs read past the number wanted, for hosts that fill up on the way (3 per job wanted)
WINDOW_MAX = 1024
# each kind of job on its own partial index (sqlite/rendered.py): the claims of one never read the other's
_INDEX = {False: f"jobs_due WHERE {CLAIMABLE} AND {PLAIN}", True: f"jobs_due_rendered WHERE {CLAIMABLE} AND {RENDERED}"}
_HEAD = "SELECT seq, host FROM jobs INDEXED BY {} ORDER BY priority DESC, available_at LIMIT ? OFFSET ?"


class Claim:
    """One claim's write: the jobs it takes, all under one lease token and expiry."""

    def __init__(self, token: str, now: float, until: float, cursor: scan.Cursor, rendered: bool = False) -> None:
        self.token, self.now, self.until, self.cursor, self.rendered = token, now, until, cursor, rendered
        self._due = _INDEX[rendered]
        clause, self._args = assignments(CLAIM, Given(now, token=token, until=until))
        self._take = f"UPDATE jobs SET {clause}"

    def take(self, conn: sqlite3.Connection, limit: int, exclude_hosts: list[str], per_host: int | None,
             host_delay: float = 0.0) -> list[sqlite3.Row]:
        """Take up to `limit` due jobs (skipping `exclude_hosts`); with `per_host`, only jobs whose host has a slot
        left, each taking one; only jobs of hosts their policies let start now (`host_delay`: the seconds between
        two starts at a host without a min_delay of its own)."""
        pacing = Pacing(conn, per_host, host_delay, self.now)
        if not pacing.active:
            exclude = f" AND host NOT IN ({','.join('?' * len(exclude_hosts))})" if exclude_hosts else ""
            sql = (f"{self._take} WHERE seq IN (SELECT seq FROM jobs INDEXED BY {self._due}"
                   f"{exclude} ORDER BY priority DESC, available_at LIMIT ?)"
                   f" RETURNING seq, {JOB_COLUMNS}")
            return conn.execute(sql, (*self._args, self.now, *exclude_hosts, limit)).fetchall()
        rooms = slots.Rooms(conn, slots.HOST, pacing.per_host, self.now, pacing)
        taken = self._paced(conn, rooms, limit, exclude_hosts)
        pacing.record(conn)
        return taken

    def _paced(self, conn: sqlite3.Connection, rooms: slots.Rooms, limit: int, exclude_hosts: list[str]
               ) -> list[sqlite3.Row]:
        """Take up to `limit` due jobs of hosts with room, each taking a slot of its host."""
        skip = set(exclude_hosts)
        chosen: list[int] = []
        read = 0
        # the first `limit` due jobs (usually all taken), then a window past them for hosts that filled up
        for upto in (limit, limit + min(max(3 * limit, WINDOW_MIN), WINDOW_MAX)):
            rows = conn.execute(_HEAD.format(self._due), (self.now, upto - read, read)).fetchall()
            read += len(rows)
            for seq, host in rows:
                if len(chosen) < limit and host not in skip and rooms.take(host):
                    chosen.append(seq)
            if len(chosen) == limit or read < upto or self.rendered:
                # all taken, or every due job was read; rendered jobs are few and slow: a window of them is enough
                return self._update(conn, chosen)
        taken = self._update(conn, chosen)
        return taken + self._update(conn, self._beyond(conn, rooms, skip, limit - len(taken)))

    def _beyond(self, conn: sqlite3.Connection, rooms: slots.Rooms, skip: set[str], want: int) -> list[int]:
        """The best `want` due jobs of hosts with a slot left among those this claim's read of the index finds."""
        def enough(due: list[scan.Due]) -> bool:
            found = Counter(host for _seq, host, _priority, _at in due)
            return sum(min(rooms.room(host), n) for host, n in found.items()) >= want

        due = scan.due_jobs(conn, self.cursor, [*rooms.full(), *skip], self.now, enough)
        chosen: list[int] = []
        for _priority, _at, seq, host in sorted((-priority, at, seq, host) for seq, host, priority, at in due):
            if len(chosen) == want:
                break
            if rooms.take(host):
                chosen.append(seq)
        return chosen

    def _update(self, conn: sqlite3.Connection, seqs: list[int]) -> list[sqlite3.Row]:
        """Mark the chosen jobs running under this claim's lease, and hold a slot of their host for each."""
        if not seqs:
            return []
        rows = conn.execute(f"{self._take} WHERE seq IN ({','.join('?' * len(seqs))}) RETURNING seq, {JOB_COLUMNS}",
                            (*self._args, *seqs)).fetchall()
        slots.hold(conn, slots.HOST, [(row["id"], row["host"]) for row in rows], self.token, self.until)
        return rows
