"""The MongoDB store against a real server (issue #15): query plans, failovers, injected server faults, oplog cost.

Each test needs what only a server has (explain, failCommand, replSetStepDown, change streams, the
oplog), so it runs where JOBQUEUE_TEST_MONGODB_URL names a replica set (the GitHub workflow starts a
three-node one with test commands enabled) and skips elsewhere, saying so. The figures they print
(`-s`) are the "Measured" section of docs/mongodb.md.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import bson
import pytest

from jobqueue.models import Result, TaskIds
from jobqueue.store.base import ChangesUnavailable, Lease, NewTask, StoreError
from jobqueue.store.mongodb.schema import CLAIM_INDEX_NAME, CLAIM_ORDER
from jobqueue.store.mongodb.store import MongoStore
from tests.helpers import wait_for

URL = os.environ.get("JOBQUEUE_TEST_MONGODB_URL", "")
pytestmark = pytest.mark.skipif(not URL, reason="needs a real MongoDB server (JOBQUEUE_TEST_MONGODB_URL)")
IDS = TaskIds()
LEASE = 30.0
ROW = b"<p class='row'>A line of a page that repeats, as markup does.</p>\n"
PAGE = b"<html><body>" + ROW * 310 + b"</body></html>"  # 20 kB


def db_url(base: str, name: str, extra: str = "") -> str:
    parts = urlsplit(base)
    query = "&".join(q for q in (parts.query, extra) if q)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", query, ""))


@pytest.fixture
def stores(io_loop: Any) -> Any:
    """Open stores on one fresh database (as many processes); dropped and closed afterwards."""
    name = f"jobqueue_real_{os.urandom(4).hex()}"
    opened: list[MongoStore] = []

    async def open_one(extra: str = "") -> MongoStore:
        store = MongoStore(db_url(URL, name, extra))
        await store.open()
        opened.append(store)
        return store

    yield open_one
    if opened:
        io_loop.run_sync(lambda: opened[0]._client.drop_database(name))
    for store in opened:
        io_loop.run_sync(store.close)


def result(task_id: str, body: bytes = PAGE) -> Result:
    return Result(id=task_id, url="https://example.com/", final_url="https://example.com/", http_status=200,
                  headers={"content-type": "text/html"}, content_type="text/html", encoding="utf-8",
                  encoding_source="header", size=len(body), truncated=False, elapsed_ms=1.0, fetched_at=1.0,
                  sha256="0" * 64, body=body)


async def add_many(store: MongoStore, n: int, host: str) -> None:
    for start in range(0, n, 5000):
        await store.add([NewTask(IDS.new(), f"https://{host}/{i}", host) for i in range(start, min(n, start + 5000))])


async def explain(store: MongoStore, command: dict[str, Any]) -> dict[str, Any]:
    plan = await store.db.command("explain", command, verbosity="executionStats")
    return plan["executionStats"]


async def fail_point(store: MongoStore, mode: Any, data: dict[str, Any]) -> None:
    try:
        await store._client.admin.command("configureFailPoint", "failCommand", mode=mode, data=data)
    except Exception as exc:  # the server says why (test commands disabled)
        pytest.skip(f"needs a MongoDB server started with enableTestCommands=1 ({exc})")


async def fired(store: MongoStore) -> int:
    """Turn the failCommand fail point off; how many times it fired."""
    answer = await store._client.admin.command("configureFailPoint", "failCommand", mode="off")
    return int(answer.get("count", -1))


async def own_store(stores: Any) -> tuple[MongoStore, str]:
    """A store whose connections carry an appName of their own, so a fail point hits this store only."""
    app = f"jqfault{os.urandom(3).hex()}"
    return await stores(f"appname={app}"), app


@pytest.mark.gen_test(timeout=300)
async def test_claim_plan_is_bounded(stores):
    store = await stores()
    await add_many(store, 50_000, "a.test")
    await add_many(store, 10, "b.test")
    now = store.clock()
    due = {"status": {"$in": ["queued", "running"]}, "available_at": {"$lte": now}, "host": {"$nin": ["a.test"]}}
    stats = await explain(store, {"find": "jobs", "filter": due, "projection": {"_id": 1}, "limit": 8,
                                  "sort": dict(CLAIM_ORDER), "hint": CLAIM_INDEX_NAME})
    print(f"\nclaim of 8 skipping a host with 50,000 due jobs: {stats['totalDocsExamined']} documents, "
          f"{stats['totalKeysExamined']} index keys examined")
    assert stats["totalDocsExamined"] <= 2 * 8
    assert {t.host for t in await store.claim(8, LEASE, ["a.test"])} == {"b.test"}


@pytest.mark.gen_test(timeout=300)
async def test_counts_cost_is_constant(stores):
    store = await stores()
    examined = []
    for n in (100, 20_000):
        await add_many(store, n, "c.test")
        stats = await explain(store, {"find": "counters", "filter": {"_id": "jobs"}, "limit": 1})
        examined.append((stats["totalKeysExamined"], stats["totalDocsExamined"]))
    print(f"\ncounts(): (keys, documents) examined at 100 and 20,100 jobs: {examined}")
    assert examined[0] == examined[1] == (1, 1)
    assert (await store.counts())["queued"] == 20_100


@pytest.mark.gen_test(timeout=300)
async def test_list_results_deep_page_bounded(stores):
    store = await stores()
    await add_many(store, 3000, "d.test")
    while claimed := await store.claim(500, LEASE, []):
        await asyncio.gather(*(store.complete(Lease(t.id, t.lease_token), result(t.id, b"x")) for t in claimed))
    cursor = None
    for _ in range(20):  # 2,000 results deep
        page = await store.list_results(100, cursor)
        cursor = page.next_cursor
    from jobqueue.store.mongodb.schema import after_cursor

    query = {"status": "completed", **after_cursor("finished_at", cursor)}
    stats = await explain(store, {"find": "jobs", "filter": query, "projection": {"result": 1, "finished_at": 1},
                                  "sort": {"finished_at": -1, "_id": -1}, "limit": 101})
    print(f"\nresults page 21 of 100: {stats['totalDocsExamined']} documents, {stats['totalKeysExamined']} keys")
    assert stats["totalDocsExamined"] <= 2 * 101


@pytest.mark.gen_test(timeout=300)
async def test_oplog_bytes_per_completed_20kb_job(stores):
    store = await stores()
    local = store._client.local
    last = await local.oplog.rs.find_one({}, sort=[("$natural", -1)])
    await add_many(store, 50, "e.test")
    claimed = await store.claim(50, LEASE, [])
    for task in claimed:
        await store.complete(Lease(task.id, task.lease_token), result(task.id))
    entries = local.oplog.rs.find({"ts": {"$gt": last["ts"]}, "ns": {"$regex": f"^{store.db.name}\\."}})
    total = sum(len(bson.encode(e)) for e in await entries.to_list(None))
    print(f"\noplog bytes per completed job with a {len(PAGE)} B page: {total / 50:.0f} (insert, claim, body, "
          "completion, counters)")
    assert total / 50 < len(PAGE)  # compressed bodies: the page itself costs a fraction of its size


@pytest.mark.gen_test(timeout=120)
async def test_complete_ambiguous_network_error(stores):
    store, app = await own_store(stores)
    await add_many(store, 1, "f.test")
    [task] = await store.claim(1, LEASE, [])
    # The completion's findAndModify on jobs, not the body's pin (a findAndModify on bodies, which comes
    # first), and twice: the driver retries a retryable write once itself, so only a second close reaches
    # _finish as AutoReconnect and takes it down its recovery path (a check read, then the guarded update again).
    await fail_point(store, {"times": 2}, {"failCommands": ["findAndModify"], "closeConnection": True,
                                           "appName": app, "namespace": f"{store.db.name}.jobs"})
    done = await store.complete(Lease(task.id, task.lease_token), result(task.id))
    assert await fired(store) == 2
    assert done is not None and done.status == "completed"
    assert (await store.get_result(task.id, with_body=True)).body == PAGE
    assert await store.counts() == {"queued": 0, "running": 0, "completed": 1, "failed": 0, "cancelled": 0}


@pytest.mark.gen_test(timeout=120)
async def test_complete_applied_with_its_reply_and_check_read_lost(stores):
    """The server applies the completion and answers a write concern error (ambiguous); the check read that
    follows fails too (injected in the client): the guarded update then matches nothing, and the store must
    read `applied` again rather than call the lease lost."""
    from pymongo.errors import AutoReconnect

    from tests.mongo_faults import Faults

    store, app = await own_store(stores)
    await add_many(store, 1, "j.test")
    [task] = await store.claim(1, LEASE, [])
    await fail_point(store, {"times": 1}, {
        "failCommands": ["findAndModify"], "appName": app, "namespace": f"{store.db.name}.jobs",
        "writeConcernError": {"code": 64, "codeName": "WriteConcernFailed", "errmsg": "waiting for replication "
                              "timed out", "errInfo": {"wtimeout": True}}})
    lost: list[bool] = []

    async def check_lost(real: Any, query: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        if "result.body_ref" in query and not lost:
            lost.append(True)
            raise AutoReconnect("connection closed before the check read (injected)")
        return await real(query, *args, **kwargs)

    Faults(store).on("jobs", "find_one", check_lost)
    done = await store.complete(Lease(task.id, task.lease_token), result(task.id))
    assert await fired(store) == 1 and lost
    assert done is not None and done.status == "completed"
    assert await store.counts() == {"queued": 0, "running": 0, "completed": 1, "failed": 0, "cancelled": 0}


@pytest.mark.gen_test(timeout=300)
async def test_delivery_claims_listings_and_schedule_repair_read_bounded_index_ranges(stores):
    store = await stores()
    now = store.clock()

    def delivery(i: int, status: str, endpoint: str) -> dict[str, Any]:
        return {"_id": f"msg_{status}_{endpoint}_{i}", "event": "task.completed", "url": f"https://{endpoint}/h",
                "endpoint": f"https://{endpoint}", "status": status, "attempts": 0, "created_at": now - i,
                "updated_at": now, "next_attempt_at": now - 1, "payload": b"{}"}

    for start in range(0, 20_000, 5000):
        await store.db.webhook_deliveries.insert_many([delivery(i, "pending", "busy.test")
                                                       for i in range(start, start + 5000)])
        await store.db.webhook_deliveries.insert_many([delivery(i, "delivered", "ok.test")
                                                       for i in range(start, start + 5000)])
        await store.db.schedules.insert_many([{"_id": f"s{i}", "stopped_at": None, "next_run_at": now + 3600,
                                               "created_at": now} for i in range(start, start + 5000)])
    await store.db.webhook_deliveries.insert_many([delivery(i, "pending", "free.test") for i in range(10)])
    await store.db.webhook_deliveries.insert_many([delivery(i, "failed", "ok.test") for i in range(200)])
    claim = await explain(store, {"find": "webhook_deliveries", "limit": 8, "sort": {"next_attempt_at": 1},
                                  "filter": {"status": "pending", "next_attempt_at": {"$lte": now},
                                             "endpoint": {"$nin": ["https://busy.test"]}}, "projection": {"_id": 1}})
    failed = await explain(store, {"find": "webhook_deliveries", "filter": {"status": "failed"}, "limit": 101,
                                   "sort": {"created_at": -1, "_id": -1}, "projection": {"payload": 0}})
    repair = await explain(store, {"find": "schedules", "filter": {"stopped_at": None, "next_run_at": {"$lt": now}},
                                   "sort": {"next_run_at": 1}, "limit": 200, "projection": {"next_task_id": 1}})
    print(f"\ndocuments examined: a delivery claim of 8 skipping an endpoint with 20,000 due: "
          f"{claim['totalDocsExamined']}; 101 failed deliveries among 20,000 delivered: "
          f"{failed['totalDocsExamined']}; overdue schedules among 20,000 that are not: "
          f"{repair['totalDocsExamined']}")
    assert claim["totalDocsExamined"] <= 2 * 8
    assert failed["totalDocsExamined"] <= 2 * 101
    assert repair["totalDocsExamined"] <= 10


@pytest.mark.gen_test(timeout=120)
async def test_watch_history_lost_and_invalidate(stores):
    store, other = await stores(), await stores()
    ready, seen = asyncio.Event(), []
    watcher = store.watch(ready)

    async def follow() -> None:
        async for task in watcher:
            seen.append(task.id)

    following = asyncio.ensure_future(follow())
    try:
        await asyncio.wait_for(ready.wait(), 30)
        await fail_point(store, {"times": 1}, {"failCommands": ["getMore"], "errorCode": 286})
        await add_many(other, 3, "g.test")
        await store.db.jobs.drop()  # invalidates the stream
        await add_many(other, 2, "h.test")
        async def all_seen() -> bool:
            # events continue after both; or the stream gave way (ChangesUnavailable) and polling takes over
            return len(set(seen)) >= 5 or following.done()

        await wait_for(all_seen, 60, "the five new jobs through the recovered stream")
        if following.done() and len(set(seen)) < 5:
            with pytest.raises(ChangesUnavailable):
                following.result()
    finally:
        following.cancel()
        await asyncio.gather(following, return_exceptions=True)


@pytest.mark.gen_test(timeout=60)
async def test_standalone_falls_back_to_polling(stores):
    standalone = os.environ.get("JOBQUEUE_TEST_MONGODB_STANDALONE_URL")
    if not standalone:
        pytest.skip("needs a standalone MongoDB server (JOBQUEUE_TEST_MONGODB_STANDALONE_URL)")
    store = MongoStore(db_url(standalone, f"jobqueue_real_{os.urandom(4).hex()}"))
    await store.open()
    try:
        with pytest.raises(ChangesUnavailable):
            async for _task in store.watch():
                break
    finally:
        await store._client.drop_database(store.db.name)
        await store.close()


@pytest.mark.gen_test(timeout=60)
async def test_uri_write_concern_kept(stores):
    store = await stores("w=1&wtimeoutMS=5000")
    assert store.db.write_concern.document == {"w": 1, "wtimeout": 5000, "j": True}
    default = await stores()
    assert default.db.write_concern.document == {"w": "majority", "j": True}


@pytest.mark.gen_test(timeout=60)
async def test_index_conflict_message(stores):
    store = await stores()
    await store.db.jobs.drop_index("by_status")
    await store.db.jobs.create_index([("status", 1), ("_id", -1)], name="someone_elses")
    await store.db.meta.update_one({"_id": "schema"}, {"$set": {"version": 0}})
    again = MongoStore(store.url)
    with pytest.raises(StoreError, match="conflicts with one jobqueue needs"):
        await again.open()
    await again.close()


@pytest.mark.gen_test(timeout=600)
async def test_stepdown_under_load(stores):
    first = await stores()
    hello = await first.db.command("hello")
    if len(hello.get("hosts", [])) < 3:
        pytest.skip("needs a MongoDB replica set of three nodes (a stepdown needs an electable secondary)")
    processes = [first] + [await stores() for _ in range(3)]
    await add_many(first, 400, "i.test")
    completions: list[str] = []

    async def worker(store: MongoStore) -> None:
        while True:
            try:
                claimed = await store.claim(8, 5.0, [])
            except StoreError:
                await asyncio.sleep(0.5)
                continue
            if not claimed and not await store.db.jobs.count_documents({"status": {"$in": ["queued", "running"]}}):
                return
            for task in claimed:
                try:
                    if await store.complete(Lease(task.id, task.lease_token), result(task.id, b"ok")):
                        completions.append(task.id)
                except StoreError:
                    pass  # its lease runs out and another worker takes it
            if not claimed:
                await asyncio.sleep(0.5)

    running = [asyncio.ensure_future(worker(s)) for s in processes]
    await asyncio.sleep(1)
    try:
        await first._client.admin.command("replSetStepDown", 15)
    except Exception:  # the primary closes connections as it steps down
        pass
    await asyncio.wait_for(asyncio.gather(*running), 500)
    assert sorted(completions) == sorted(set(completions)) and len(completions) == 400  # each once
    await first.recount_counters()
    assert await first.counts() == {"queued": 0, "running": 0, "completed": 400, "failed": 0, "cancelled": 0}
    heads = [h["_id"] for h in await first.db.bodies.find({}, {"_id": 1}).to_list(None)]
    assert heads == [hashlib.sha256(b"ok").hexdigest()]  # 400 results, one body, none left over
