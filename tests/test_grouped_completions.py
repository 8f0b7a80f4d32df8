"""Completions written in groups (SQLiteStore.complete_many and the workers' CompletionGroups) keep what a
single complete() promises: each answered only once committed, a lost lease refused, one bad result failing
only itself, the body's digest taken once."""

from __future__ import annotations

import asyncio
import hashlib
import os
import sqlite3

import pytest

from jobqueue.completions import CompletionGroups
from jobqueue.models import Result, TaskIds
from jobqueue.store.base import Capabilities, Lease, NewTask
from jobqueue.store.sqlite.store import SQLiteStore

IDS = TaskIds()


def result_for(task_id: str, body: bytes, sha256: str = "0" * 64) -> Result:
    return Result(id=task_id, url="https://example.com/", final_url="https://example.com/", http_status=200,
                  headers={"content-type": "text/plain"}, content_type="text/plain", encoding="utf-8",
                  encoding_source="header", size=len(body), truncated=False, elapsed_ms=1.0,
                  fetched_at=1.0, sha256=sha256, body=body)


async def claimed_store(tmp_path, n: int) -> tuple[SQLiteStore, list[Lease]]:
    store = SQLiteStore(os.path.join(str(tmp_path), "groups.db"), synchronous="NORMAL")
    await store.open()
    await store.add([NewTask(IDS.new(), f"https://example.com/{i}", "example.com") for i in range(n)])
    tasks = await store.claim(n, 30.0, [])
    return store, [Lease(t.id, t.lease_token) for t in tasks]


def committed_rows(path: str) -> dict[str, tuple[str, str | None]]:
    """What another connection sees: the status of every job and the key of the body its result points at."""
    conn = sqlite3.connect(path)
    try:
        return {row[0]: (row[1], row[2]) for row in conn.execute(
            "SELECT jobs.id, jobs.status, bodies.sha256 FROM jobs LEFT JOIN results ON results.job_id = jobs.id"
            " LEFT JOIN bodies ON bodies.id = results.body_id")}
    finally:
        conn.close()


@pytest.mark.gen_test
async def test_a_group_is_committed_and_refuses_lost_leases(tmp_path):
    store, leases = await claimed_store(tmp_path, 4)
    try:
        await store.cancel(leases[2].task_id)  # its lease is gone
        bodies = [f"body {i}".encode() for i in range(4)]
        outcomes = await store.complete_many([(lease, result_for(lease.task_id, body))
                                              for lease, body in zip(leases, bodies, strict=True)])
        rows = committed_rows(store.path)
    finally:
        await store.close()
    assert [o.status if o is not None else None for o in outcomes] == ["completed", "completed", None, "completed"]
    for i in (0, 1, 3):
        assert rows[leases[i].task_id] == ("completed", hashlib.sha256(bodies[i]).hexdigest())
    assert rows[leases[2].task_id] == ("cancelled", None)


@pytest.mark.gen_test
async def test_one_bad_result_fails_alone(tmp_path):
    store, leases = await claimed_store(tmp_path, 3)
    try:
        results = [result_for(lease.task_id, b"ok") for lease in leases]
        results[1].headers = {"x": object()}  # cannot be stored as JSON
        outcomes = await store.complete_many(list(zip(leases, results, strict=True)))
        rows = committed_rows(store.path)
        assert (await store.counts())["completed"] == 2
    finally:
        await store.close()
    assert outcomes[0].status == "completed" and outcomes[2].status == "completed"
    assert isinstance(outcomes[1], TypeError)
    assert rows[leases[1].task_id][0] == "running"


@pytest.mark.gen_test
async def test_completions_of_one_turn_share_one_write(tmp_path):
    store, leases = await claimed_store(tmp_path, 5)
    calls: list[tuple[int, bool]] = []
    original = store.complete_many

    async def counted(completions, digests_checked=False):
        calls.append((len(completions), digests_checked))
        return await original(completions, digests_checked)

    store.complete_many = counted  # type: ignore[method-assign]
    try:
        groups = CompletionGroups(store)
        assert groups.grouped
        digest = hashlib.sha256(b"same").hexdigest()  # as result_from_response takes it
        futures = [groups.complete(lease, result_for(lease.task_id, b"same", digest)) for lease in leases]
        done = await asyncio.gather(*futures)
        rows = committed_rows(store.path)  # answered only once committed: another connection sees them
    finally:
        await store.close()
    assert calls == [(5, True)]
    assert all(task.status == "completed" for task in done)
    assert {rows[lease.task_id] for lease in leases} == {("completed", hashlib.sha256(b"same").hexdigest())}


@pytest.mark.gen_test
async def test_a_group_write_cancelled_with_the_loop_cancels_its_jobs_answers(tmp_path):
    store, leases = await claimed_store(tmp_path, 2)
    never = asyncio.Event()

    class StuckStore:
        """The real store, but its group write waits for ever (as when the loop is torn down mid-write)."""

        capabilities = Capabilities(grouped_complete=True)

        async def complete_many(self, completions, digests_checked=False):
            await never.wait()

    try:
        groups = CompletionGroups(StuckStore())  # type: ignore[arg-type]
        answers = [groups.complete(lease, result_for(lease.task_id, b"x")) for lease in leases]
        await asyncio.sleep(0)  # the turn ends: the group's write starts
        [writing] = list(groups._writing)
        writing.cancel()
        done, pending = await asyncio.wait(answers, timeout=5)
        assert not pending and all(answer.cancelled() for answer in done)
    finally:
        await store.close()
