"""Per-host pacing through the real server (a SQLite file, real fetches of loopback sites): a paused host's jobs
stay queued while other hosts' go, and flow at once on resume; a Retry-After from one page holds back the host's
other pages; one slow host's backlog does not slow other hosts' jobs; GET/PUT /hosts answer the contract's shapes
and errors."""

from __future__ import annotations

import time

import pytest

from tests.helpers import API, Api, wait_for
from tests.host_pacing_site import LATENCY, PacedSite, gaps, started_gaps


async def _statuses(api: Api, ids: list[str]) -> list[str]:
    return [(await api.task(task_id))["status"] for task_id in ids]


async def _until_completed(api: Api, ids: list[str], timeout: float, what: str) -> None:
    async def done() -> bool:
        return set(await _statuses(api, ids)) == {"completed"}

    await wait_for(done, timeout, what)


@pytest.mark.gen_test(timeout=60)
async def test_a_paused_hosts_jobs_stay_queued_while_others_go_and_resume_lets_them_flow_at_once(make_server):
    paused, other = PacedSite("127.0.0.1"), PacedSite("127.0.0.2")
    server = await make_server(workers=4, per_host=2)
    api = Api(f"http://127.0.0.1:{server.port}")
    try:
        code, body = await api.call("PUT", f"{API}/hosts/127.0.0.1", {"paused": True})
        assert code == 200 and body["host"]["policy"]["paused"] is True, body
        held = [t["id"] for t in await api.submit_many([paused.url(f"/page/p{i}") for i in range(4)])]
        going = [t["id"] for t in await api.submit_many([other.url(f"/page/o{i}") for i in range(4)])]
        await _until_completed(api, going, 20, "the other host's jobs, submitted later")
        assert await _statuses(api, held) == ["queued"] * 4
        assert paused.arrivals == []
        code, body = await api.call("GET", f"{API}/hosts/127.0.0.1")
        assert code == 200 and (body["host"]["queued"], body["host"]["running"]) == (4, 0), body
        code, body = await api.call("PUT", f"{API}/hosts/127.0.0.1", {"paused": False})
        assert code == 200 and body["host"]["policy"]["paused"] is False, body
        await _until_completed(api, held, 10, "the resumed host's jobs")
    finally:
        api.close()
        paused.stop()
        other.stop()


@pytest.mark.gen_test(timeout=60)
async def test_a_retry_after_on_one_page_holds_back_the_hosts_other_pages(make_server):
    site, other = PacedSite("127.0.0.1"), PacedSite("127.0.0.2")
    server = await make_server(workers=4, per_host=1)
    api = Api(f"http://127.0.0.1:{server.port}")
    try:
        [busy] = await api.submit_many([site.url("/busy/first?after=2")])
        await wait_for(lambda: _async(bool(site.arrivals)), 10, "the first page to be fetched")
        pages = [t["id"] for t in await api.submit_many([site.url(f"/page/p{i}") for i in range(3)])]
        elsewhere = [t["id"] for t in await api.submit_many([other.url(f"/page/o{i}") for i in range(3)])]
        await _until_completed(api, elsewhere, 10, "another host's jobs while this one is held")
        await _until_completed(api, [busy["id"], *pages], 30, "the held host's pages")
        [(first, refused_at), *rest] = site.arrivals
        assert first == "/busy/first"
        assert min(at for _path, at in rest) - refused_at >= 2.0, site.arrivals
        code, body = await api.call("GET", f"{API}/hosts/127.0.0.1")
        assert code == 404, body  # done, no policy, its hold over
    finally:
        api.close()
        site.stop()
        other.stop()


async def _async(value: bool) -> bool:
    return value


@pytest.mark.gen_test(timeout=90)
async def test_one_slow_hosts_backlog_does_not_slow_other_hosts_jobs(make_server):
    slow, fast = PacedSite("127.0.0.1"), PacedSite("127.0.0.2")
    server = await make_server(workers=8, per_host=4)
    api = Api(f"http://127.0.0.1:{server.port}")
    try:
        code, body = await api.call("PUT", f"{API}/hosts/127.0.0.1", {"min_delay_ms": 1000, "paused": True})
        assert code == 200, body
        backlog = [slow.url(f"/page/s{i}") for i in range(3000)]  # older: first in the claim order
        slow_ids = []
        for start in range(0, len(backlog), 1000):
            slow_ids += [t["id"] for t in await api.submit_many(backlog[start:start + 1000])]
        code, body = await api.call("PUT", f"{API}/hosts/127.0.0.1", {"paused": False})
        assert code == 200, body
        began = time.monotonic()
        flowing = [t["id"] for t in await api.submit_many([fast.url(f"/page/f{i}") for i in range(200)])]
        await _until_completed(api, flowing[-5:], 30, "the other host's jobs")
        await _until_completed(api, flowing, 10, "every job of the other host")
        took = time.monotonic() - began
        assert took < 15, took
        assert len(slow.arrivals) <= took + 2
        await wait_for(lambda: _async(len(slow.arrivals) >= 3), 10, "the paced host's next pages")
        started = [task for task_id in slow_ids[:20] if (task := await api.task(task_id))["started_at"]]
        assert len(started) >= 3 and min(started_gaps(started)) >= 1.0 - 0.002, started_gaps(started)
        assert min(gaps(slow.times())) >= 1.0 - LATENCY, slow.arrivals[:5]
    finally:
        api.close()
        slow.stop()
        fast.stop()


@pytest.mark.gen_test(timeout=60)
async def test_hosts_are_listed_paged_and_searched_and_a_policy_is_checked(make_server):
    site, other = PacedSite("127.0.0.1"), PacedSite("127.0.0.2")
    server = await make_server(workers=2, per_host=3, host_delay=0.25)
    api = Api(f"http://127.0.0.1:{server.port}")
    try:
        for host in ("127.0.0.1", "127.0.0.2", "quiet.example"):
            code, body = await api.call("PUT", f"{API}/hosts/{host}", {"paused": True})
            assert code == 200, body
        await api.submit_many([site.url("/page/a"), other.url("/page/b"), other.url("/page/c")])
        code, body = await api.call("GET", f"{API}/hosts?limit=2")
        assert code == 200, body
        assert [h["host"] for h in body["hosts"]] == ["127.0.0.1", "127.0.0.2"] and body["next"]
        first = body["hosts"][0]
        assert first["policy"] == {"max_concurrency": None, "min_delay_ms": None, "paused": True}
        assert first["effective"] == {"max_concurrency": 3, "min_delay_ms": 250, "paused": True}
        assert (first["queued"], first["running"], first["next_start_at"]) == (1, 0, None)
        assert first["recent"]["error_rate"] is None
        code, body = await api.call("GET", f"{API}/hosts?cursor={body['next']}")
        assert [h["host"] for h in body["hosts"]] == ["quiet.example"] and body["next"] is None
        code, body = await api.call("GET", f"{API}/hosts?q=EXAMPLE")
        assert [h["host"] for h in body["hosts"]] == ["quiet.example"]
        # a field left out stays; null resets one
        code, body = await api.call("PUT", f"{API}/hosts/127.0.0.2", {"max_concurrency": 1, "min_delay_ms": 0})
        assert body["host"]["policy"] == {"max_concurrency": 1, "min_delay_ms": 0, "paused": True}
        code, body = await api.call("PUT", f"{API}/hosts/127.0.0.2", {"paused": None, "max_concurrency": None})
        assert body["host"]["policy"] == {"max_concurrency": None, "min_delay_ms": 0, "paused": False}
        code, body = await api.call("PUT", f"{API}/hosts/B%C3%BCcher.DE.", {"max_concurrency": 2})
        assert code == 200 and body["host"]["host"] == "xn--bcher-kva.de", body
        for payload, error in (([1], "invalid_policy"), ({"max_concurrency": 0}, "invalid_field"),
                               ({"min_delay_ms": 3_600_001}, "invalid_field"), ({"min_delay_ms": 1.5}, "invalid_field"),
                               ({"paused": "yes"}, "invalid_field"), ({"max_concurrency": True}, "invalid_field"),
                               ({"delay": 1}, "unknown_field")):
            code, body = await api.call("PUT", f"{API}/hosts/127.0.0.1", payload)
            assert (code, body["error"]["code"]) == (400, error), (payload, body)
        response = await api.raw("PUT", f"{API}/hosts/127.0.0.1", "{not json")
        assert response.code == 400
        code, body = await api.call("PUT", f"{API}/hosts/a%20b", {"paused": True})
        assert (code, body["error"]["code"]) == (400, "invalid_host"), body
        code, body = await api.call("GET", f"{API}/hosts/nothing.example")
        assert (code, body["error"]["code"]) == (404, "not_found"), body
        code, body = await api.call("GET", f"{API}/hosts?limit=0")
        assert (code, body["error"]["code"]) == (400, "invalid_limit"), body
    finally:
        api.close()
        site.stop()
        other.stop()


@pytest.mark.gen_test(timeout=30)
async def test_a_whole_number_written_with_a_point_is_a_whole_number(api):
    code, body = await api.call("PUT", f"{API}/hosts/example.com", {"min_delay_ms": 1500.0, "max_concurrency": 2.0})
    assert code == 200 and body["host"]["policy"]["min_delay_ms"] == 1500, body
    assert body["host"]["policy"]["max_concurrency"] == 2
    code, body = await api.call("PUT", f"{API}/hosts/example.com", {"min_delay_ms": 1500.5})
    assert code == 400 and body["error"]["code"] == "invalid_field"
