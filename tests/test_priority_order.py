"""Priorities through the real server: a job is claimed only for a free worker, so a job submitted later with a
higher priority starts before every lower one that has not started, and a job waiting for a worker stays
`queued` rather than showing `running`."""

from __future__ import annotations

import pytest

from tests.helpers import API, Api, wait_for
from tests.overlap_target import OverlapSite


@pytest.mark.gen_test(timeout=60)
async def test_a_later_higher_priority_job_runs_before_every_lower_one_not_started(make_server):
    site = OverlapSite()
    server = await make_server(workers=1)
    api = Api(f"http://127.0.0.1:{server.port}")
    try:
        await api.submit(site.url("/gate/hold"))  # holds the one worker until the gate opens

        async def worker_busy() -> bool:
            return "/gate/hold" in site.state.order

        await wait_for(worker_busy, 10, "the first job to hold the worker")
        ids = []
        for name, priority in (("low_a", -1), ("low_b", -1), ("default", 0), ("mid", 3), ("high", 7)):
            code, body = await api.call("POST", f"{API}/queue_tasks",
                                        {"url": site.url(f"/slow/{name}?delay=0"), "priority": priority})
            assert code == 201, body
            ids.append(body["task"]["id"])
        # none of them holds the worker, so none shows `running`
        assert [(await api.task(task_id))["status"] for task_id in ids] == ["queued"] * 5
        site.open("hold")

        async def all_done() -> bool:
            return site.state.answered == 5

        await wait_for(all_done, 30, "the five jobs to be fetched")
        assert site.state.order[1:] == ["/slow/high", "/slow/mid", "/slow/default", "/slow/low_a", "/slow/low_b"]
    finally:
        api.close()
        site.stop()
