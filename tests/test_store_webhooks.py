"""The store contract for webhook deliveries: the outbox written with each finishing change, leases, paging.

Every test runs on every backend (a real SQLite file; MongoDB through the mongomock-motor mock; a real
MongoDB when JOBQUEUE_TEST_MONGODB_URL is set), like tests/test_store_contract.py.
"""

from __future__ import annotations

import json

import pytest

from jobqueue.errors import NotFound
from jobqueue.models import Result, TaskError, TaskIds
from jobqueue.spec import JobSpec
from jobqueue.store.base import Lease, NewTask
from jobqueue.webhooks.delivery import DELIVERED, FAILED, PENDING, DeliveryFilter, DeliveryOutcome
from jobqueue.webhooks.outbox import Outbox
from jobqueue.webhooks.spec import WebhookSpec

LEASE = 30.0
IDS = TaskIds()
EVERYONE = "https://hooks.example/all"
OWN = "https://own.example/hook"


def task(spec: JobSpec | None = None, batch_id: str | None = None) -> NewTask:
    return NewTask(IDS.new(), "https://example.com/", "example.com", spec or JobSpec(), batch_id)


def result_for(task_id: str) -> Result:
    return Result(id=task_id, url="https://example.com/", final_url="https://example.com/", http_status=200,
                  headers={}, content_type="text/plain", encoding="utf-8", encoding_source="header", size=5,
                  truncated=False, elapsed_ms=1.0, fetched_at=1.0, sha256="0" * 64, body=b"hello")


async def webhook_store(open_store, global_url: str | None = EVERYONE):
    store = await open_store()
    store.outbox = Outbox(global_url)
    return store


async def deliveries(store, **where) -> list:
    await store.relay_outbox()
    return (await store.list_deliveries(DeliveryFilter(**where), 100, None)).items


async def finish(store, new, how: str = "complete"):
    [claimed] = await store.claim(1, LEASE, [])
    lease = Lease(claimed.id, claimed.lease_token)
    if how == "complete":
        return await store.complete(lease, result_for(claimed.id))
    return await store.fail(lease, TaskError("http_error", "500"), 500)


@pytest.mark.gen_test
async def test_a_completion_stores_its_delivery_with_the_task_as_stored(open_store):
    store = await webhook_store(open_store)
    [new] = await store.add([task()])
    assert await deliveries(store) == []
    done = await finish(store, new)
    [found] = await deliveries(store)
    assert (found.event, found.url, found.task_id, found.status, found.attempts) == (
        "task.completed", EVERYONE, new.id, PENDING, 0)
    full = await store.get_delivery(found.id)
    body = json.loads(full.payload)
    assert body["type"] == "task.completed" and body["data"]["task"] == (await store.get(new.id)).to_json()
    assert body["data"]["task"]["status"] == "completed" == done.status
    assert await store.deliveries_due()


@pytest.mark.gen_test
async def test_no_outbox_means_no_deliveries_and_a_requeue_creates_none(open_store):
    store = await open_store()
    [new] = await store.add([task()])
    await finish(store, new)
    assert await deliveries(store) == [] and not await store.deliveries_due()
    store.outbox = Outbox(EVERYONE)
    await store.add([task()])
    [claimed] = await store.claim(1, LEASE, [])
    await store.reschedule(Lease(claimed.id, claimed.lease_token), 0.0, TaskError("timeout", "slow"), None)
    assert await deliveries(store) == []


@pytest.mark.gen_test
async def test_a_jobs_own_webhook_gets_only_the_events_it_asked_for(open_store):
    store = await webhook_store(open_store)
    only_failures = JobSpec(webhook=WebhookSpec(OWN, ("task.failed",)))
    [ok] = await store.add([task(only_failures)])
    await finish(store, ok)
    assert [d.url for d in await deliveries(store, task_id=ok.id)] == [EVERYONE]
    [bad] = await store.add([task(only_failures)])
    await finish(store, bad, "fail")
    got = await deliveries(store, task_id=bad.id)
    assert sorted(d.url for d in got) == [EVERYONE, OWN] and {d.event for d in got} == {"task.failed"}


@pytest.mark.gen_test
async def test_a_cancel_tells_of_it_and_a_shared_url_gets_one_delivery(open_store):
    store = await webhook_store(open_store)
    [new] = await store.add([task(JobSpec(webhook=WebhookSpec(EVERYONE)))])
    await store.cancel(new.id)
    [found] = await deliveries(store)
    assert found.event == "task.cancelled" and found.url == EVERYONE


@pytest.mark.gen_test
async def test_claims_lease_count_attempts_and_skip_busy_endpoints(open_store, clock):
    store = await webhook_store(open_store, global_url=None)
    other = "http://127.0.0.1:9/x"
    for url in (OWN, OWN, other):
        [new] = await store.add([task(JobSpec(webhook=WebhookSpec(url)))])
        await store.cancel(new.id)
    await store.relay_outbox()
    claimed = await store.claim_deliveries(10, 60.0, ["https://own.example:443"])
    assert [d.url for d in claimed] == [other] and claimed[0].attempts == 1 and claimed[0].lease_token
    assert await store.claim_deliveries(10, 60.0, ["https://own.example:443"]) == []  # leased
    first = claimed[0]
    assert await store.finish_delivery(first, DeliveryOutcome(PENDING, 500, "HTTP 500", clock.now + 5))
    assert not await store.finish_delivery(first, DeliveryOutcome(DELIVERED, 200))  # that lease is spent
    two = await store.claim_deliveries(10, 60.0, [])
    assert sorted(d.url for d in two) == [OWN, OWN]
    await store.release_deliveries(two)
    again = await store.claim_deliveries(10, 60.0, [])
    assert sorted(d.attempts for d in again) == [1, 1]  # a released attempt is not counted
    clock.advance(5)
    [retried] = await store.claim_deliveries(10, 60.0, [])
    assert retried.id == first.id and retried.attempts == 2


@pytest.mark.gen_test
async def test_a_lost_lease_is_claimed_again_after_it_runs_out(open_store, clock):
    store = await webhook_store(open_store)
    [new] = await store.add([task()])
    await store.cancel(new.id)
    await store.relay_outbox()
    [first] = await store.claim_deliveries(1, 60.0, [])
    assert await store.claim_deliveries(1, 60.0, []) == []
    clock.advance(61)
    [second] = await store.claim_deliveries(1, 60.0, [])
    assert second.id == first.id and second.attempts == 2 and second.lease_token != first.lease_token


@pytest.mark.gen_test
async def test_outcomes_are_recorded_and_redeliver_sends_the_same_delivery_again(open_store):
    store = await webhook_store(open_store)
    [new] = await store.add([task()])
    await finish(store, new, "fail")
    await store.relay_outbox()
    [claimed] = await store.claim_deliveries(1, 60.0, [])
    assert await store.finish_delivery(claimed, DeliveryOutcome(FAILED, 410, "gone"))
    [failed] = await deliveries(store, status=FAILED)
    assert (failed.last_http_status, failed.last_error, failed.next_attempt_at) == (410, "gone", None)
    assert not await store.deliveries_due()
    again = await store.redeliver(claimed.id)
    assert again.id == claimed.id and again.status == PENDING and again.payload == claimed.payload
    [claimed_again] = await store.claim_deliveries(1, 60.0, [])
    assert await store.finish_delivery(claimed_again, DeliveryOutcome(DELIVERED, 204))
    [done] = await deliveries(store, status=DELIVERED)
    assert done.delivered_at is not None and done.last_error is None
    with pytest.raises(NotFound):
        await store.redeliver("msg_nothing")


@pytest.mark.gen_test
async def test_deliveries_list_newest_first_by_filter_and_cursor(open_store):
    store = await webhook_store(open_store)
    ids = []
    for _ in range(5):
        [new] = await store.add([task()])
        await store.cancel(new.id)
        ids.append(new.id)
    await store.relay_outbox()
    first = await store.list_deliveries(DeliveryFilter(), 3, None)
    second = await store.list_deliveries(DeliveryFilter(), 3, first.next_cursor)
    assert [d.task_id for d in first.items + second.items] == ids[::-1] and second.next_cursor is None
    assert [d.task_id for d in await deliveries(store, task_id=ids[2])] == [ids[2]]
    assert await deliveries(store, status=DELIVERED) == []


@pytest.mark.gen_test
async def test_a_batch_webhook_gets_its_jobs_events_and_one_batch_finished(open_store):
    store = await webhook_store(open_store, global_url=None)
    hook = WebhookSpec(OWN)
    await store.create_batch("b1", 3, (), 300.0, hook)
    await store.add([task(batch_id="b1") for _ in range(3)])
    await store.seal_batch("b1", None)
    [claimed] = await store.claim(1, LEASE, [])
    await store.complete(Lease(claimed.id, claimed.lease_token), result_for(claimed.id))
    while await store.cancel_batch("b1", 1):
        pass
    got = await deliveries(store, batch_id="b1")
    events = sorted(d.event for d in got)
    assert events == ["batch.finished", "task.cancelled", "task.cancelled", "task.completed"]
    assert {d.url for d in got} == {OWN}
    finished = next(d for d in got if d.event == "batch.finished")
    body = json.loads((await store.get_delivery(finished.id)).payload)
    assert body["data"]["batch"]["id"] == "b1" and body["data"]["batch"]["counts"]["cancelled"] == 2


@pytest.mark.gen_test
async def test_a_batch_whose_jobs_all_reused_results_finishes_at_its_seal(open_store):
    store = await webhook_store(open_store, global_url=None)
    [first] = await store.add([task()])
    await finish(store, first)
    await store.create_batch("b2", 1, (), 300.0, WebhookSpec(OWN))
    [reused] = await store.add([task(JobSpec(max_age=3600), batch_id="b2")])
    assert reused.reused_from == first.id
    await store.seal_batch("b2", None)
    got = await deliveries(store, batch_id="b2")
    assert sorted(d.event for d in got) == ["batch.finished", "task.completed"]


@pytest.mark.gen_test
async def test_a_recurring_run_whose_body_changed_is_delivered_as_url_changed_once(open_store, clock):
    from tests.test_schedules import EVERY, URL, finish_next, new

    store = await webhook_store(open_store)
    await store.add([new(URL, JobSpec(every=EVERY))])
    await finish_next(store, b"version 1")
    clock.advance(EVERY)
    before = await finish_next(store, b"version 1")
    assert [d.event for d in await deliveries(store)] == ["task.completed", "task.completed"]
    clock.advance(EVERY)
    changed = await finish_next(store, b"version 2")
    found = [d for d in await deliveries(store) if d.event == "url.changed"]
    assert [(d.task_id, d.url) for d in found] == [(changed.id, EVERYONE)]
    body = json.loads((await store.get_delivery(found[0].id)).payload)
    assert body["data"]["previous_id"] == before.id and body["data"]["task"]["id"] == changed.id
    await store.relay_outbox()  # relaying again (a second process, a restart) adds nothing
    assert len([d for d in await deliveries(store) if d.event == "url.changed"]) == 1
