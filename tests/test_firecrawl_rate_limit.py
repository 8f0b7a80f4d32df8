"""A Firecrawl request is charged to the rate limit like the jobs it creates (a scrape 1, a batch one per URL, a
crawl one per start URL), and a refusal is 429 with Retry-After in Firecrawl's error shape; the native POST
/crawls is charged too, in jobqueue's shape. Real server.py children started with --rate-limit."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Iterator

import pytest

from tests.crawl_site import CrawlSite
from tests.helpers import API, Api
from tests.test_durability import start_server

# two URLs and no refill during the test; one process, as each process has its own limit (docs/API.md)
LIMITED = ("--rate-limit", "0.001", "--rate-burst", "2", "--processes", "1")


@pytest.fixture
def site(io_loop) -> Iterator[CrawlSite]:
    served = CrawlSite()
    yield served
    served.stop()


async def stop(proc: asyncio.subprocess.Process, api: Api) -> None:
    api.close()
    proc.send_signal(signal.SIGTERM)
    await asyncio.wait_for(proc.wait(), 20)


@pytest.mark.slow
@pytest.mark.gen_test(timeout=90)
async def test_firecrawl_requests_spend_the_rate_limit_and_a_refusal_is_429_in_firecrawls_shape(tmp_path, site):
    proc, api = await start_server(str(tmp_path / "limited.db"), *LIMITED)
    try:
        code, body = await api.call("POST", "/v2/scrape", {"url": site.url("/a")})
        assert code == 200 and body["success"] is True, body
        code, body = await api.call("POST", "/v2/crawl", {"url": site.url("/"), "limit": 1, "sitemap": "skip"})
        assert code == 200 and body["success"] is True, body
        for path, request in (("/v2/batch/scrape", {"urls": [site.url("/b"), site.url("/c")]}),
                              ("/firecrawl/v2/crawl", {"url": site.url("/"), "limit": 1}),
                              ("/v2/scrape", {"url": site.url("/b")})):
            refused = await api.raw("POST", path, json.dumps(request),
                                    {"Content-Type": "application/json"})
            answer = json.loads(refused.body)
            assert refused.code == 429 and int(refused.headers["Retry-After"]) >= 1, (path, answer)
            assert answer["success"] is False and answer["code"] == "rate_limited", answer
            assert "too many URLs from this client" in answer["error"]
        code, body = await api.call("POST", "/v2/map", {"url": site.url("/"), "limit": 2})  # it queues no job
        assert code == 200 and body["success"] is True, body
        code, body = await api.call("GET", f"{API}/queue_tasks?tag=firecrawl")
        assert code == 200 and len(body["tasks"]) == 2  # the scrape and the crawl's seed
    finally:
        await stop(proc, api)


@pytest.mark.slow
@pytest.mark.gen_test(timeout=90)
async def test_a_native_crawl_start_spends_the_rate_limit(tmp_path, site):
    proc, api = await start_server(str(tmp_path / "limited.db"), *LIMITED)
    try:
        code, body = await api.call("POST", f"{API}/crawls", {"urls": [site.url("/"), site.url("/a")],
                                                              "max_pages": 2, "sitemap": "skip"})
        assert code == 201, body  # two start URLs: the burst
        refused = await api.raw("POST", f"{API}/crawls", json.dumps({"url": site.url("/c"), "max_pages": 1}),
                                {"Content-Type": "application/json"})
        assert refused.code == 429 and int(refused.headers["Retry-After"]) >= 1
        assert json.loads(refused.body)["error"]["code"] == "rate_limited"
    finally:
        await stop(proc, api)
