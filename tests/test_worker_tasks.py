"""The workers run every job as callbacks, without an asyncio task each (only a job whose redirects are followed
hop by hop gets one, for its fetch): cancelled mid-fetch it frees its slot, at shutdown it is given back."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from jobqueue.addresses import AddressPolicy
from jobqueue.fetcher import Fetcher, FetchSettings
from jobqueue.models import Task, TaskIds
from jobqueue.profiles import FetchProfiles
from jobqueue.retry_policy import RetryPolicy
from jobqueue.spec import FetchOptions, JobSpec
from jobqueue.store.base import NewTask
from jobqueue.store.sqlite.store import SQLiteStore
from jobqueue.workers import PoolSettings, WorkerPool
from tests.helpers import wait_for
from tests.target import Target

IDS = TaskIds()
LOOPBACK = AddressPolicy.build(False, ["127.0.0.0/8"])


class Pool:
    """A worker pool over a real SQLite file and a real curl client, with what it published."""

    def __init__(self, tmp_path: Any, profiles: FetchProfiles | None = None, **settings: Any) -> None:
        self.store = SQLiteStore(os.path.join(str(tmp_path), "pool.db"), synchronous="NORMAL")
        self.published: dict[str, Task] = {}
        self.profiles = profiles
        self.settings = PoolSettings(**{"workers": 8, "per_host": 8, "lease_seconds": 30.0, **settings})
        self.pool: WorkerPool | None = None

    async def start(self) -> WorkerPool:
        await self.store.open()
        fetcher = Fetcher(FetchSettings(max_clients=self.settings.workers), LOOPBACK, self.profiles)
        self.pool = WorkerPool(self.store, fetcher, self.settings, RetryPolicy(max_attempts=1),
                               lambda task: self.published.__setitem__(task.id, task))
        self.pool.start()
        return self.pool

    async def add(self, urls: list[str], spec: JobSpec | None = None) -> list[str]:
        tasks = await self.store.add([NewTask(IDS.new(), url, "127.0.0.1", spec or JobSpec()) for url in urls])
        assert self.pool is not None
        self.pool.wake()
        return [task.id for task in tasks]

    async def ended(self, ids: list[str], status: str = "completed") -> None:
        async def all_ended() -> bool:
            return all(self.published.get(i) is not None and self.published[i].status == status for i in ids)

        await wait_for(all_ended, 20.0, f"{len(ids)} jobs to be {status}")

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.stop()
        await self.store.close()


class TaskCensus:
    """Counts the asyncio tasks created on the loop, by the name of the coroutine each runs."""

    def __init__(self) -> None:
        self.created: Counter[str] = Counter()

    def factory(self, loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        code = getattr(coro, "cr_code", None)
        if code is not None and f"{os.sep}jobqueue{os.sep}" in code.co_filename:  # not the target site's
            self.created[coro.__qualname__] += 1
        return asyncio.Task(coro, loop=loop, **kwargs)


@contextlib.contextmanager
def task_census() -> Iterator[TaskCensus]:
    """Count the tasks created on the running loop while the block runs."""
    loop = asyncio.get_running_loop()
    census = TaskCensus()
    previous = loop.get_task_factory()
    loop.set_task_factory(census.factory)
    try:
        yield census
    finally:
        loop.set_task_factory(previous)


@pytest.mark.gen_test(timeout=60)
async def test_plain_jobs_get_no_task_of_their_own(tmp_path, target: Target):
    jobs = Pool(tmp_path)
    await jobs.start()
    try:
        with task_census() as census:
            ids = await jobs.add([target.url(f"/page/{i}") for i in range(60)])
            await jobs.ended(ids)
    finally:
        await jobs.close()
    assert census.created["Fetcher.fetch"] == 0, census.created
    per_job = sum(census.created.values()) / len(ids)
    assert per_job < 0.5, f"{per_job:.2f} tasks a job: {census.created}"
    stored = await _reopened(jobs.store.path, ids[0])
    assert stored.status == "completed"


@pytest.mark.gen_test(timeout=60)
async def test_a_job_with_a_profile_is_fetched_by_a_task(tmp_path, target: Target):
    profiles_file = tmp_path / "profiles.json"
    profiles_file.write_text('{"site": {"hosts": ["127.0.0.1"], "headers": {"Authorization": "Bearer t"}}}')
    jobs = Pool(tmp_path, profiles=FetchProfiles(str(profiles_file)))
    await jobs.start()
    try:
        with task_census() as census:
            ids = await jobs.add([target.url("/echo/profiled")], JobSpec(fetch=FetchOptions(profile="site")))
            await jobs.ended(ids)
    finally:
        await jobs.close()
    assert census.created["Fetcher.fetch"] == 1, census.created  # its redirects are followed hop by hop


@pytest.mark.gen_test(timeout=60)
async def test_cancelling_a_job_mid_fetch_frees_its_slot(tmp_path, target: Target):
    jobs = Pool(tmp_path, workers=1, per_host=1)
    pool = await jobs.start()
    try:
        [slow] = await jobs.add([target.url("/slow?delay=30")])

        async def fetching() -> bool:
            return target.state.hits["/slow"] == 1

        await wait_for(fetching, 10.0, "the slow job's fetch to start")
        [quick] = await jobs.add([target.url("/page/after")])  # waits: the one worker is busy
        jobs.published[slow] = await jobs.store.cancel(slow)
        pool.cancel_local(slow)
        await jobs.ended([quick])  # long before the slow page would have answered
        assert jobs.published[slow].status == "cancelled"
        assert (await jobs.store.get(slow)).status == "cancelled"
    finally:
        await jobs.close()


@pytest.mark.gen_test(timeout=60)
async def test_a_job_fetching_at_shutdown_is_given_back(tmp_path, target: Target):
    jobs = Pool(tmp_path, shutdown_grace=0.1)
    await jobs.start()
    try:
        [slow] = await jobs.add([target.url("/slow?delay=30")])

        async def fetching() -> bool:
            return target.state.hits["/slow"] == 1

        await wait_for(fetching, 10.0, "the slow job's fetch to start")
        assert jobs.pool is not None
        await jobs.pool.stop()
        jobs.pool = None
        back = await jobs.store.get(slow)
    finally:
        await jobs.close()
    assert back.status == "queued" and back.attempts == 0, back
    assert jobs.published[slow].status == "queued"


@pytest.mark.gen_test(timeout=60)
async def test_a_job_claimed_more_often_than_its_attempts_allow_fails_as_abandoned(tmp_path, target: Target):
    from tests.store_backends import FakeClock

    clock = FakeClock()
    jobs = Pool(tmp_path)
    jobs.store = SQLiteStore(os.path.join(str(tmp_path), "pool.db"), synchronous="NORMAL", clock=clock)
    await jobs.store.open()
    [job] = await jobs.store.add([NewTask(IDS.new(), target.url("/page/never"), "127.0.0.1", JobSpec())])
    assert len(await jobs.store.claim(1, 30.0, [])) == 1  # by a process that dies with it: its one attempt
    clock.advance(60)  # the lease runs out; the pool's claim is its second, past RetryPolicy(max_attempts=1)
    fetcher = Fetcher(FetchSettings(max_clients=2), LOOPBACK)
    jobs.pool = WorkerPool(jobs.store, fetcher, jobs.settings, RetryPolicy(max_attempts=1),
                           lambda task: jobs.published.__setitem__(task.id, task))
    jobs.pool.start()
    try:
        await jobs.ended([job.id], "failed")
        assert jobs.published[job.id].error.code == "abandoned"
        assert target.state.hits["/page/never"] == 0  # not fetched again
    finally:
        await jobs.close()


async def _reopened(path: str, task_id: str) -> Task:
    """The job as a fresh connection to the file sees it, after the pool's store was closed."""
    store = SQLiteStore(path, synchronous="NORMAL")
    await store.open()
    try:
        found = await store.get(task_id)
        assert found is not None
        return found
    finally:
        await store.close()


@pytest.mark.gen_test(timeout=60)
async def test_a_bug_while_reading_a_response_frees_the_slot_and_is_logged(tmp_path, target: Target, monkeypatch,
                                                                           caplog):
    from jobqueue import fetcher

    real_hop = fetcher._hop

    def breaks_on_one_page(request: Any, response: Any, error: Any) -> Any:
        if request.url.endswith("/page/broken"):
            raise RuntimeError("a bug reading this response")
        return real_hop(request, response, error)

    monkeypatch.setattr(fetcher, "_hop", breaks_on_one_page)
    jobs = Pool(tmp_path, workers=1, per_host=1)
    await jobs.start()
    try:
        [broken] = await jobs.add([target.url("/page/broken")])

        async def fetched() -> bool:
            return target.state.hits["/page/broken"] == 1

        await wait_for(fetched, 10.0, "the broken page to be fetched")
        [after] = await jobs.add([target.url("/page/after")])
        await jobs.ended([after])  # the one worker was given back
        await jobs.ended([broken], "failed")  # at once, not when its lease ends
        assert jobs.published[broken].error.code == "internal_error"
    finally:
        await jobs.close()
    assert any("failed unexpectedly" in r.getMessage() and r.exc_info for r in caplog.records)
