"""A Firecrawl crawl survives `kill -9`: started through the real firecrawl-py SDK against a server.py child on a
SQLite file, the server killed mid-crawl and restarted on the same file (on a new port: the SDK client is pointed
at it), the SDK's status polling sees the crawl finish and its `next` pages hold every page once."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import pytest
from firecrawl import Firecrawl
from firecrawl.v2.types import PaginationConfig

from tests.crawl_site import GeneratedSite
from tests.helpers import API, Api, wait_for
from tests.test_durability import start_server

PAGES = 120  # /g/0 .. /g/119, four links a page


@pytest.fixture
def generated(io_loop):
    site = io_loop.run_sync(_generated)
    yield site
    site.stop()


async def _generated() -> GeneratedSite:
    return GeneratedSite(PAGES, fanout=4, delay=0.02)


def sdk(api: Api) -> Firecrawl:
    return Firecrawl(api_key="unused", api_url=api.base_url)


async def crawl_counts(api: Api, crawl_id: str) -> dict[str, int]:
    code, body = await api.call("GET", f"{API}/crawls/{crawl_id}")
    assert code == 200, body
    return body["crawl"]["counts"]


@pytest.mark.slow
@pytest.mark.gen_test(timeout=180)
async def test_a_crawl_started_through_the_sdk_finishes_after_kill_9_and_a_restart(tmp_path, generated):
    db = str(tmp_path / "firecrawl.db")
    proc, api = await start_server(db)
    try:
        started = await asyncio.to_thread(sdk(api).start_crawl, generated.url("/g/0"), limit=PAGES,
                                          sitemap="skip", max_discovery_depth=10)
        assert started.url == f"{api.base_url}/v2/crawl/{started.id}"

        async def under_way() -> bool:
            counts = await crawl_counts(api, started.id)
            return counts.get("completed", 0) >= PAGES // 4 and counts.get("queued", 0) + counts.get("running", 0) > 0

        await wait_for(under_way, 60, "a quarter of the crawl to complete")
    finally:
        proc.send_signal(signal.SIGKILL)
        assert await asyncio.wait_for(proc.wait(), 15) == -signal.SIGKILL
        api.close()
    proc, api = await start_server(db)
    try:
        fc = sdk(api)  # the same crawl id, on the restarted server's port

        async def completed() -> Any:
            status = await asyncio.to_thread(fc.get_crawl_status, started.id,
                                             PaginationConfig(auto_paginate=False))
            assert status.status in ("scraping", "completed"), status.status
            return status if status.status == "completed" else None

        first = await wait_for(completed, 120, "the crawl to complete after the restart", interval=0.2)
        assert first.completed == first.total == PAGES and first.next is not None
        assert first.next.startswith(f"{api.base_url}/v2/crawl/{started.id}?")
        whole = await asyncio.to_thread(fc.get_crawl_status, started.id)  # follows `next` to the last page
    finally:
        api.close()
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 20)
    urls = [doc.metadata.source_url for doc in whole.data]
    assert sorted(urls) == sorted(generated.url(f"/g/{n}") for n in range(PAGES))
    assert all(doc.metadata.status_code == 200 and doc.markdown is not None for doc in whole.data)
    assert max(generated.hits.values()) <= 2  # a fetch the kill interrupted runs once more, nothing else does
