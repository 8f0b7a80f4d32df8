"""Per-host pacing is the service's, not each process's: with --processes=2 a host's fetches start at least its
min_delay_ms apart (set by PUT /hosts/:host, or --host-delay), and --per-host=1 never opens two requests at once,
as the site sees them."""

from __future__ import annotations

import pytest

from tests.helpers import API, wait_for
from tests.host_pacing_site import LATENCY, PacedSite, gaps, started_gaps
from tests.overlap_target import OverlapSite
from tests.test_processes import start

DELAY = 0.3


async def _all_completed(service, count: int) -> None:
    async def done() -> bool:
        return (await service.api.counts())["completed"] == count

    await wait_for(done, 60, f"{count} jobs to complete")


async def _paced(service, site: PacedSite, ids: list[str]) -> None:
    """The jobs were claimed at least DELAY apart, whichever process claimed them, and reached the site spaced."""
    tasks = [await service.api.task(task_id) for task_id in ids]
    assert min(started_gaps(tasks)) >= DELAY - 0.002, started_gaps(tasks)  # started_at is to the millisecond
    assert min(gaps(site.times())) >= DELAY - LATENCY, gaps(site.times())


@pytest.mark.gen_test(timeout=120)
async def test_a_hosts_min_delay_holds_across_two_processes(tmp_path):
    site = PacedSite()
    service = await start(tmp_path, "--processes", "2")
    try:
        code, body = await service.api.call("PUT", f"{API}/hosts/127.0.0.1", {"min_delay_ms": int(DELAY * 1000)})
        assert code == 200, body
        assert body["host"]["policy"]["min_delay_ms"] == 300
        urls = [site.url(f"/page/p{i}") for i in range(8)]
        ids = [t["id"] for t in await service.api.submit_many(urls[:4])]
        ids += [t["id"] for t in await service.api.submit_many(urls[4:])]
        await _all_completed(service, len(urls))
        assert len(site.arrivals) == len(urls)
        await _paced(service, site, ids)
    finally:
        await service.stop()
        site.stop()


@pytest.mark.gen_test(timeout=120)
async def test_the_servers_host_delay_holds_across_two_processes(tmp_path):
    site = PacedSite()
    service = await start(tmp_path, "--processes", "2", "--host-delay", str(DELAY))
    try:
        urls = [site.url(f"/page/p{i}") for i in range(8)]
        ids = [t["id"] for t in await service.api.submit_many(urls)]
        code, body = await service.api.call("GET", f"{API}/hosts/127.0.0.1")  # jobs still queued: paced
        assert code == 200, body
        shown = body["host"]
        assert shown["policy"] == {"max_concurrency": None, "min_delay_ms": None, "paused": False}
        assert shown["effective"] == {"max_concurrency": 8, "min_delay_ms": 300, "paused": False}
        assert shown["queued"] + shown["running"] >= 1
        await _all_completed(service, len(urls))
        await _paced(service, site, ids)
    finally:
        await service.stop()
        site.stop()


@pytest.mark.gen_test(timeout=120)
async def test_a_hosts_max_concurrency_of_1_is_one_request_at_a_time_with_two_processes(tmp_path):
    site = OverlapSite()
    service = await start(tmp_path, "--processes", "2", "--per-host", "8")
    try:
        code, body = await service.api.call("PUT", f"{API}/hosts/127.0.0.1", {"max_concurrency": 1})
        assert code == 200, body
        urls = [site.url(f"/slow/p{i}?delay=0.1") for i in range(12)]
        await service.api.submit_many(urls[:6])
        await service.api.submit_many(urls[6:])
        await _all_completed(service, len(urls))
        assert site.state.answered == len(urls)
        assert site.state.most_in_flight == 1
    finally:
        await service.stop()
        site.stop()
