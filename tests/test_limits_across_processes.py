"""--per-host and --webhook-concurrency are totals of the service, not of each process: with --processes=2 a
limit of 1 still means one request at a time, counted at a slow site that sees every request of both processes."""

from __future__ import annotations

import base64

import pytest

from tests.helpers import wait_for
from tests.overlap_target import OverlapSite
from tests.test_processes import start

SECRET = "whsec_" + base64.b64encode(b"a test key of thirty-two bytes!!").decode()


@pytest.mark.gen_test(timeout=120)
async def test_per_host_1_is_one_request_at_a_time_with_two_processes(tmp_path):
    site = OverlapSite()
    service = await start(tmp_path, "--processes", "2", "--per-host", "1")
    try:
        urls = [site.url(f"/slow/p{i}?delay=0.1") for i in range(16)]
        await service.api.submit_many(urls[:8])
        await service.api.submit_many(urls[8:])

        async def all_done() -> bool:
            return (await service.api.counts())["completed"] == len(urls)

        await wait_for(all_done, 90, "every job to complete")
        assert site.state.answered == len(urls)
        assert site.state.most_in_flight == 1
    finally:
        await service.stop()
        site.stop()


@pytest.mark.gen_test(timeout=120)
async def test_webhook_concurrency_1_is_one_delivery_at_a_time_with_two_processes(tmp_path):
    pages, receiver = OverlapSite(), OverlapSite()
    service = await start(tmp_path, "--processes", "2", "--webhook-secret", SECRET,
                          "--webhook-url", receiver.url("/hook/all?delay=0.1"), "--webhook-concurrency", "1")
    try:
        urls = [pages.url(f"/slow/p{i}?delay=0") for i in range(16)]
        await service.api.submit_many(urls[:8])
        await service.api.submit_many(urls[8:])

        async def all_delivered() -> bool:
            return receiver.state.answered >= len(urls)

        await wait_for(all_delivered, 90, "every job's webhook to be delivered")
        assert receiver.state.most_in_flight == 1
    finally:
        await service.stop()
        pages.stop()
        receiver.stop()
