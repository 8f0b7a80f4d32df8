"""The store contract for robots.txt: one entry per origin that every process on the database reads, a newer fetch
replacing an older one and an older never replacing a newer (two processes fetching at once keep a true answer),
a network error kept as a status of None.

Runs on every backend (a real SQLite file; MongoDB through the mongomock-motor mock; a real MongoDB when
JOBQUEUE_TEST_MONGODB_URL is set), like tests/test_store_contract.py, which holds the closed-store checks.
"""

from __future__ import annotations

import asyncio

import pytest

from jobqueue.models import TaskIds
from jobqueue.spec import JobSpec
from jobqueue.store.base import Lease, NewTask, RobotsEntry
from tests.test_store_contract import LEASE, result_for

BODY = "User-agent: *\nDisallow: /private\nCrawl-delay: 2\nSitemap: https://example.com/sitemap.xml\n# café ☕\n"


@pytest.mark.gen_test
async def test_robots_round_trip_per_origin_and_shared_by_every_process(open_store):
    store = await open_store()
    assert await store.get_robots("https://example.com") is None
    await store.put_robots("https://example.com", 200, BODY, 100.0, 100.0 + 86400)
    await store.put_robots("http://example.com:8080", 404, "", 101.0, 101.0 + 86400)
    await store.put_robots("https://down.example", None, "", 102.0, 102.0 + 86400)
    assert await store.get_robots("https://example.com") == RobotsEntry("https://example.com", 200, BODY, 100.0,
                                                                        100.0 + 86400)
    assert (await store.get_robots("http://example.com:8080")).status == 404
    assert (await store.get_robots("https://down.example")).status is None
    reader = await open_store()  # another process on the same database
    assert (await reader.get_robots("https://example.com")).body == BODY
    assert await reader.get_robots("https://example.org") is None


@pytest.mark.gen_test
async def test_a_newer_fetch_replaces_the_entry_and_an_older_one_never_does(open_store):
    store = await open_store()
    await store.put_robots("https://example.com", 200, BODY, 100.0, 200.0)
    await store.put_robots("https://example.com", 503, "", 300.0, 400.0)  # the entry expired; fetched again
    assert await store.get_robots("https://example.com") == RobotsEntry("https://example.com", 503, "", 300.0, 400.0)
    other = await open_store()
    await other.put_robots("https://example.com", 200, BODY, 250.0, 350.0)  # a slower process's older fetch
    assert (await store.get_robots("https://example.com")).fetched_at == 300.0


@pytest.mark.gen_test
async def test_two_processes_keeping_an_origin_at_once_keep_one_true_entry(open_store):
    first, second = await open_store(), await open_store()
    for round_ in range(5):
        origin = f"https://race{round_}.example"
        await asyncio.gather(first.put_robots(origin, 200, BODY, 10.0 + round_, 1000.0),
                             second.put_robots(origin, 404, "", 10.5 + round_, 1000.5))
        kept = await first.get_robots(origin)
        assert kept == RobotsEntry(origin, 404, "", 10.5 + round_, 1000.5)
        assert await second.get_robots(origin) == kept


@pytest.mark.gen_test
async def test_a_jobs_robots_field_is_stored_and_copied_to_its_schedules_next_run(open_store):
    store = await open_store()
    ids = TaskIds()
    obeying = NewTask(ids.new(), "https://example.com/a", "example.com", JobSpec(robots="obey", every=60.0))
    plain = NewTask(ids.new(), "https://example.com/b", "example.com")
    await store.add([obeying, plain])
    assert (await store.get(obeying.id)).robots == "obey" and (await store.get(plain.id)).robots is None
    assert (await store.get(obeying.id)).to_json()["robots"] == "obey"
    assert "robots" not in (await store.get(plain.id)).to_json()
    claimed = {task.id: task for task in await store.claim(2, LEASE, [])}
    await store.complete(Lease(obeying.id, claimed[obeying.id].lease_token), result_for(obeying.id))
    schedule = await store.get_schedule(obeying.id)
    assert schedule is not None and schedule.next_task_id not in (None, obeying.id)
    assert (await store.get(schedule.next_task_id)).robots == "obey"
