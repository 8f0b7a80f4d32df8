"""The store contract for retention: every backend purges the same things, in small steps.

Beside expired jobs (sparing each URL's newest `keep_per_url` results), retention deletes what they leave
behind: a sealed batch finished before the cutoff once its last job is deleted, webhook deliveries
delivered or failed for good and url.changed records relayed, made before the cutoff. Pending deliveries
stay whatever their age, and so does everything made after the cutoff.

Runs on every backend (a real SQLite file; MongoDB through the mongomock-motor mock; a real MongoDB when
JOBQUEUE_TEST_MONGODB_URL is set), like tests/test_store_contract.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from jobqueue.history.retention import DAY, RetentionPolicy, apply_retention
from jobqueue.models import TaskIds
from jobqueue.spec import JobSpec
from jobqueue.store.base import Lease, NewTask
from jobqueue.webhooks.delivery import DELIVERED, FAILED, PENDING, DeliveryFilter, DeliveryOutcome
from jobqueue.webhooks.outbox import Outbox
from tests.test_storage import LEASE, result_for

IDS = TaskIds()
HOOK = "https://hooks.example/all"
WATCHED = "https://example.com/watched"
EVERY = 60.0


async def run(store: Any, spec: JobSpec | None = None, url: str = "https://example.com/", body: bytes = b"page",
              batch_id: str | None = None) -> str:
    """Add a job (unless one is due already: a schedule's next run) and complete the due one; its id."""
    if spec is not None or batch_id is not None or url != WATCHED:
        await store.add([NewTask(IDS.new(), url, "example.com", spec or JobSpec(), batch_id)])
    [claimed] = await store.claim(1, LEASE, [])
    assert await store.complete(Lease(claimed.id, claimed.lease_token), result_for(claimed.id, claimed.url, body))
    return claimed.id


async def finished_batch(store: Any, url: str) -> str:
    """A sealed batch of one job, completed."""
    batch_id = IDS.new()
    await store.create_batch(batch_id, 1, (), 60.0)
    await run(store, url=url, batch_id=batch_id)
    await store.seal_batch(batch_id, None)
    return batch_id


async def deliveries(store: Any) -> list[Any]:
    await store.relay_outbox()
    return (await store.list_deliveries(DeliveryFilter(), 1000, None)).items


async def settle(store: Any, outcomes: list[str], among: set[str] | None = None) -> dict[str, str]:
    """Claim every due delivery and end the first ones (of `among`) as `outcomes` says, the rest staying pending;
    id -> status of them all."""
    await store.relay_outbox()
    claimed = await store.claim_deliveries(100, LEASE, [])
    chosen = [d for d in claimed if among is None or d.id in among][:len(outcomes)]
    assert len(chosen) == len(outcomes)
    for delivery, status in zip(chosen, outcomes, strict=True):
        assert await store.finish_delivery(delivery, DeliveryOutcome(status, 200 if status == DELIVERED else 500))
    await store.release_deliveries([d for d in claimed if d not in chosen])
    return {d.id: d.status for d in await deliveries(store)}


@pytest.mark.gen_test
async def test_every_store_purges_emptied_batches_finished_deliveries_and_old_changes_in_steps(open_store, clock):
    store = await open_store()
    store.outbox = Outbox(HOOK)
    emptied = await finished_batch(store, "https://example.com/a")
    spared = await finished_batch(store, "https://example.com/b")  # its job stays the newest result of /b
    unsealed = IDS.new()
    await store.create_batch(unsealed, 2, (), 10 * DAY)  # still being stored: not finished, never purged
    await run(store, url="https://example.com/u", batch_id=unsealed)
    await run(store, JobSpec(every=EVERY), WATCHED, b"one")
    clock.advance(EVERY)
    await run(store, url=WATCHED, body=b"two")  # a changed body: a url.changed record and its delivery
    assert len(await store.url_changes_since(0, 10)) == 1
    old = await settle(store, [DELIVERED, FAILED, DELIVERED, FAILED])
    assert sorted(old.values()).count(PENDING) >= 2  # more than the batch size: purged over several steps
    clock.advance(2 * DAY)
    changed = await run(store, url=WATCHED, body=b"three")  # the run due since: it queues one due later
    await run(store, url="https://example.com/a")  # /a's newest result now: the batch's job may go
    new = {d.id: d.status for d in await deliveries(store) if d.id not in old}
    assert new and set(new.values()) == {PENDING}
    assert (await settle(store, [DELIVERED], set(new))).items() >= old.items()

    await apply_retention(store, RetentionPolicy(days=1, keep_per_url=1, batch=2), clock())

    assert await store.get_batch(emptied) is None
    assert await store.get_batch(spared) is not None
    left = {d.id: d.status for d in await deliveries(store)}
    assert set(left) == {i for i, status in old.items() if status == PENDING} | set(new)
    assert [t for _s, t, _p in await store.url_changes_since(0, 10)] == [changed]  # the old one went
    await store.create_batch(IDS.new(), 1, (), 60.0)  # the store still works: no row it needs went
    assert (await store.counts())["queued"] == 1  # the schedule's next run
