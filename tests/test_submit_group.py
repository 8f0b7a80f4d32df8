"""SubmitGroup: submissions arriving together are stored by one add, each answered with its own jobs."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from jobqueue.models import TaskIds
from jobqueue.store.base import NewTask
from jobqueue.store.sqlite.store import SQLiteStore
from jobqueue.submit_group import SubmitGroup
from tests.store_backends import FakeClock, mongomock_factory


class CountingStore:
    """A real store that counts its add calls, and refuses any add holding a job for `refused_url`."""

    def __init__(self, store: Any, refused_url: str | None = None) -> None:
        self.store = store
        self.capabilities = store.capabilities
        self.refused_url = refused_url
        self.adds: list[int] = []

    async def add(self, tasks: list[NewTask], idempotent: Any = None) -> Any:
        self.adds.append(len(tasks))
        if any(task.url == self.refused_url for task in tasks):
            raise ValueError("refused on purpose")
        return await self.store.add(tasks, idempotent)


def jobs(ids: TaskIds, *urls: str) -> list[NewTask]:
    return [NewTask(ids.new(), url, "example.com") for url in urls]


@pytest.fixture
def sqlite(io_loop: Any, tmp_path: Any) -> Any:
    store = SQLiteStore(str(tmp_path / "group.db"), synchronous="NORMAL")
    io_loop.run_sync(store.open)
    yield store
    io_loop.run_sync(store.close)


@pytest.mark.gen_test
async def test_requests_arriving_together_share_one_add_and_get_their_own_jobs_in_order(sqlite):
    ids, store = TaskIds(), CountingStore(sqlite)
    group = SubmitGroup(store)  # type: ignore[arg-type]
    requests = [jobs(ids, f"https://example.com/{i}/a", f"https://example.com/{i}/b") for i in range(5)]
    answers = await asyncio.gather(*(group.add(r) for r in requests))
    assert store.adds == [10]
    for request, answer in zip(requests, answers, strict=True):
        assert [t.id for t in answer] == [t.id for t in request]
        assert all(t.status == "queued" for t in answer)
    assert (await sqlite.counts())["queued"] == 10
    alone = await group.add(jobs(ids, "https://example.com/later"))  # a later request is its own add
    assert store.adds == [10, 1] and alone[0].url == "https://example.com/later"


@pytest.mark.gen_test
async def test_a_refused_request_fails_alone_and_the_others_are_stored(sqlite):
    ids, store = TaskIds(), CountingStore(sqlite, refused_url="https://example.com/bad")
    group = SubmitGroup(store)  # type: ignore[arg-type]
    good, bad = jobs(ids, "https://example.com/good"), jobs(ids, "https://example.com/bad")
    answers = await asyncio.gather(group.add(good), group.add(bad), return_exceptions=True)
    assert [t.id for t in answers[0]] == [good[0].id]
    assert isinstance(answers[1], ValueError)
    assert store.adds == [2, 1, 1]  # the group, then each request again on its own
    assert (await sqlite.counts())["queued"] == 1


@pytest.mark.gen_test
async def test_a_store_whose_add_is_not_atomic_gets_each_request_alone(tmp_path):
    """On MongoDB (here mongomock-motor, a mock) a shared add that failed half way would leave some requests'
    jobs stored and their retries refused, so requests are not grouped there."""
    mongo = mongomock_factory(tmp_path, FakeClock())()
    await mongo.open()
    try:
        ids, store = TaskIds(), CountingStore(mongo)
        group = SubmitGroup(store)  # type: ignore[arg-type]
        requests = [jobs(ids, f"https://example.com/{i}/a", f"https://example.com/{i}/b") for i in range(3)]
        answers = await asyncio.gather(*(group.add(r) for r in requests))
        assert store.adds == [2, 2, 2]
        assert [[t.id for t in a] for a in answers] == [[t.id for t in r] for r in requests]
        assert (await mongo.counts())["queued"] == 6
    finally:
        await mongo.close()
