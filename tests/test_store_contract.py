"""The store contract: every backend must pass these, written once."""

from __future__ import annotations

import ast
import asyncio
import inspect
import pathlib
import typing
from typing import Any

import pytest

from jobqueue.idempotency import IdempotencyKey
from jobqueue.live_stats import StatsSlot
from jobqueue.models import CrawlLinks, Result, TaskError, TaskIds
from jobqueue.store.base import (
    ROLES,
    BadCursor,
    Conflict,
    Lease,
    NewCrawl,
    NewTask,
    NotFound,
    Store,
    StoreError,
    TaskFilter,
)
from jobqueue.webhooks.delivery import Delivery, DeliveryFilter, DeliveryOutcome

LEASE = 30.0
IDS = TaskIds()


def new_tasks(n: int, host: str = "example.com") -> list[NewTask]:
    return [NewTask(IDS.new(), f"https://{host}/{i}", host) for i in range(n)]


def result_for(task_id: str, body: bytes = b"hello") -> Result:
    return Result(id=task_id, url="https://example.com/", final_url="https://example.com/", http_status=200,
                  headers={"content-type": "text/plain"}, content_type="text/plain", encoding="utf-8",
                  encoding_source="header", size=len(body), truncated=False, elapsed_ms=1.0,
                  fetched_at=1.0, sha256="0" * 64, body=body)


@pytest.mark.gen_test
async def test_add_get_and_counts(open_store):
    store = await open_store()
    added = await store.add(new_tasks(3))
    assert [t.status for t in added] == ["queued"] * 3
    got = await store.get(added[1].id)
    assert got.url == added[1].url and got.attempts == 0
    assert await store.get("missing") is None
    assert (await store.counts())["queued"] == 3


@pytest.mark.gen_test
async def test_claim_takes_each_task_once_under_concurrency(open_store):
    first = await open_store()
    others = [await open_store() for _ in range(3)]
    added = await first.add(new_tasks(300))
    claimed: list[str] = []

    async def claimer(store: Any) -> None:
        while True:
            got = await store.claim(7, LEASE, [])
            if not got:
                return
            claimed.extend(t.id for t in got)

    await asyncio.gather(*(claimer(s) for s in [first, *others, first]))
    assert sorted(claimed) == sorted(t.id for t in added)
    counts = await first.counts()
    assert counts["running"] == 300 and counts["queued"] == 0


@pytest.mark.gen_test
async def test_claim_excludes_hosts_and_marks_running(open_store):
    store = await open_store()
    await store.add(new_tasks(2, "a.test") + new_tasks(2, "b.test"))
    got = await store.claim(10, LEASE, ["a.test"])
    assert {t.host for t in got} == {"b.test"}
    assert all(t.status == "running" and t.attempts == 1 and t.lease_token for t in got)


@pytest.mark.gen_test
async def test_expired_lease_is_claimable_again_and_stale_completion_is_refused(open_store, clock):
    store = await open_store()
    [task] = await store.add(new_tasks(1))
    [first] = await store.claim(1, LEASE, [])
    clock.advance(LEASE / 2)
    assert await store.claim(1, LEASE, []) == []
    clock.advance(LEASE)
    [second] = await store.claim(1, LEASE, [])
    assert second.id == task.id and second.attempts == 2 and second.lease_token != first.lease_token
    assert await store.complete(Lease(task.id, first.lease_token), result_for(task.id, b"stale")) is None
    done = await store.complete(Lease(task.id, second.lease_token), result_for(task.id, b"fresh"))
    assert done.status == "completed"
    stored = await store.get_result(task.id, with_body=True)
    assert stored.body == b"fresh"
    page = await store.list_results(100, None)
    assert [r.id for r in page.items] == [task.id]


@pytest.mark.gen_test
async def test_completion_is_idempotent(open_store):
    store = await open_store()
    [task] = await store.add(new_tasks(1))
    [claimed] = await store.claim(1, LEASE, [])
    lease = Lease(task.id, claimed.lease_token)
    assert (await store.complete(lease, result_for(task.id))).status == "completed"
    assert await store.complete(lease, result_for(task.id, b"again")) is None
    assert (await store.get_result(task.id, with_body=True)).body == b"hello"
    counts = await store.counts()
    assert counts["completed"] == 1 and counts["running"] == 0


@pytest.mark.gen_test
async def test_heartbeat_keeps_the_lease_and_reports_lost_ones(open_store, clock):
    store = await open_store()
    await store.add(new_tasks(2))
    a, b = await store.claim(2, LEASE, [])
    clock.advance(LEASE - 1)
    await store.cancel(b.id)
    lost = await store.extend([Lease(a.id, a.lease_token), Lease(b.id, b.lease_token)], LEASE)
    assert lost == [b.id]
    clock.advance(LEASE - 1)
    assert await store.claim(5, LEASE, []) == []


@pytest.mark.gen_test
async def test_reschedule_waits_and_fail_is_final(open_store, clock):
    store = await open_store()
    await store.add(new_tasks(2))
    a, b = await store.claim(2, LEASE, [])
    err = TaskError("timeout", "slow")
    again = await store.reschedule(Lease(a.id, a.lease_token), clock() + 10, err, None)
    assert again.status == "queued" and again.error.code == "timeout"
    failed = await store.fail(Lease(b.id, b.lease_token), TaskError("blocked", "no"), None)
    assert failed.status == "failed" and failed.finished_at is not None
    assert await store.claim(5, LEASE, []) == []
    clock.advance(11)
    [retried] = await store.claim(5, LEASE, [])
    assert retried.id == a.id and retried.attempts == 2


@pytest.mark.gen_test
async def test_release_gives_back_without_counting(open_store):
    store = await open_store()
    await store.add(new_tasks(1))
    [claimed] = await store.claim(1, LEASE, [])
    [released] = await store.release([Lease(claimed.id, claimed.lease_token)])
    assert released.status == "queued" and released.attempts == 0
    [again] = await store.claim(1, LEASE, [])
    assert again.attempts == 1


@pytest.mark.gen_test
async def test_cancel_and_retry_rules(open_store):
    store = await open_store()
    a, b = await store.add(new_tasks(2))
    with pytest.raises(Conflict):
        await store.retry(a.id)
    cancelled = await store.cancel(a.id)
    assert cancelled.status == "cancelled"
    with pytest.raises(Conflict) as info:
        await store.cancel(a.id)
    assert info.value.task.status == "cancelled"
    with pytest.raises(NotFound):
        await store.cancel("nope")
    with pytest.raises(NotFound):
        await store.retry("nope")
    [claimed] = await store.claim(1, LEASE, [])
    await store.complete(Lease(b.id, claimed.lease_token), result_for(b.id))
    retried = await store.retry(b.id)
    assert retried.status == "queued" and retried.attempts == 0 and retried.http_status is None
    assert await store.get_result(b.id, with_body=False) is None
    assert (await store.retry(a.id)).status == "queued"


@pytest.mark.gen_test
async def test_cancel_clears_the_previous_attempts_error_and_status(open_store, clock):
    store = await open_store()
    await store.add(new_tasks(2))
    first = await store.claim(2, LEASE, [])
    err = TaskError("http_error", "HTTP 503 (attempt 1 of 3, next in 1.2s)")
    for task in first:
        await store.reschedule(Lease(task.id, task.lease_token), clock() + 10, err, 503)
    clock.advance(11)
    [running] = await store.claim(1, LEASE, [])
    waiting = next(t for t in first if t.id != running.id)
    assert running.error is not None and running.status == "running"
    for task_id in (running.id, waiting.id):
        cancelled = await store.cancel(task_id)
        stored = await store.get(task_id)
        for task in (cancelled, stored):
            assert task.status == "cancelled" and task.error is None and task.http_status is None, task


def role_methods(role: type) -> dict[str, Any]:
    """The operations (coroutines) one role Protocol of jobqueue/store/roles.py declares."""
    return {name: member for name, member in vars(role).items() if inspect.iscoroutinefunction(member)}


def protocol_methods() -> dict[str, Any]:
    """Every operation of the Store Protocol, read from its roles, so a new one cannot be missed."""
    return {name: member for role in ROLES for name, member in role_methods(role).items()}


def protocol_attributes() -> list[str]:
    """The Protocol's data members (name, capabilities, outbox, ...)."""
    return [name for name in typing.get_type_hints(Store) if name not in protocol_methods()]


# Not called on a closed store, and why; any other operation of the Protocol is.
NOT_ON_A_CLOSED_STORE = {
    "open": "opens it again",
    "close": "closing twice is allowed (servers close on every way out)",
}
# May answer their nothing-to-do value (0) instead, as the Protocol documents, where a backend never needs the
# database for them: relaying an outbox SQLite does not have (or with webhooks off), vacuuming MongoDB.
MOOT_ON_SOME_BACKENDS = {"relay_outbox": 0, "vacuum_step": 0}
# Run on every backend by the tests that take the open_store fixture, wherever they are: the suite must call each
# operation of the Protocol in one of them (or say here why not).
CONTRACT_FILES = sorted(pathlib.Path(__file__).parent.glob("test_*.py"))
WITHOUT_A_CONTRACT_TEST: dict[str, str] = {}


def closed_store_samples(task_id: str, lease: Lease) -> dict[Any, Any]:
    """An argument of each type the Protocol's operations take, for calling each on a closed store."""
    delivery = Delivery(id="d", event="task.completed", url="https://example.com/hook", payload=b"{}",
                        created_at=1.0, task_id=task_id)
    return {
        str: task_id, int: 10, float: 0.0, bool: True, list[str]: [task_id], tuple[str, ...]: (),
        list[NewTask]: new_tasks(1), TaskFilter: TaskFilter(), Lease: lease, list[Lease]: [lease],
        Result: result_for(task_id), TaskError: TaskError("timeout", "slow"), IdempotencyKey: IdempotencyKey(
            "ip:1", "k", "f"), Delivery: delivery, list[Delivery]: [delivery],
        DeliveryOutcome: DeliveryOutcome("delivered", 200), DeliveryFilter: DeliveryFilter(), Any: None,
        list[StatsSlot]: [StatsSlot(60, 0)], NewCrawl: NewCrawl("c", ["https://example.com/"], {}, 10),
        CrawlLinks: CrawlLinks(new_tasks(1)),
    }


def sample_arguments(method: Any, samples: dict[Any, Any]) -> dict[str, Any]:
    """Arguments for a Protocol operation, by type: a parameter with a default keeps it, an optional one gets None."""
    hints = typing.get_type_hints(method)
    arguments = {}
    for name, parameter in inspect.signature(method).parameters.items():
        if name == "self" or parameter.default is not inspect.Parameter.empty:
            continue
        kind = hints[name]
        if type(None) in typing.get_args(kind):
            arguments[name] = None
        elif kind in samples:
            arguments[name] = samples[kind]
        else:
            raise AssertionError(f"Store.{method.__name__}({name}: {kind}): add a sample {kind} to "
                                 "closed_store_samples")
    return arguments


def operations_called_by_contract_tests() -> dict[str, set[str]]:
    """Each name called as a method by a test that takes open_store, or by a helper of its file: which tests."""
    called: dict[str, set[str]] = {}
    for path in CONTRACT_FILES:
        tree = ast.parse(path.read_text())
        functions = [node for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]
        tests = [f for f in functions if f.name.startswith("test_") and "open_store" in {a.arg for a in f.args.args}]
        if not tests:
            continue
        for function in tests + [f for f in functions if not f.name.startswith("test_")]:
            for node in ast.walk(function):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                    called.setdefault(node.func.attr, set()).add(f"{path.name}::{function.name}")
    return called


def accepts_the_protocols_call(found: Any, member: Any) -> bool:
    """The implementation takes the Protocol's parameters, in order; any more it has are optional."""
    theirs, ours = list(inspect.signature(found).parameters.values()), list(inspect.signature(member).parameters)
    return ([p.name for p in theirs[:len(ours)]] == ours
            and all(p.default is not inspect.Parameter.empty for p in theirs[len(ours):]))


def test_every_operation_of_every_role_has_a_contract_test_and_a_closed_store_check():
    """A new operation of a role Protocol fails here until the suite runs it on every backend and can call it on a
    closed store; what this reads is jobqueue/store/roles.py, so nothing is listed by hand."""
    called = operations_called_by_contract_tests()
    samples = closed_store_samples("t", Lease("t", "token"))
    missing = {}
    for role in ROLES:
        for name, member in role_methods(role).items():
            where = f"{role.__name__}.{name}"
            if name not in called and name not in WITHOUT_A_CONTRACT_TEST:
                missing[where] = "no test taking open_store calls it"
            if name not in NOT_ON_A_CLOSED_STORE:
                try:
                    sample_arguments(member, samples)
                except AssertionError as exc:
                    missing[where] = str(exc)
    assert missing == {}
    exemptions = set(NOT_ON_A_CLOSED_STORE) | set(MOOT_ON_SOME_BACKENDS) | set(WITHOUT_A_CONTRACT_TEST)
    assert exemptions <= set(protocol_methods()), "an exemption names no operation of the Protocol"
    assert len(protocol_methods()) >= 57 and len(ROLES) >= 9


@pytest.mark.parametrize("backend", ["sqlite", "mongodb"])
def test_every_backend_implements_every_operation_of_the_protocol(backend):
    if backend == "sqlite":
        from jobqueue.store.sqlite.store import SQLiteStore as implementation
    else:
        pytest.importorskip("motor")
        from jobqueue.store.mongodb.store import MongoStore as implementation
    wrong = {}
    for role in ROLES:
        for name, member in role_methods(role).items():
            found = getattr(implementation, name, None)
            if not inspect.iscoroutinefunction(found):
                wrong[f"{role.__name__}.{name}"] = "missing (or not async)"
            elif not accepts_the_protocols_call(found, member):
                wrong[f"{role.__name__}.{name}"] = (f"{inspect.signature(found)} does not take the Protocol's "
                                                    f"{inspect.signature(member)}")
    assert wrong == {}


@pytest.mark.parametrize("role", ROLES, ids=lambda role: role.__name__)
@pytest.mark.gen_test
async def test_every_operation_on_a_closed_store_raises_store_error(open_store, role):
    """StoreError is what the API turns into 503 database_unavailable; anything else would be a 500."""
    store = await open_store()
    assert [name for name in protocol_attributes() if not hasattr(store, name)] == []
    [task] = await store.add(new_tasks(1))
    [claimed] = await store.claim(1, LEASE, [])
    samples = closed_store_samples(task.id, Lease(task.id, claimed.lease_token))
    await store.close()
    wrong = {}
    for name, method in role_methods(role).items():
        if name in NOT_ON_A_CLOSED_STORE:
            continue
        try:
            answer = await getattr(store, name)(**sample_arguments(method, samples))
        except StoreError:
            continue
        except Exception as exc:
            wrong[name] = repr(exc)
        else:
            if name not in MOOT_ON_SOME_BACKENDS or answer != MOOT_ON_SOME_BACKENDS[name]:
                wrong[name] = f"no error ({answer!r})"
    assert wrong == {}


@pytest.mark.gen_test
async def test_paging_covers_every_task_exactly_once(open_store):
    store = await open_store()
    added = []
    for _ in range(5):
        added += await store.add(new_tasks(47))
    seen: list[str] = []
    cursor = None
    while True:
        page = await store.list(TaskFilter(), 50, cursor)
        seen += [t.id for t in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 235
    assert seen == [t.id for t in reversed(added)]
    claimed = await store.claim(30, LEASE, [])
    seen_running = []
    cursor = None
    while True:
        page = await store.list(TaskFilter(status="running"), 7, cursor)
        seen_running += [t.id for t in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert sorted(seen_running) == sorted(t.id for t in claimed)
    with pytest.raises(BadCursor):
        await store.list(TaskFilter(), 10, "garbage")


@pytest.mark.gen_test
async def test_counts_follow_every_transition(open_store):
    store = await open_store()
    tasks = await store.add(new_tasks(4))
    claimed = await store.claim(3, LEASE, [])
    by_id = {t.id: t for t in claimed}
    ids = list(by_id)
    await store.complete(Lease(ids[0], by_id[ids[0]].lease_token), result_for(ids[0]))
    await store.fail(Lease(ids[1], by_id[ids[1]].lease_token), TaskError("blocked", "x"), None)
    await store.cancel(ids[2])
    unclaimed = next(t.id for t in tasks if t.id not in by_id)
    assert await store.counts() == {"queued": 1, "running": 0, "completed": 1, "failed": 1, "cancelled": 1}
    await store.cancel(unclaimed)
    assert (await store.counts())["cancelled"] == 2


@pytest.mark.gen_test
async def test_changed_since_sees_recent_changes(open_store, clock):
    store = await open_store()
    await store.add(new_tasks(2))
    mark = clock()
    clock.advance(5)
    [_claimed, _] = await store.claim(2, LEASE, [])
    changed = await store.changed_since(mark + 1, 100)
    assert len(changed) == 2 and all(t.status == "running" for t in changed)
    assert await store.changed_since(clock() + 1, 100) == []


@pytest.mark.gen_test(timeout=30)
async def test_change_stream_sees_other_writers(open_store, request):
    """Backends with change streams (a MongoDB replica set) must report every process's writes."""
    from jobqueue.store.base import ChangesUnavailable

    store, other = await open_store(), await open_store()
    if not hasattr(store, "watch"):
        pytest.skip(f"{request.node.callspec.id}: this backend has no change streams; processes poll instead")
    ready = asyncio.Event()
    stream = store.watch(ready)
    first = asyncio.ensure_future(stream.__anext__())
    opened = asyncio.ensure_future(ready.wait())
    try:
        await asyncio.wait([first, opened], timeout=10, return_when=asyncio.FIRST_COMPLETED)
        if first.done() and isinstance(first.exception(), ChangesUnavailable):
            pytest.skip(f"{request.node.callspec.id}: {first.exception()}")
        assert ready.is_set(), "the change stream did not open within 10 s"
        [added] = await other.add(new_tasks(1))
        seen = await asyncio.wait_for(first, 10)
    finally:
        opened.cancel()
        first.cancel()
        await stream.aclose()
    assert seen.id == added.id and seen.status == "queued"


@pytest.mark.gen_test(timeout=60)
async def test_bodies_near_the_cap_round_trip(open_store):
    """A 9 MiB body (split into 256 KiB parts on MongoDB) is stored and read back byte for byte."""
    store = await open_store()
    [task] = await store.add(new_tasks(1))
    [claimed] = await store.claim(1, LEASE, [])
    body = bytes(range(256)) * (9 * 4096)
    await store.complete(Lease(task.id, claimed.lease_token), result_for(task.id, body))
    assert (await store.get_result(task.id, with_body=True)).body == body
    await store.retry(task.id)
    assert await store.get_result(task.id, with_body=True) is None
