"""The store contract for jobs with options: specs, priority, freshness reuse, idempotency keys, batches.

Every test runs on every backend (a real SQLite file; MongoDB through the mongomock-motor mock; a real
MongoDB when JOBQUEUE_TEST_MONGODB_URL is set), like tests/test_store_contract.py.
"""

from __future__ import annotations

import pytest

from jobqueue.errors import IdempotencyConflict, NotFound
from jobqueue.idempotency import KEY_TTL, IdempotencyKey, IdempotentAdd, StoredAnswer
from jobqueue.models import Result, TaskError, TaskIds
from jobqueue.spec import FetchOptions, JobSpec
from jobqueue.store.base import Lease, NewTask, TaskFilter

LEASE = 30.0
IDS = TaskIds()


def task(url: str = "https://example.com/", spec: JobSpec | None = None, batch_id: str | None = None) -> NewTask:
    host = url.split("/")[2]
    return NewTask(IDS.new(), url, host, spec or JobSpec(), batch_id)


def result_for(task_id: str, body: bytes = b"hello") -> Result:
    return Result(id=task_id, url="https://example.com/", final_url="https://example.com/", http_status=200,
                  headers={"content-type": "text/plain"}, content_type="text/plain", encoding="utf-8",
                  encoding_source="header", size=len(body), truncated=False, elapsed_ms=1.0,
                  fetched_at=1.0, sha256="0" * 64, body=body)


async def run_to_completion(store, tasks, body=b"hello"):
    claimed = await store.claim(len(tasks), LEASE, [])
    for t in claimed:
        await store.complete(Lease(t.id, t.lease_token), result_for(t.id, body))
    return claimed


@pytest.mark.gen_test
async def test_a_spec_round_trips_through_the_store(open_store, clock):
    store = await open_store()
    fetch = FetchOptions(method="POST", headers=(("X-A", "1"), ("Authorization", "s")), body="a=1", timeout=5.0,
                         max_bytes=100, follow_redirects=False, profile="p", profile_headers=("Cookie",))
    spec = JobSpec(fetch=fetch, priority=3, not_before=clock.now + 60, tags=("a", "b"))
    [added] = await store.add([task(spec=spec)])
    got = await store.get(added.id)
    assert got.fetch == fetch and got.priority == 3 and got.tags == ("a", "b")
    assert got.not_before == clock.now + 60 and got.available_at == clock.now + 60
    assert got.to_json()["fetch"]["headers"]["Authorization"] == "***"
    [plain] = await store.add([task()])
    assert (await store.get(plain.id)).fetch == FetchOptions()


@pytest.mark.gen_test
async def test_claims_take_higher_priority_first_then_older_and_wait_for_not_before(open_store, clock):
    store = await open_store()
    low = await store.add([task(spec=JobSpec(priority=-5))])
    clock.advance(1)
    normal = await store.add([task(), task()])
    clock.advance(1)
    high = await store.add([task(spec=JobSpec(priority=7))])
    later = await store.add([task(spec=JobSpec(priority=10, not_before=clock.now + 100))])
    order = [t.id for t in await store.claim(10, 1000, [])]
    assert order == [high[0].id, normal[0].id, normal[1].id, low[0].id]
    clock.advance(101)
    assert [t.id for t in await store.claim(10, LEASE, [])] == [later[0].id]


@pytest.mark.gen_test
async def test_max_age_reuses_a_fresh_result_of_the_same_fetch_and_shares_its_body(open_store, clock):
    store = await open_store()
    [first] = await store.add([task("https://example.com/a")])
    await run_to_completion(store, [first], b"the page")
    clock.advance(30)
    fresh = JobSpec(max_age=60)
    [again, other_options, other_url] = await store.add([
        task("https://example.com/a", fresh),
        task("https://example.com/a", JobSpec(max_age=60, fetch=FetchOptions(headers=(("X", "1"),)))),
        task("https://example.com/b", fresh)])
    assert again.status == "completed" and again.reused_from == first.id
    assert other_options.status == "queued" and other_url.status == "queued"
    result = await store.get_result(again.id, with_body=True)
    assert result.body == b"the page" and result.id == again.id
    clock.advance(60)
    [stale] = await store.add([task("https://example.com/a", fresh)])
    assert stale.status == "queued" and stale.reused_from is None
    await store.retry(first.id)  # the original drops its result; the job that reused it keeps the body
    assert (await store.get_result(again.id, with_body=True)).body == b"the page"
    assert (await store.counts())["completed"] == 1


@pytest.mark.gen_test
async def test_idempotency_keys_answer_once_refuse_other_bodies_and_expire(open_store, clock):
    store = await open_store()
    key = IdempotencyKey("ip:1", "k1", "fp-1")
    assert await store.idempotency_begin(key, 300) is None
    with pytest.raises(IdempotencyConflict) as busy:
        await store.idempotency_begin(key, 300)
    assert busy.value.code == "idempotency_key_in_use" and busy.value.http_status == 409
    added = await store.add([task()], IdempotentAdd(key, lambda tasks: StoredAnswer(201, tasks[0].id, "/x")))
    replay = await store.idempotency_begin(key, 300)
    assert replay == StoredAnswer(201, added[0].id, "/x")
    with pytest.raises(IdempotencyConflict) as reused:
        await store.idempotency_begin(IdempotencyKey("ip:1", "k1", "fp-2"), 300)
    assert reused.value.code == "idempotency_key_reused" and reused.value.http_status == 422
    assert await store.idempotency_begin(IdempotencyKey("ip:2", "k1", "fp-2"), 300) is None  # per client
    clock.advance(KEY_TTL + 1)
    assert await store.idempotency_begin(IdempotencyKey("ip:1", "k1", "fp-2"), 300) is None
    assert await store.purge_idempotency(clock.now) >= 1


@pytest.mark.gen_test
async def test_an_abandoned_or_failed_keyed_request_frees_its_key(open_store, clock):
    store = await open_store()
    key = IdempotencyKey("ip:1", "k", "fp")
    assert await store.idempotency_begin(key, 10) is None
    clock.advance(11)  # the process holding it died
    assert await store.idempotency_begin(key, 10) is None
    await store.idempotency_abort(key)
    assert await store.idempotency_begin(key, 10) is None
    await store.add([task()], IdempotentAdd(key, lambda _tasks: StoredAnswer(201, "{}", None)))
    assert await store.idempotency_begin(key, 10) == StoredAnswer(201, "{}", None)


@pytest.mark.gen_test
async def test_batch_counts_move_with_their_jobs_and_finish_once_sealed(open_store, clock):
    store = await open_store()
    batch = await store.create_batch("b1", 3, ("t",), 300)
    assert batch.sealed is False and await store.get_batch("b1") is None  # not visible until sealed
    first = await store.add([task(batch_id="b1"), task(batch_id="b1")])
    await run_to_completion(store, first)
    unsealed = (await store.get_batches(["b1"]))
    assert unsealed == []
    [third] = await store.add([task(batch_id="b1")])
    sealed = await store.seal_batch("b1", None)
    assert sealed.finished_at is None and sealed.counts["completed"] == 2 and sealed.counts["queued"] == 1
    [claimed] = await store.claim(1, LEASE, [])
    assert (await store.get_batch("b1")).counts["running"] == 1
    await store.fail(Lease(claimed.id, claimed.lease_token), TaskError("x", "y"), None)
    done = await store.get_batch("b1")
    assert done.counts == {"queued": 0, "running": 0, "completed": 2, "failed": 1, "cancelled": 0}
    assert done.finished_at == clock.now and done.tags == ("t",) and done.total == 3
    retried = await store.retry_batch("b1", 100)
    assert [t.id for t in retried] == [third.id]
    again = await store.get_batch("b1")
    assert again.finished_at is None and again.counts["queued"] == 1
    page = await store.list(TaskFilter(batch="b1"), 10, None)
    assert {t.id for t in page.items} == {t.id for t in [*first, third]}


@pytest.mark.gen_test
async def test_cancelling_a_batch_goes_in_chunks_and_only_touches_unfinished_jobs(open_store):
    store = await open_store()
    await store.create_batch("b2", 5, (), 300)
    jobs = await store.add([task(batch_id="b2") for _ in range(5)])
    await store.add([task()])  # not in the batch
    await run_to_completion(store, jobs[:1])
    await store.seal_batch("b2", None)
    first = await store.cancel_batch("b2", 3)
    second = await store.cancel_batch("b2", 3)
    assert len(first) == 3 and len(second) == 1 and await store.cancel_batch("b2", 3) == []
    assert all(t.status == "cancelled" and t.error is None for t in first + second)
    batch = await store.get_batch("b2")
    assert batch.counts["cancelled"] == 4 and batch.counts["completed"] == 1 and batch.finished_at is not None
    assert (await store.counts())["queued"] == 1
    with pytest.raises(NotFound):
        await store.cancel_batch("nope", 3)


@pytest.mark.gen_test
async def test_batches_list_newest_first_and_page(open_store):
    store = await open_store()
    for i in range(5):
        await store.create_batch(f"b{i}", 0, (), 300)
        await store.seal_batch(f"b{i}", None)
    await store.create_batch("hidden", 1, (), 300)
    first = await store.list_batches(3, None)
    second = await store.list_batches(3, first.next_cursor)
    assert [b.id for b in first.items] == ["b4", "b3", "b2"] and [b.id for b in second.items] == ["b1", "b0"]
    assert second.next_cursor is None


@pytest.mark.gen_test
async def test_a_batch_whose_storing_process_died_is_removed_with_its_jobs(open_store, clock):
    store = await open_store()
    await store.create_batch("dead", 10, (), 60)
    await store.add([task(batch_id="dead") for _ in range(4)])
    await store.create_batch("alive", 10, (), 600)
    await store.add([task(batch_id="alive")])
    assert await store.drop_abandoned_batches() == 0
    clock.advance(61)
    assert await store.drop_abandoned_batches() == 4
    counts = await store.counts()
    assert counts["queued"] == 1
    await store.seal_batch("alive", None)
    assert (await store.get_batch("alive")).counts["queued"] == 1


@pytest.mark.gen_test
async def test_sealing_a_batch_keeps_the_keyed_answer_in_the_same_step(open_store):
    store = await open_store()
    key = IdempotencyKey("ip:1", "kb", "fp")
    assert await store.idempotency_begin(key, 300) is None
    await store.create_batch("bk", 1, (), 300)
    await store.add([task(batch_id="bk")])
    await store.seal_batch("bk", (key, StoredAnswer(201, '{"batch": "bk"}', "/b")))
    assert await store.idempotency_begin(key, 300) == StoredAnswer(201, '{"batch": "bk"}', "/b")


@pytest.mark.gen_test
async def test_an_abandoned_batch_goes_at_once_with_its_jobs_and_their_results(open_store, clock):
    store = await open_store()
    await store.create_batch("half", 10, (), 600)
    jobs = await store.add([task(f"https://example.com/h{i}", batch_id="half") for i in range(3)])
    await run_to_completion(store, jobs[:1], b"kept?")
    [outside] = await store.add([task("https://example.com/h0", JobSpec(max_age=60))])  # shares that body
    await store.abandon_batch("half")
    assert await store.drop_abandoned_batches() == 3
    assert await store.get(jobs[0].id) is None and await store.get_result(jobs[0].id, True) is None
    assert (await store.get_result(outside.id, True)).body == b"kept?"  # a job outside the batch keeps it
    with pytest.raises(NotFound):
        await store.seal_batch("half", None)


@pytest.mark.gen_test
async def test_each_finished_attempt_is_logged_with_its_outcome(open_store, clock):
    store = await open_store()
    [new] = await store.add([task()])
    [first] = await store.claim(1, LEASE, [])
    await store.reschedule(Lease(first.id, first.lease_token), clock.now, TaskError("timeout", "slow"), None)
    clock.advance(1)
    [second] = await store.claim(1, LEASE, [])
    await store.fail(Lease(second.id, second.lease_token), TaskError("http_error", "503 again"), 503)
    log = (await store.get(new.id)).to_json()["attempt_log"]
    assert [(e["attempt"], e["outcome"], e["http_status"]) for e in log] == [(1, "retry", None), (2, "failed", 503)]
    assert log[0]["error"] == {"code": "timeout", "message": "slow"} and log[1]["at"].endswith("Z")
    [done] = await store.add([task()])
    await run_to_completion(store, [done])
    [entry] = (await store.get(done.id)).to_json()["attempt_log"]
    assert (entry["attempt"], entry["outcome"], entry["http_status"], entry["error"]) == (1, "completed", 200, None)
