"""SQLite's read past full hosts' backlogs (jobqueue/store/sqlite/host_scan.py), with its per-claim bounds made
tiny, so that what holds for a few hosts here holds for many thousands: each claim reads on from where the last
one stopped, steps over full hosts, goes on after a group of jobs none of which is due, and comes round to the
start, so every due job of a host with a free slot is claimed within a bounded number of claims."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest

from jobqueue.models import TaskIds
from jobqueue.spec import JobSpec
from jobqueue.store.base import NewTask
from jobqueue.store.sqlite import host_scan as sqlite_host_scan
from jobqueue.store.sqlite.store import SQLiteStore
from tests.store_backends import FakeClock

LEASE = 30.0
IDS = TaskIds()


def jobs(n: int, host: str, priority: int = 0, not_before: float | None = None) -> list[NewTask]:
    spec = JobSpec(priority=priority, not_before=not_before)
    return [NewTask(IDS.new(), f"https://{host}/{i}", host, spec) for i in range(n)]


@pytest.fixture
def tiny_reads(monkeypatch: Any) -> None:
    monkeypatch.setattr(sqlite_host_scan, "FIRST_READ", 2)
    monkeypatch.setattr(sqlite_host_scan, "ENTRIES_MAX", 5)
    monkeypatch.setattr(sqlite_host_scan, "READS_MAX", 3)


@pytest.mark.gen_test
async def test_every_due_job_of_a_host_with_room_is_reached_in_a_bounded_number_of_claims(tmp_path, tiny_reads):
    clock = FakeClock()
    store = SQLiteStore(str(tmp_path / "scan.db"), synchronous="NORMAL", clock=clock)
    await store.open()
    try:
        later = clock() + 3600
        for host in ("f1.test", "m-full.test", "w-full.test"):  # three crawls, each with its one slot taken
            await store.add(jobs(30, host, priority=5))
        full = {t.host for t in await store.claim(3, LEASE, [], per_host=1)}
        assert full == {"f1.test", "m-full.test", "w-full.test"}
        for i in range(40):  # hosts with nothing due, before and after the others
            await store.add(jobs(1, f"{'a' if i < 20 else 'x'}{i:02d}.test", not_before=later))
        # a due job behind a long group of its host's jobs that wait for later, at a higher priority
        await store.add(jobs(20, "k.test", priority=3, not_before=later))
        wanted = await store.add(jobs(1, "k.test") + jobs(1, "b.test") + jobs(1, "n.test", priority=1)
                                 + jobs(1, "z.test"))
        claimed = []
        for _ in range(40):
            claimed += await store.claim(1, LEASE, [], per_host=1)
        assert sorted(t.id for t in claimed) == sorted(t.id for t in wanted)
    finally:
        await store.close()


@pytest.mark.gen_test
async def test_a_claim_that_reads_everything_takes_the_best_jobs_in_priority_order(tmp_path):
    clock = FakeClock()
    store = SQLiteStore(str(tmp_path / "scan.db"), synchronous="NORMAL", clock=clock)
    await store.open()
    try:
        await store.add(jobs(200, "crawl.test", priority=5))
        assert [t.host for t in await store.claim(1, LEASE, [], per_host=1)] == ["crawl.test"]
        low, old, new, high = (await store.add(jobs(2, "a-low.test", priority=-1)), await store.add(jobs(1, "b.test")),
                               await store.add(jobs(1, "a.test")), await store.add(jobs(1, "z-high.test", priority=2)))
        got = await store.claim(3, LEASE, [], per_host=1)
        assert [t.host for t in got] == ["z-high.test", "b.test", "a.test"]
        assert [t.id for t in got] == [high[0].id, old[0].id, new[0].id]
        assert [t.id for t in await store.claim(3, LEASE, [], per_host=1)] == [low[0].id]
    finally:
        await store.close()


@pytest.mark.gen_test
@pytest.mark.parametrize("seed", range(6))
async def test_claims_in_a_row_take_every_host_with_room_up_to_its_limit(tmp_path, tiny_reads, seed):
    """Hosts of every shape (full crawls, jobs at several priorities, some due and some for later) in random order:
    claims in a row, each reading a few entries, end up holding each host's limit of its due jobs, and never a job
    not due or one over a host's limit."""
    rng = random.Random(seed)
    clock = FakeClock()
    store = SQLiteStore(str(tmp_path / "scan.db"), synchronous="NORMAL", clock=clock)
    await store.open()
    try:
        later = clock() + 3600
        for name in ("c1", "m5", "x9"):
            await store.add(jobs(40, f"{name}-crawl.test", priority=9))
        due: Counter[str] = Counter()
        for i in range(30):
            host = f"{rng.choice('abmnxz')}{i:02d}.test"
            for _ in range(rng.randint(1, 6)):
                is_due = rng.random() < 0.4
                await store.add(jobs(1, host, priority=rng.randint(-2, 8), not_before=None if is_due else later))
                due[host] += is_due
        held: Counter[str] = Counter()
        for _ in range(150):
            for task in await store.claim(rng.randint(1, 3), LEASE, [], per_host=2):
                assert task.available_at <= clock() + LEASE and (task.not_before or 0) < later
                held[task.host] += 1
        assert all(n <= 2 for n in held.values()), held
        expected = {host: min(n, 2) for host, n in due.items() if n}
        expected |= {f"{name}-crawl.test": 2 for name in ("c1", "m5", "x9")}
        assert dict(held) == expected
    finally:
        await store.close()
