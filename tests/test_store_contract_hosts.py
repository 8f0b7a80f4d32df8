"""The store contract for per-host pacing: a host's policy is kept for every process on the database, a claim takes
a host's job only when the host has a free slot, is not paused and its next start time has come, a paced host gets
one job per claim and its next start time moves by its delay, a Retry-After holds back every job of the host, and
GET /hosts lists hosts with their jobs counted, a page at a time.

Runs on every backend (a real SQLite file; MongoDB through the mongomock-motor mock; a real MongoDB when
JOBQUEUE_TEST_MONGODB_URL is set), like tests/test_store_contract.py, which holds the closed-store checks.
"""

from __future__ import annotations

import asyncio

import pytest

from jobqueue.hosts import HOLD_MAX, HostPolicy
from jobqueue.store.base import Lease
from tests.test_store_contract import LEASE, new_tasks, result_for


@pytest.mark.gen_test
async def test_a_policy_is_kept_for_every_process_and_null_resets_a_field(open_store):
    store = await open_store()
    assert await store.get_host("quiet.test") is None
    info = await store.set_host_policy("quiet.test", 2, 1500, True)
    assert info.host == "quiet.test" and info.policy == HostPolicy(2, 1500, True)
    other = await open_store()  # another process on the same database
    assert (await other.get_host("quiet.test")).policy == HostPolicy(2, 1500, True)
    # a field left out stays; a None given resets it to the server's default
    info = await other.set_host_policy("quiet.test", None, None, False, keep=("max_concurrency",))
    assert info.policy == HostPolicy(2, None, False)
    assert (await store.get_host("quiet.test")).policy == HostPolicy(2, None, False)
    info = await store.set_host_policy("quiet.test", None, None, None)
    assert info.policy == HostPolicy()


@pytest.mark.gen_test
async def test_a_paused_host_keeps_its_jobs_queued_and_resuming_lets_them_go(open_store):
    store = await open_store()
    await store.add(new_tasks(3, "paused.test") + new_tasks(2, "open.test"))
    await store.set_host_policy("paused.test", None, None, True, keep=("max_concurrency", "min_delay_ms"))
    for per_host in (4, None):
        got = await store.claim(10, LEASE, [], per_host)
        assert {t.host for t in got} <= {"open.test"}
    info = await store.get_host("paused.test")
    assert (info.queued, info.running, info.policy.paused) == (3, 0, True)
    other = await open_store()
    await other.set_host_policy("paused.test", None, None, False, keep=("max_concurrency", "min_delay_ms"))
    got = await store.claim(10, LEASE, [], 4)
    assert [t.host for t in got] == ["paused.test"] * 3


@pytest.mark.gen_test
async def test_a_hosts_max_concurrency_replaces_per_host_across_processes(open_store, clock):
    first, second = await open_store(), await open_store()
    await first.add(new_tasks(6, "narrow.test") + new_tasks(6, "wide.test"))
    await first.set_host_policy("narrow.test", 1, None, None)
    await first.set_host_policy("wide.test", 3, None, None)
    got = await first.claim(10, LEASE, [], 2) + await second.claim(10, LEASE, [], 2)
    hosts = [t.host for t in got]
    assert hosts.count("narrow.test") == 1 and hosts.count("wide.test") == 3
    narrow = next(t for t in got if t.host == "narrow.test")
    await second.complete(Lease(narrow.id, narrow.lease_token), result_for(narrow.id))
    await second.free_slots([Lease(narrow.id, narrow.lease_token)])
    assert [t.host for t in await first.claim(10, LEASE, [], 2)] == ["narrow.test"]
    info = await first.get_host("wide.test")
    assert (info.queued, info.running) == (3, 3)


@pytest.mark.gen_test
async def test_a_paced_host_starts_one_job_per_delay_shared_by_every_process(open_store, clock):
    first, second = await open_store(), await open_store()
    await first.add(new_tasks(5, "slow.test") + new_tasks(5, "fast.test"))
    await first.set_host_policy("slow.test", None, 2000, None)
    got = await first.claim(10, LEASE, [], 10)
    assert sorted(t.host for t in got) == ["fast.test"] * 5 + ["slow.test"]
    assert await second.claim(10, LEASE, [], 10) == []  # slow.test waits for its delay, in every process
    info = await second.get_host("slow.test")
    assert info.next_start_at == pytest.approx(clock() + 2.0)
    assert (info.queued, info.running) == (4, 1)
    clock.advance(1.0)
    assert await first.claim(10, LEASE, [], 10) == []
    clock.advance(1.0)
    assert [t.host for t in await second.claim(10, LEASE, [], 10)] == ["slow.test"]
    assert await first.claim(10, LEASE, [], 10) == []


@pytest.mark.gen_test
async def test_the_servers_host_delay_paces_every_host_without_a_delay_of_its_own(open_store, clock):
    store = await open_store()
    await store.add(new_tasks(3, "a.test") + new_tasks(3, "b.test") + new_tasks(3, "c.test"))
    await store.set_host_policy("c.test", None, 0, None)  # its own delay: none
    got = await store.claim(10, LEASE, [], 4, host_delay=0.5)
    assert sorted(t.host for t in got) == ["a.test", "b.test", "c.test", "c.test", "c.test"]
    assert await store.claim(10, LEASE, [], 4, host_delay=0.5) == []
    clock.advance(0.5)
    assert sorted(t.host for t in await store.claim(10, LEASE, [], 4, host_delay=0.5)) == ["a.test", "b.test"]


@pytest.mark.gen_test
async def test_a_hold_keeps_every_job_of_the_host_back_until_then_capped(open_store, clock):
    store = await open_store()
    await store.add(new_tasks(3, "busy.test") + new_tasks(1, "other.test"))
    await store.hold_host("busy.test", clock() + 30)
    other = await open_store()
    await other.hold_host("busy.test", clock() + 10)  # an earlier time does not shorten the hold
    [elsewhere] = await store.claim(10, LEASE, [], 4)
    assert elsewhere.host == "other.test"
    await store.complete(Lease(elsewhere.id, elsewhere.lease_token), result_for(elsewhere.id))
    assert [t.host for t in await store.claim(10, LEASE, [])] == []
    clock.advance(29)
    assert await other.claim(10, LEASE, [], 4) == []
    info = await other.get_host("busy.test")
    assert info.next_start_at == pytest.approx(clock() + 1) and info.policy == HostPolicy()
    clock.advance(1)
    assert len(await other.claim(10, LEASE, [], 4)) == 3
    await store.hold_host("busy.test", clock() + 10 * HOLD_MAX)
    assert (await store.get_host("busy.test")).next_start_at == pytest.approx(clock() + HOLD_MAX)


@pytest.mark.gen_test
async def test_two_processes_claiming_a_paced_host_at_once_start_one_job(open_store, clock):
    stores = [await open_store() for _ in range(4)]
    await stores[0].add(new_tasks(20, "one.test"))
    await stores[0].set_host_policy("one.test", 5, 1000, None)
    for _ in range(3):
        got = await asyncio.gather(*(store.claim(5, LEASE, [], 5) for store in stores))
        assert sum(len(g) for g in got) == 1
        clock.advance(1.0)


@pytest.mark.gen_test
async def test_hosts_are_listed_by_name_with_their_jobs_a_page_at_a_time(open_store, clock):
    store = await open_store()
    await store.add(new_tasks(3, "b.example") + new_tasks(2, "a.example") + new_tasks(1, "c.other"))
    await store.set_host_policy("d.example", None, None, True)  # a policy, no job yet
    [running] = await store.claim(1, LEASE, [], 4)
    seen, cursor = [], None
    while True:
        page = await store.list_hosts(None, 2, cursor)
        seen += page.items
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert [h.host for h in seen] == ["a.example", "b.example", "c.other", "d.example"]
    counts = {h.host: (h.queued, h.running) for h in seen}
    assert counts[running.host][1] == 1 and sum(q + r for q, r in counts.values()) == 6
    assert counts["d.example"] == (0, 0) and seen[-1].policy.paused
    found = await store.list_hosts("example", 10, None)
    assert [h.host for h in found.items] == ["a.example", "b.example", "d.example"]
    assert found.next_cursor is None
    assert (await store.list_hosts("nothing", 10, None)).items == []
    # a host whose jobs all finished, without a policy, is no longer listed
    others = await store.claim(10, LEASE, [], 4)
    for task in [running, *others]:
        await store.complete(Lease(task.id, task.lease_token), result_for(task.id))
    assert [h.host for h in (await store.list_hosts(None, 10, None)).items] == ["d.example"]
    await store.set_host_policy("d.example", None, None, None)
    assert (await store.list_hosts(None, 10, None)).items == []
    assert await store.get_host("d.example") is None


@pytest.mark.gen_test
async def test_a_claim_meeting_more_waiting_hosts_than_it_reads_whole_looks_each_up(open_store, clock, monkeypatch):
    monkeypatch.setattr("jobqueue.store.sqlite.hosts.WAITING_READ", 1)  # SQLite's bound; MongoDB reads them all
    store = await open_store()
    hosts = [f"h{n}.test" for n in range(5)]
    await store.add([task for host in hosts for task in new_tasks(3, host)])
    first = await store.claim(20, LEASE, [], 4, host_delay=1.0)
    assert sorted(t.host for t in first) == hosts
    other = await open_store()
    assert await other.claim(20, LEASE, [], 4, host_delay=1.0) == []
    await other.hold_host("h2.test", clock() + 5)
    clock.advance(1.0)
    assert sorted(t.host for t in await store.claim(20, LEASE, [], 4, host_delay=1.0)) == [
        h for h in hosts if h != "h2.test"]
