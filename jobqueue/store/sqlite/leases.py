"""SQLite's side of a claimed job's lease: claim, renew, give back, and record the attempt's outcome."""

from __future__ import annotations

import asyncio
import logging
import secrets
import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING

from jobqueue.history.codec import Packed, digest
from jobqueue.models import Result, Task, TaskError
from jobqueue.store.base import Lease
from jobqueue.store.sqlite import host_scan as sqlite_host_scan
from jobqueue.store.sqlite import slots
from jobqueue.store.sqlite.bodies import insert_result, result_values
from jobqueue.store.sqlite.claims import Claim
from jobqueue.store.sqlite.crawl_pages import insert_pages
from jobqueue.store.sqlite.readable import keep_views
from jobqueue.store.sqlite.schema import RESULT_COLUMNS, task_from_row
from jobqueue.store.sqlite.thread import T
from jobqueue.store.sqlite.transitions import follow, leased, move_jobs, update_jobs
from jobqueue.store.transitions import COMPLETE, FAIL, RELEASE, RESCHEDULE, Given, Transition
from jobqueue.store.views import pack_views
from jobqueue.webhooks.outbox import Outbox

log = logging.getLogger("jobqueue.store")


class SQLiteLeaseOps:
    """claim, extend, release, complete(_many), reschedule and fail of SQLiteStore: every write is guarded by
    the lease token, so an attempt whose lease was lost (cancelled, or taken over) changes nothing.

    Claims and attempt outcomes are written with `durable=False` (thread.py): a power cut may undo them, and the
    job is then claimed and fetched again, as after any lost attempt. A hand-back (release) stays durable."""

    clock: Callable[[], float]
    outbox: Outbox | None
    url_changed: Callable[[Task, str], None] | None
    _host_cursor: sqlite_host_scan.Cursor | None = None  # where this store's last claim stopped reading past full hosts

    if TYPE_CHECKING:  # provided by SQLiteStore
        async def _write(self, fn: Callable[[sqlite3.Connection], T], durable: bool = True) -> T: ...

    async def claim(self, limit: int, lease_seconds: float, exclude_hosts: list[str],
                    per_host: int | None = None, ended: list[Lease] | None = None,
                    rendered: bool = False, host_delay: float = 0.0) -> list[Task]:
        """Take due tasks (higher priority, then older due time, first), including tasks whose lease ran out, in
        one write; with `per_host`, each takes one of its host's slots and hosts with none left are passed over,
        as are hosts their policies hold back (sqlite/hosts.py). The host slots of `ended` are freed first, in the
        same write. Only jobs of one kind: rendered or not."""
        if limit <= 0 and not ended:
            return []
        token = secrets.token_hex(8)
        if self._host_cursor is None:
            self._host_cursor = sqlite_host_scan.Cursor()
        cursor = self._host_cursor

        def take(conn: sqlite3.Connection) -> list[sqlite3.Row]:
            if ended:
                slots.free(conn, slots.HOST, ended)
            if limit <= 0:
                return []
            # the time once the write lock is held, not before waiting for it: a paced host's next start counts
            # from when its job is taken, or a claim that waited would let the next start come too soon
            now = self.clock()
            claim = Claim(token, now, now + lease_seconds, cursor, rendered)
            return claim.take(conn, limit, exclude_hosts, per_host, host_delay)

        rows = await self._write(take, durable=False)
        rows = sorted(rows, key=lambda r: (-r["priority"], r["seq"]))
        return [task_from_row(r) for r in rows]

    async def free_slots(self, leases: list[Lease]) -> None:
        """The requests of these leases are over: their hosts' slots go to the next claims."""
        if leases:
            await self._write(lambda conn: slots.free(conn, slots.HOST, leases), durable=False)

    async def extend(self, leases: list[Lease], lease_seconds: float) -> list[str]:
        """Renew leases still held, and the host slots they hold; report the ones another claim or a cancel took
        away."""
        if not leases:
            return []
        now = self.clock()

        def renew(conn: sqlite3.Connection) -> list[str]:
            lost = []
            for lease in leases:
                cur = conn.execute(
                    "UPDATE jobs SET available_at = ? WHERE id = ? AND lease_token = ? AND status = 'running'",
                    (now + lease_seconds, lease.task_id, lease.token),
                )
                if cur.rowcount == 0:
                    lost.append(lease.task_id)
            # a lost lease's request may still be under way: its slot lives until the worker stops it
            slots.renew(conn, slots.HOST, leases, now + lease_seconds)
            return lost

        return await self._write(renew, durable=False)

    async def release(self, leases: list[Lease]) -> list[Task]:
        """Hand tasks back as queued, due now, without counting the interrupted attempt; free their host slots."""
        if not leases:
            return []
        now = self.clock()

        def give_back(conn: sqlite3.Connection) -> list[Task]:
            out = []
            for lease in leases:
                out += move_jobs(conn, RELEASE, leased(RELEASE), (lease.task_id, lease.token), Given(now), None)
            slots.free(conn, slots.HOST, leases)
            return out

        return await self._write(give_back)

    async def complete(self, lease: Lease, result: Result) -> Task | None:
        """Mark completed and store the result (its body once per sha256) in one transaction, only under a
        live lease; a recurring job's next run is queued in the same transaction."""
        now = self.clock()
        views = await _packed_views(result)
        values = result_values(lease.task_id, result)
        done = await self._write(lambda conn: self._complete_one(conn, lease, result, values, now, views=views),
                                 durable=False)
        return self._completed(done)

    async def complete_many(self, completions: list[tuple[Lease, Result]], digests_checked: bool = False
                            ) -> list[Task | Exception | None]:
        """Several completions as one write (one savepoint and one answer from the writer thread instead of one
        each), each exactly as `complete` writes it and answered only once committed. If any of them fails, the
        group is undone and each is written alone, so a bad result fails only itself; the answer for each is
        its task (None: the lease was lost) or its exception. With `digests_checked` the caller vouches that each
        result's sha256 is its body's digest (the workers take it once, from the response), so the writer thread,
        which every job waits for, does not hash the bodies again."""
        now = self.clock()
        views = [await _packed_views(result) for _lease, result in completions]

        def complete_all(conn: sqlite3.Connection) -> list[tuple[Task, str | None] | None]:
            return [self._complete_one(conn, lease, result, row, now, digests_checked, packed)
                    for (lease, result), row, packed in zip(completions, values, views, strict=True)]

        try:
            values = [result_values(lease.task_id, result) for lease, result in completions]
            group = await self._write(complete_all, durable=False)
        except Exception:
            alone = await asyncio.gather(*(self.complete(lease, result) for lease, result in completions),
                                         return_exceptions=True)
            return [_as_outcome(outcome) for outcome in alone]
        return [self._completed(done) for done in group]

    def _complete_one(self, conn: sqlite3.Connection, lease: Lease, result: Result, values: tuple[object, ...],
                      now: float, digest_checked: bool = False, views: Packed | None = None
                      ) -> tuple[Task, str | None] | None:
        """In the writer thread: the lease-guarded update, the result and its body (and the body's readable views
        its worker computed), the schedule's next run, the outbox; the body is keyed by its digest, taken here
        unless the caller vouches for result.sha256."""
        moved = update_jobs(conn, COMPLETE, leased(COMPLETE), (lease.task_id, lease.token),
                            Given(now, http_status=result.http_status))
        if not moved:
            return None
        if result.body is None:
            sha256 = None
        else:
            sha256 = result.sha256 if digest_checked else digest(result.body)
        insert_result(conn, RESULT_COLUMNS, values, result, sha256)
        if views is not None and sha256 is not None:
            keep_views(conn, sha256, views, now)
        if result.crawl_links is not None and moved[0].crawl_id is not None:  # before follow(): it may finish
            insert_pages(conn, moved[0].crawl_id, result.crawl_links, now)
        return moved[0], follow(conn, COMPLETE, moved, now, self.outbox, result.compared_key(sha256))

    def _completed(self, done: tuple[Task, str | None] | None) -> Task | None:
        """After the commit: tell the url_changed hook about a recurring fetch whose body changed."""
        if done is None:
            return None
        task, changed_from = done
        if changed_from is not None and self.url_changed is not None:
            try:
                self.url_changed(task, changed_from)
            except Exception:  # committed already: a listener's bug must not report the completion as failed
                log.exception("the url.changed listener failed for task %s", task.id)
        return task

    async def reschedule(self, lease: Lease, at: float, error: TaskError, http_status: int | None) -> Task | None:
        """Queue again for `at`, keeping the last error visible; only under a live lease."""
        return await self._finish_attempt(RESCHEDULE, lease, Given(self.clock(), at=at, http_status=http_status,
                                                                 error=error))

    async def fail(self, lease: Lease, error: TaskError, http_status: int | None) -> Task | None:
        """Mark failed for good; only under a live lease."""
        return await self._finish_attempt(FAIL, lease, Given(self.clock(), http_status=http_status, error=error))

    async def _finish_attempt(self, move: Transition, lease: Lease, given: Given) -> Task | None:
        moved = await self._write(
            lambda conn: move_jobs(conn, move, leased(move), (lease.task_id, lease.token), given, self.outbox),
            durable=False)
        return moved[0] if moved else None


async def _packed_views(result: Result) -> Packed | None:
    """The views a job with `formats` computed before completing, compressed before the write (off the writer)."""
    return None if result.views is None else await pack_views(result.sha256, result.views)


def _as_outcome(outcome: Task | BaseException | None) -> Task | Exception | None:
    """One answer of gather(return_exceptions=True), with a cancellation passed on rather than returned."""
    if isinstance(outcome, BaseException) and not isinstance(outcome, Exception):
        raise outcome
    return outcome
