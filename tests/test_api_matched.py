"""`matched` and `matched_counts` on GET /queue_tasks: the first page of a listing says how many jobs its whole
filter matches and, with the status filter left out, how many by status; past the count's cap it says nothing."""

from __future__ import annotations

import pytest

import handlers.tasks
from tests.helpers import API, wait_for

NONE = {"queued": 0, "running": 0, "completed": 0, "failed": 0, "cancelled": 0}


@pytest.mark.gen_test(timeout=60)
async def test_the_first_page_counts_the_whole_filter_by_status(api, target, monkeypatch):
    ok = await api.submit_many([target.url(f"/page/{i}") for i in range(3)])
    missing = await api.submit_many([target.url(f"/status/404?i={i}") for i in range(2)])
    for task in ok + missing:
        await api.wait_finished(task["id"])
    code, body = await api.call("GET", f"{API}/queue_tasks?http_status=4xx&limit=1")
    assert code == 200 and len(body["tasks"]) == 1 and body["next"]
    assert body["matched"] == 2 and body["matched_counts"] == {**NONE, "completed": 2}
    # a status on top: `matched` counts the whole filter, `matched_counts` the filter without its status
    code, body = await api.call("GET", f"{API}/queue_tasks?status=failed&url=/page/")
    assert body["tasks"] == [] and body["matched"] == 0 and body["matched_counts"] == {**NONE, "completed": 3}
    code, body = await api.call("GET", f"{API}/queue_tasks?status=completed&host=127.0.0.1&limit=2")
    assert body["matched"] == 5 and body["matched_counts"] == {**NONE, "completed": 5}
    # the pages after the first match the same jobs: they are not counted again
    code, rest = await api.call("GET", f"{API}/queue_tasks?cursor={body['next']}")
    assert code == 200 and len(rest["tasks"]) == 2 and "matched" not in rest and "matched_counts" not in rest
    # no filter, or only a status: the queue's own counts
    code, body = await api.call("GET", f"{API}/queue_tasks?limit=1")
    assert body["matched"] == 5 and body["matched_counts"] == body["counts"]
    code, body = await api.call("GET", f"{API}/queue_tasks?status=queued&limit=1")
    assert body["matched"] == 0 and body["matched_counts"] == body["counts"]
    # full-text search is counted too, once the pages are indexed
    async def counted():
        code, listed = await api.call("GET", f"{API}/queue_tasks?q=page")
        assert code == 200, listed
        return listed if listed.get("matched") == 3 else None

    listed = await wait_for(counted, 10, "the pages to be indexed")
    assert listed["matched_counts"] == {**NONE, "completed": 3}
    # more to count than the cap: neither field, rather than a number that is wrong or slow to get
    monkeypatch.setattr(handlers.tasks, "COUNT_CAP", 4)
    code, body = await api.call("GET", f"{API}/queue_tasks?host=127.0.0.1&limit=1")
    assert code == 200 and len(body["tasks"]) == 1 and "matched" not in body and "matched_counts" not in body
    code, body = await api.call("GET", f"{API}/queue_tasks?http_status=404")  # an index finds its 2: counted
    assert body["matched"] == 2
    code, body = await api.call("GET", f"{API}/queue_tasks?http_status=4xx")  # a walk would read all 5 rows
    assert "matched" not in body
