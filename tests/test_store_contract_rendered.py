"""The store contract for rendered jobs: each kind is claimed only by its own workers, the render options travel
with the job (and its next run), and a render's result keeps its facts and its captures (stored as bodies)."""

from __future__ import annotations

import dataclasses

import pytest

from jobqueue.models import Result, TaskIds
from jobqueue.spec import JobSpec
from jobqueue.store.base import Lease, NewTask

from .test_store_contract import LEASE, result_for

IDS = TaskIds()


def rendered_spec(**options: object) -> JobSpec:
    from jobqueue.render.options import parse_render

    render = parse_render(options or True)
    assert render is not None
    return JobSpec(render=render, capture=("screenshot", "pdf"))


def new(host: str = "example.com", spec: JobSpec | None = None) -> NewTask:
    task_id = IDS.new()
    return NewTask(task_id, f"https://{host}/{task_id}", host, spec or JobSpec())


def rendered_result(task_id: str) -> Result:
    result = result_for(task_id, b"<html><body>rendered</body></html>")
    return dataclasses.replace(result, rendered=True, blocked_requests=3, content_type="text/html; charset=utf-8",
                               render_timings={"navigation": 12.5, "total": 20.0},
                               artifacts={"screenshot": b"\x89PNG fake", "pdf": b"%PDF-1.4 fake"})


@pytest.mark.gen_test
async def test_each_kind_of_job_is_claimed_only_by_its_own_claim(open_store):
    store = await open_store()
    plain = [new() for _ in range(3)]
    rendered = [new(spec=rendered_spec(wait_ms=5)) for _ in range(2)]
    await store.add([plain[0], rendered[0], plain[1], rendered[1], plain[2]])
    fetched = await store.claim(10, LEASE, [], 10)
    assert sorted(t.id for t in fetched) == sorted(t.id for t in plain)
    assert all(t.render is None for t in fetched)
    renders = await store.claim(10, LEASE, [], 10, rendered=True)
    assert sorted(t.id for t in renders) == sorted(t.id for t in rendered)
    assert {t.render.wait_ms for t in renders} == {5}
    assert {t.render.capture for t in renders} == {("screenshot", "pdf")}
    assert await store.claim(10, LEASE, []) == [] and await store.claim(10, LEASE, [], rendered=True) == []


@pytest.mark.gen_test
async def test_per_host_slots_count_renders_too(open_store):
    store = await open_store()
    await store.add([new("one.example", rendered_spec()), new("one.example")])
    assert len(await store.claim(5, LEASE, [], 1, rendered=True)) == 1
    assert await store.claim(5, LEASE, [], 1) == []  # the host's one slot is the render's


@pytest.mark.gen_test
async def test_a_render_keeps_its_facts_and_its_captures(open_store):
    store = await open_store()
    (added,) = await store.add([new(spec=rendered_spec())])
    assert added.render is not None
    (task,) = await store.claim(1, LEASE, [], rendered=True)
    done = await store.complete(Lease(task.id, task.lease_token), rendered_result(task.id))
    assert done is not None and done.status == "completed"
    stored = await store.get_result(task.id, with_body=True)
    assert stored.rendered and stored.blocked_requests == 3 and stored.render_timings["navigation"] == 12.5
    assert stored.body == b"<html><body>rendered</body></html>"
    assert stored.to_json()["rendered"] is True and stored.to_json()["captured"] == ["pdf", "screenshot"]
    assert await store.get_artifact(task.id, "screenshot") == b"\x89PNG fake"
    assert await store.get_artifact(task.id, "pdf") == b"%PDF-1.4 fake"
    (plain,) = await store.add([new()])
    (claimed,) = await store.claim(1, LEASE, [])
    await store.complete(Lease(claimed.id, claimed.lease_token), result_for(claimed.id))
    assert await store.get_artifact(plain.id, "screenshot") is None
    assert not (await store.get_result(plain.id, with_body=False)).rendered
    assert "rendered" not in (await store.get_result(plain.id, with_body=False)).to_json()


@pytest.mark.gen_test
async def test_a_retry_drops_the_captures_with_the_result(open_store):
    store = await open_store()
    await store.add([new(spec=rendered_spec())])
    (task,) = await store.claim(1, LEASE, [], rendered=True)
    await store.complete(Lease(task.id, task.lease_token), rendered_result(task.id))
    before = await store.storage_stats()
    await store.retry(task.id)
    assert await store.get_artifact(task.id, "pdf") is None
    after = await store.storage_stats()
    assert after["distinct_bodies"] == before["distinct_bodies"] - 3


@pytest.mark.gen_test
async def test_deleting_a_render_drops_its_captures_unless_another_result_has_them(open_store):
    store = await open_store()
    await store.add([new(spec=rendered_spec()), new(spec=rendered_spec())])
    first, second = await store.claim(2, LEASE, [], rendered=True)
    for task in (first, second):  # the same page twice: one stored copy of each capture
        await store.complete(Lease(task.id, task.lease_token), rendered_result(task.id))
    before = await store.storage_stats()
    assert await store.delete_many([first.id]) == [first.id]
    assert await store.get_artifact(second.id, "pdf") == b"%PDF-1.4 fake"  # still named by the other result
    assert (await store.storage_stats())["distinct_bodies"] == before["distinct_bodies"]
    assert await store.delete_many([second.id]) == [second.id]
    assert (await store.storage_stats())["distinct_bodies"] == before["distinct_bodies"] - 3
