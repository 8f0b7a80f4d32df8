"""The store contract for limits that hold across processes: a host's slots (--per-host) and a webhook
endpoint's (--webhook-concurrency), counted in the database, so several stores on one database (several
processes) together never have more requests in flight to one host or endpoint than the limit.

Every test runs on every backend, like tests/test_store_contract.py.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from typing import Any

import pytest

from jobqueue.models import Result, TaskIds
from jobqueue.spec import JobSpec
from jobqueue.store.base import Lease, NewTask, StoreError
from jobqueue.store.mongodb import slots as mongodb_slots
from jobqueue.store.sqlite import slots as sqlite_slots
from jobqueue.webhooks.delivery import DELIVERED, DeliveryOutcome
from jobqueue.webhooks.outbox import Outbox
from jobqueue.webhooks.spec import WebhookSpec

LEASE = 30.0
IDS = TaskIds()
HOOK = "https://hooks.example/all"
OTHER_HOOK = "https://other.example/hook"


def jobs(n: int, host: str, priority: int = 0, webhook: str | None = None) -> list[NewTask]:
    spec = JobSpec(priority=priority, webhook=WebhookSpec(webhook) if webhook else None)
    return [NewTask(IDS.new(), f"https://{host}/{i}", host, spec) for i in range(n)]


def interleaved(store: Any) -> Any:
    """On MongoDB every database call first yields to the loop, so the claims of several stores interleave at
    each round trip as they do against a server (the mock answers without ever yielding). SQLite's stores need
    nothing: their writer threads really run at once."""
    call = getattr(store, "_call", None)
    if call is not None:
        async def yielding(operation: Any, allow: tuple[type[Exception], ...] = ()) -> Any:
            await asyncio.sleep(0)
            return await call(operation, allow)

        store._call = yielding
    return store


def leases(tasks: list[Any]) -> list[Lease]:
    return [Lease(t.id, t.lease_token) for t in tasks]


def result_for(task_id: str) -> Result:
    return Result(id=task_id, url="https://example.com/", final_url="https://example.com/", http_status=200,
                  headers={}, content_type="text/plain", encoding="utf-8", encoding_source="header", size=2,
                  truncated=False, elapsed_ms=1.0, fetched_at=1.0, sha256="0" * 64, body=b"ok")


@pytest.mark.gen_test
async def test_a_claim_takes_a_slot_per_job_and_passes_over_hosts_that_are_full(open_store):
    store = await open_store()
    busy = await store.add(jobs(5, "busy.test", priority=5))
    calm = await store.add(jobs(2, "calm.test"))
    got = await store.claim(3, LEASE, [], per_host=2)
    # the third busy job would exceed busy.test's 2: the claim reads on and takes calm.test's first instead
    assert [t.id for t in got] == [busy[0].id, busy[1].id, calm[0].id]
    assert all(t.status == "running" for t in got)
    assert [t.id for t in await store.claim(5, LEASE, [], per_host=2)] == [calm[1].id]
    assert await store.claim(5, LEASE, [], per_host=2) == []  # both hosts full; jobs stay queued
    assert (await store.get(busy[2].id)).status == "queued"
    await store.free_slots(leases(got[:1]))
    assert [t.id for t in await store.claim(5, LEASE, [], per_host=2)] == [busy[2].id]


@pytest.mark.gen_test
async def test_jobs_of_free_hosts_behind_a_full_hosts_backlog_are_found_in_priority_order(open_store):
    """A crawl of one site: thousands of its pages due and its slot taken must not hide other hosts' jobs."""
    store = await open_store()
    site = []
    for _ in range(3):
        site += await store.add(jobs(1000, "site.test", priority=5))
    low = await store.add(jobs(2, "low.test"))
    mid = await store.add(jobs(2, "mid.test", priority=3))
    assert [t.id for t in await store.claim(2, LEASE, [], per_host=1)] == [site[0].id, mid[0].id]
    assert [t.id for t in await store.claim(5, LEASE, [], per_host=1)] == [low[0].id]
    assert await store.claim(5, LEASE, [], per_host=1) == []


@pytest.mark.gen_test
async def test_a_claim_that_fails_half_way_gives_back_what_it_took(open_store, monkeypatch):
    """MongoDB has no transaction: jobs and slots a claim took before a failure are given back at once (on
    SQLite the claim's transaction is undone), so none sits `running` or holds a slot until its lease ends."""
    store = await open_store()
    site = await store.add(jobs(3, "site.test", priority=5))
    other = await store.add(jobs(1, "other.test"))
    for rooms in (mongodb_slots.Rooms, sqlite_slots.Rooms):
        real_take = rooms.take

        def failing_take(self: Any, key: str, *args: Any, real_take: Any = real_take) -> Any:
            if key == "other.test":
                raise StoreError("the database went away")
            return real_take(self, key, *args)

        monkeypatch.setattr(rooms, "take", failing_take)
    with pytest.raises(StoreError):
        await store.claim(2, LEASE, [], per_host=1)
    monkeypatch.undo()
    again = await store.get(site[0].id)
    assert (again.status, again.attempts) == ("queued", 0)
    assert [t.id for t in await store.claim(2, LEASE, [], per_host=1)] == [site[0].id, other[0].id]


@pytest.mark.gen_test
async def test_a_claim_frees_the_slots_of_requests_that_ended_before_it_takes_any(open_store):
    store = await open_store()
    _first, second = await store.add(jobs(2, "polite.test"))
    [held] = await store.claim(2, LEASE, [], per_host=1)
    assert [t.id for t in await store.claim(2, LEASE, [], per_host=1, ended=leases([held]))] == [second.id]
    assert await store.claim(2, LEASE, [], per_host=1, ended=leases([held])) == []  # freed once: not again
    assert await store.claim(0, LEASE, [], per_host=1, ended=[Lease(second.id, "not its token")]) == []
    assert await store.claim(2, LEASE, [], per_host=1) == []


@pytest.mark.gen_test
async def test_a_cancelled_job_keeps_its_slot_until_its_request_is_over(open_store):
    store = await open_store()
    first, second = await store.add(jobs(2, "polite.test"))
    [running] = await store.claim(1, LEASE, [], per_host=1)
    await store.cancel(first.id)
    # the worker may still be fetching it: the host is still busy until the worker says the request ended
    assert await store.claim(1, LEASE, [], per_host=1) == []
    await store.free_slots(leases([running]))
    assert [t.id for t in await store.claim(1, LEASE, [], per_host=1)] == [second.id]


@pytest.mark.gen_test
async def test_a_job_cancelled_and_retried_mid_fetch_leaves_its_first_request_its_slot(open_store):
    """A worker is still fetching a job when a user cancels and retries it through another process, which claims it
    again: the new attempt takes a slot of its own, and the first request keeps its slot until its worker stops it,
    so the host never has more requests in flight than its limit."""
    first, second = await open_store(), await open_store()
    [job] = await first.add(jobs(1, "polite.test", priority=5))
    others = await first.add(jobs(2, "polite.test"))
    [fetching] = await first.claim(1, LEASE, [], per_host=2)
    await second.cancel(job.id)
    await second.retry(job.id)
    assert [t.id for t in await second.claim(2, LEASE, [], per_host=2)] == [job.id]
    assert await second.claim(2, LEASE, [], per_host=2) == []  # the first request and the retry's: 2 of 2
    assert await first.extend(leases([fetching]), LEASE) == [job.id]  # its worker learns it lost the job,
    await first.free_slots(leases([fetching]))  # stops the request, and gives back that request's slot only
    assert [t.id for t in await second.claim(2, LEASE, [], per_host=2)] == [others[0].id]
    assert await second.claim(2, LEASE, [], per_host=2) == []


@pytest.mark.gen_test
async def test_a_due_job_is_found_behind_a_full_hosts_backlog_and_many_hosts_with_nothing_due(open_store, clock):
    """Hosts whose jobs all wait for later (a recurring fetch's next run, a retry's backoff, not_before) do not use
    up what a claim looks at past a full host's backlog: a due job of a host with a free slot is claimed within a
    few claims, however many such hosts sort before it."""
    store = await open_store()
    later = JobSpec(not_before=clock() + 3600)
    await store.add([NewTask(IDS.new(), f"https://h{i:04d}.test/", f"h{i:04d}.test", later) for i in range(1200)])
    await store.add(jobs(3000, "aaa-big.test", priority=5))
    [_big] = await store.claim(1, LEASE, [], per_host=1)
    [victim] = await store.add(jobs(1, "zzz-victim.test"))
    claimed: list[Any] = []
    for _ in range(3):
        claimed = await store.claim(4, LEASE, [], per_host=1)
        if claimed:
            break
    assert [t.id for t in claimed] == [victim.id]


@pytest.mark.gen_test
async def test_a_slot_frees_itself_when_its_lease_runs_out_and_is_renewed_with_it(open_store, clock):
    store = await open_store()
    [first] = await store.add(jobs(1, "polite.test"))
    [held] = await store.claim(1, LEASE, [], per_host=1)
    [second] = await store.add(jobs(1, "polite.test"))
    clock.advance(LEASE * 0.6)
    assert await store.extend(leases([held]), LEASE) == []
    clock.advance(LEASE * 0.6)  # past the first expiry, not the renewed one
    assert await store.claim(2, LEASE, [], per_host=1) == []
    clock.advance(LEASE)  # the holder died: its slot is taken over, by the job due first
    [again] = await store.claim(2, LEASE, [], per_host=1)
    assert again.id == second.id
    # the dead holder's late word frees nothing of the new holder's
    await store.free_slots(leases([held]))
    assert await store.claim(2, LEASE, [], per_host=1) == []
    await store.free_slots(leases([again]))
    [retaken] = await store.claim(2, LEASE, [], per_host=1)
    assert retaken.id == first.id and retaken.attempts == 2


@pytest.mark.gen_test
async def test_release_gives_the_slots_back(open_store):
    store = await open_store()
    added = await store.add(jobs(2, "polite.test"))
    claimed = await store.claim(2, LEASE, [], per_host=1)
    assert len(claimed) == 1
    await store.release(leases(claimed))
    assert [t.id for t in await store.claim(2, LEASE, [], per_host=1)] == [added[0].id]


@pytest.mark.gen_test
async def test_stores_on_one_database_together_never_exceed_a_hosts_limit(open_store):
    """Three stores (three processes) claim, hold a while, and free, all at once: the requests in flight per host,
    counted here from what the claims returned, never pass the limit, and every job runs once."""
    stores = [interleaved(await open_store()) for _ in range(3)]
    added = await stores[0].add(jobs(30, "a.test") + jobs(30, "b.test", priority=1) + jobs(10, "c.test"))
    in_flight: Counter[str] = Counter()
    most: Counter[str] = Counter()
    ran: list[str] = []
    rng = random.Random(7)

    async def worker(store: Any) -> None:
        idle = 0
        while idle < 20:
            claimed = await store.claim(rng.randint(1, 4), LEASE, [], per_host=2)
            if not claimed:
                idle += 1
                await asyncio.sleep(0)
                continue
            idle = 0
            for task in claimed:
                in_flight[task.host] += 1
                most[task.host] = max(most[task.host], in_flight[task.host])
            for _ in range(rng.randint(0, 3)):
                await asyncio.sleep(0)  # the requests are under way; other stores claim meanwhile
            for task in claimed:
                in_flight[task.host] -= 1  # before the slot is freed: the count here is never below the store's
            await store.free_slots(leases(claimed))
            for task in claimed:
                await store.complete(Lease(task.id, task.lease_token), result_for(task.id))
                ran.append(task.id)

    await asyncio.gather(*(worker(store) for store in stores + stores))
    assert sorted(ran) == sorted(t.id for t in added)
    assert max(most.values()) <= 2, most
    assert set(most) == {"a.test", "b.test", "c.test"}


async def hooked_store(open_store: Any, per_endpoint: int) -> Any:
    store = await open_store()
    store.outbox = Outbox(HOOK, per_endpoint=per_endpoint)
    return store


async def make_deliveries(store: Any, n: int, own: str | None = None) -> None:
    """n finished jobs, each with a delivery to HOOK (and to `own`, if given)."""
    await store.add(jobs(n, "example.com", webhook=own))
    for task in await store.claim(n, LEASE, []):
        await store.complete(Lease(task.id, task.lease_token), result_for(task.id))
    await store.relay_outbox()


@pytest.mark.gen_test
async def test_a_delivery_claim_takes_a_slot_of_its_endpoint_shared_by_every_store(open_store):
    first = await hooked_store(open_store, 1)
    second = await hooked_store(open_store, 1)
    await make_deliveries(first, 3, own=OTHER_HOOK)
    taken = await first.claim_deliveries(10, LEASE, [])
    assert sorted(d.url for d in taken) == sorted([OTHER_HOOK, HOOK])  # one per endpoint
    assert await second.claim_deliveries(10, LEASE, []) == []
    to_hook = next(d for d in taken if d.url == HOOK)
    assert await first.finish_delivery(to_hook, DeliveryOutcome(DELIVERED, 200))
    [next_one] = await second.claim_deliveries(10, LEASE, [])
    assert next_one.url == HOOK
    await second.release_deliveries([next_one])
    [again] = await first.claim_deliveries(10, LEASE, [])
    assert again.id == next_one.id and again.attempts == 1


@pytest.mark.gen_test
async def test_a_delivery_slot_frees_itself_when_its_lease_runs_out(open_store, clock):
    store = await hooked_store(open_store, 1)
    await make_deliveries(store, 2)
    [held] = await store.claim_deliveries(5, LEASE, [])
    assert await store.claim_deliveries(5, LEASE, []) == []
    clock.advance(LEASE + 1)  # its sender seems dead: its slot is taken over
    assert len(await store.claim_deliveries(5, LEASE, [])) == 1
    # the slow sender's late outcome frees no one else's slot
    await store.finish_delivery(held, DeliveryOutcome(DELIVERED, 200))
    assert await store.claim_deliveries(5, LEASE, []) == []


@pytest.mark.gen_test
async def test_stores_on_one_database_together_never_exceed_an_endpoints_limit(open_store):
    stores = [interleaved(await hooked_store(open_store, 2)) for _ in range(3)]
    await make_deliveries(stores[0], 24)
    in_flight = 0
    most = 0
    sent: list[str] = []
    rng = random.Random(11)

    async def sender(store: Any) -> None:
        nonlocal in_flight, most
        idle = 0
        while idle < 20:
            claimed = await store.claim_deliveries(rng.randint(1, 3), LEASE, [])
            if not claimed:
                idle += 1
                await asyncio.sleep(0)
                continue
            idle = 0
            in_flight += len(claimed)
            most = max(most, in_flight)
            for _ in range(rng.randint(0, 3)):
                await asyncio.sleep(0)
            in_flight -= len(claimed)
            for delivery in claimed:
                assert await store.finish_delivery(delivery, DeliveryOutcome(DELIVERED, 200))
                sent.append(delivery.id)

    await asyncio.gather(*(sender(store) for store in stores + stores))
    assert len(sent) == len(set(sent)) == 24
    assert most <= 2
