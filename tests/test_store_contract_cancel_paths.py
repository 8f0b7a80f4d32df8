"""Every cancel path behaves the same on both stores: the same job, run and outbox rows, field for field.

tests/test_store_contract_cancel.py checks each store against what a cancel must leave; this one runs each
path on SQLite and on MongoDB side by side, with the same ids and clocks, and compares everything the stores
answer afterwards, so a field one backend sets and the other forgets (the drift that happened before) shows
even where no expectation names it. The paths: one cancel, many (a filter's chunk, POST /queue_tasks/bulk), a
batch's (DELETE /batches/:id) and a stopped schedule's queued run (DELETE /schedules/:id). MongoDB is the
mongomock-motor mock unless JOBQUEUE_TEST_MONGODB_URL names a real server; the test ids say which.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import pytest

from jobqueue.models import Task, TaskError
from jobqueue.spec import JobSpec
from jobqueue.store.base import Lease, NewTask
from jobqueue.webhooks.delivery import DeliveryFilter
from jobqueue.webhooks.outbox import Outbox
from jobqueue.webhooks.spec import WebhookSpec
from tests.store_backends import FACTORIES, FakeClock

LEASE = 30.0
EVERY = 60.0
BATCH = "cancelpathsbatch"
JOB = "cancelpathsjob000000001"
EVERYONE = "https://hooks.example/all"
BATCH_HOOK = "https://hooks.example/batch"
PATHS = ("cancel", "cancel_many", "cancel_batch", "stop_schedule")
STATES = ("queued", "running", "retry_waiting")
CASES = [pytest.param(path, state, recurring, id=f"{path}-{state}-{'recurring' if recurring else 'once'}")
         for path in PATHS for state in STATES for recurring in (True, False)
         if path != "stop_schedule" or recurring]
PAIRS = [
    pytest.param("mongomock", id="sqlite-file-vs-mongodb-mongomock-motor-mock"),
    pytest.param("mongodb", id="sqlite-file-vs-mongodb-real-server", marks=pytest.mark.skipif(
        not os.environ.get("JOBQUEUE_TEST_MONGODB_URL"),
        reason="set JOBQUEUE_TEST_MONGODB_URL=mongodb://host:27017 to compare with a real MongoDB")),
]


class Names:
    """Ids each store made up itself (schedules, following runs, deliveries), renamed in order of appearance,
    so two stores' answers compare equal when they made the same things."""

    def __init__(self) -> None:
        self.seen: dict[str, str] = {}

    def __call__(self, value: str | None, kind: str) -> str | None:
        if value is None or value in (JOB, BATCH):
            return value
        return self.seen.setdefault(value, f"<{kind} {len(self.seen)}>")


def plain_task(task: Task | None, names: Names) -> dict[str, Any] | None:
    """A task's every field, with the ids the store made up renamed."""
    if task is None:
        return None
    return {**dataclasses.asdict(task), "id": names(task.id, "job"), "schedule_id": names(task.schedule_id, "schedule"),
            "lease_token": names(task.lease_token, "lease")}


async def run_path(store: Any, clock: FakeClock, path: str, state: str, recurring: bool) -> dict[str, Any]:
    """Put one job in `state`, cancel it by `path`, and read back everything the cancel may have touched."""
    await store.create_batch(BATCH, 1, ("t",), 300, WebhookSpec(BATCH_HOOK))
    spec = JobSpec(every=EVERY) if recurring else JobSpec()
    [task] = await store.add([NewTask(JOB, "https://example.com/watched", "example.com", spec, BATCH)])
    await store.seal_batch(BATCH, None)
    if state != "queued":
        clock.advance(1)
        [claimed] = await store.claim(1, LEASE, [])
        if state == "retry_waiting":
            clock.advance(1)
            error = TaskError("http_error", "HTTP 503 (attempt 1 of 3, next in 10s)")
            await store.reschedule(Lease(claimed.id, claimed.lease_token), clock() + 600, error, 503)
    clock.advance(1)
    before, cancelled_at = await store.get(JOB), clock()
    if path == "cancel":
        answered: Any = [await store.cancel(JOB)]
    elif path == "cancel_many":
        answered = await store.cancel_many([JOB])
    elif path == "cancel_batch":
        answered = await store.cancel_batch(BATCH, 500)
    else:
        schedule, answered = await store.stop_schedule(task.schedule_id)
    clock.advance(1)
    names = Names()
    after = await store.get(JOB)
    seen = {
        "cancelled_at": cancelled_at,
        "before": plain_task(before, names),
        "answered": [plain_task(t, names) for t in answered],
        "after": plain_task(after, names),
        "counts": await store.counts(),
        "batch": dataclasses.asdict(await store.get_batch(BATCH)),
    }
    if recurring:
        schedule = await store.get_schedule(task.schedule_id)
        seen["schedule"] = {**dataclasses.asdict(schedule), "id": names(schedule.id, "schedule"),
                            "next_task_id": names(schedule.next_task_id, "job"),
                            "last_task_id": names(schedule.last_task_id, "job")}
        seen["following"] = plain_task(await store.get(schedule.next_task_id) if schedule.next_task_id else None,
                                       names)
    await store.relay_outbox()
    listed = (await store.list_deliveries(DeliveryFilter(), 100, None)).items
    rows = [await store.get_delivery(d.id) for d in listed]  # a listing leaves the payloads out
    seen["outbox"] = sorted(
        ({**dataclasses.asdict(d), "id": None, "task_id": names(d.task_id, "job"),
          "payload": _renamed_payload(json.loads(d.payload), names)} for d in rows),
        key=lambda d: (d["event"], d["url"]))
    return seen


def _renamed_payload(message: dict[str, Any], names: Names) -> dict[str, Any]:
    task = message["data"].get("task")
    if task is not None:
        task["id"] = names(task["id"], "job")
        if "schedule_id" in task:
            task["schedule_id"] = names(task["schedule_id"], "schedule")
    return message


def differences(sqlite: Any, other: Any, where: str = "") -> list[str]:
    """Where two stores' answers differ, field by field: `where: sqlite's != mongodb's`."""
    if isinstance(sqlite, dict) and isinstance(other, dict):
        return [line for key in dict.fromkeys([*sqlite, *other])
                for line in differences(sqlite.get(key), other.get(key), f"{where}.{key}")]
    if isinstance(sqlite, list | tuple) and isinstance(other, list | tuple) and len(sqlite) == len(other):
        return [line for i, (a, b) in enumerate(zip(sqlite, other, strict=True))
                for line in differences(a, b, f"{where}[{i}]")]
    return [] if sqlite == other else [f"{where}: {sqlite!r} != {other!r}"]


async def open_on(backend: str, tmp_path: Any, clock: FakeClock) -> Any:
    """A fresh store of `backend` that writes the outbox for every finished job and batch."""
    store = FACTORIES[backend](tmp_path / backend, clock)()
    store.outbox = Outbox(EVERYONE)
    await store.open()
    return store


@pytest.mark.parametrize("mongodb", PAIRS)
@pytest.mark.parametrize(("path", "state", "recurring"), CASES)
@pytest.mark.gen_test
async def test_every_cancel_path_behaves_the_same_on_both_stores(tmp_path, mongodb, path, state, recurring):
    seen = {}
    for backend in ("sqlite", mongodb):
        (tmp_path / backend).mkdir()
        clock = FakeClock()
        store = await open_on(backend, tmp_path, clock)
        try:
            seen[backend] = await run_path(store, clock, path, state, recurring)
        finally:
            await store.close()
    sqlite, other = seen["sqlite"], seen[mongodb]
    assert differences(sqlite, other) == []
    # and what both did is right: cancelled then, nothing of its last attempt left, each webhook told once; or
    # (a stopped schedule's running run) left to finish
    before, after, then = sqlite["before"], sqlite["after"], sqlite["cancelled_at"]
    if path == "stop_schedule" and state == "running":
        assert after == before and sqlite["answered"] == []
        return
    assert after == {**before, "status": "cancelled", "finished_at": then, "updated_at": then, "http_status": None,
                     "error": None, "lease_token": None}
    assert sqlite["answered"] == [after]
    told = [(event, url, "pending", then) for event in ("batch.finished", "task.cancelled")
            for url in (EVERYONE, BATCH_HOOK)]
    assert [(d["event"], d["url"], d["status"], d["created_at"]) for d in sqlite["outbox"]] == told
