"""The real firecrawl-py SDK (4.x) against a real server and a real site on loopback: scrape with each format, a
404 page, map, crawl followed to the end, a crawl started, polled and cancelled, a batch scrape, a wrong key and
an unsupported format; the jobs behind them are ordinary jobs tagged firecrawl."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from firecrawl import Firecrawl
from firecrawl.v2.utils.error_handler import FirecrawlError

from tests.crawl_site import CrawlSite
from tests.helpers import API, Api


@pytest.fixture
def site() -> Iterator[CrawlSite]:
    served = CrawlSite()
    yield served
    served.stop()


def sdk(server: Any, key: str = "unused") -> Firecrawl:
    return Firecrawl(api_key=key, api_url=f"http://127.0.0.1:{server.port}")


@pytest.mark.gen_test(timeout=60)
async def test_scrape_answers_every_supported_format(jq, api, site):
    fc = sdk(jq)
    doc = await asyncio.to_thread(fc.scrape, site.url("/a"), formats=["markdown", "html", "rawHtml", "links"])
    assert doc.markdown.startswith("a\n") and f"({site.base}/a/deeper)" in doc.markdown
    assert doc.html.startswith("<body><p>a</p>") and f'href="{site.base}/a/deeper"' in doc.html
    assert doc.raw_html.startswith("<html><head><title>a</title>")
    assert doc.links == [f"{site.base}/", f"{site.base}/a/deeper"]
    meta = doc.metadata
    assert (meta.title, meta.source_url, meta.url, meta.status_code) == ("a", site.url("/a"), site.url("/a"), 200)
    assert meta.content_type == "text/html" and meta.credits_used == 1
    code, body = await api.call("GET", f"{API}/queue_tasks?tag=firecrawl")
    assert code == 200 and [t["id"] for t in body["tasks"]] == [meta.scrape_id]
    assert body["tasks"][0]["status"] == "completed"


@pytest.mark.gen_test(timeout=60)
async def test_scrape_of_a_404_page_is_a_success_with_its_status(jq, target):
    doc = await asyncio.to_thread(sdk(jq).scrape, target.url("/status/404"))
    assert doc.metadata.status_code == 404 and doc.metadata.source_url == target.url("/status/404")


@pytest.mark.gen_test(timeout=60)
async def test_an_unsupported_format_and_a_wrong_key_are_refused(make_server, site):
    server = await make_server(api_tokens=("right",))
    with pytest.raises(FirecrawlError) as refused:
        await asyncio.to_thread(sdk(server, "wrong").scrape, site.url("/a"))
    assert refused.value.status_code == 401
    with pytest.raises(FirecrawlError) as unsupported:
        await asyncio.to_thread(sdk(server, "right").scrape, site.url("/a"), formats=["summary"])
    assert unsupported.value.status_code == 400 and "summary" in str(unsupported.value)
    doc = await asyncio.to_thread(sdk(server, "right").scrape, site.url("/a"))
    assert doc.markdown.startswith("a\n")


@pytest.mark.gen_test(timeout=60)
async def test_map_lists_the_sites_urls(jq, site):
    found = await asyncio.to_thread(sdk(jq).map, site.url("/"))
    urls = [link.url for link in found.links]
    assert urls[:2] == [site.url("/from-sitemap"), site.url("/docs/in-sitemap")]
    assert site.url("/a") in urls and "http://elsewhere.test/no" not in urls


@pytest.mark.gen_test(timeout=90)
async def test_crawl_with_a_limit_is_followed_to_the_end(jq, api, site):
    job = await asyncio.to_thread(sdk(jq).crawl, site.url("/"), limit=4, poll_interval=1)
    assert job.status == "completed" and job.completed == job.total == 4 and len(job.data) == 4
    assert all(doc.markdown is not None and doc.metadata.status_code == 200 for doc in job.data)
    assert site.url("/") in {doc.metadata.source_url for doc in job.data}
    code, body = await api.call("GET", f"{API}/queue_tasks?tag=firecrawl")
    assert code == 200 and len(body["tasks"]) == 4


@pytest.mark.gen_test(timeout=90)
async def test_a_crawl_is_started_polled_and_cancelled(make_server):
    slow = CrawlSite(slow=True)
    try:
        server = await make_server()
        fc = sdk(server)
        started = await asyncio.to_thread(fc.start_crawl, slow.url("/"), limit=20, sitemap="skip")
        assert started.url.endswith(f"/v2/crawl/{started.id}")
        status = await _seed_done(fc, started.id)  # the rest of the slow site's pages wait for its release
        assert status.status == "scraping" and [d.metadata.source_url for d in status.data] == [slow.url("/")]
        assert await asyncio.to_thread(fc.cancel_crawl, started.id) is True
        slow.release.set()
        status = await asyncio.to_thread(fc.get_crawl_status, started.id)
        assert status.status == "cancelled"
        errors = await asyncio.to_thread(fc.get_crawl_errors, started.id)
        assert errors.errors == [] and errors.robots_blocked == []
    finally:
        slow.stop()


@pytest.mark.gen_test(timeout=90)
async def test_a_crawls_documents_are_paged_by_next(jq, api, site):
    fc = sdk(jq)
    job = await asyncio.to_thread(fc.crawl, site.url("/"), limit=30, poll_interval=1)
    assert job.status == "completed" and len(job.data) == job.completed
    urls = [doc.metadata.source_url for doc in job.data]
    assert len(urls) == len(set(urls))


@pytest.mark.gen_test(timeout=90)
async def test_batch_scrape(jq, site):
    fc = sdk(jq)
    urls = [site.url("/a"), site.url("/b"), site.url("/c")]
    job = await asyncio.to_thread(fc.batch_scrape, urls, formats=["markdown", "links"], poll_interval=1)
    assert job.status == "completed" and job.completed == job.total == 3
    assert sorted(doc.metadata.source_url for doc in job.data) == urls
    assert all(doc.links is not None for doc in job.data)
    errors = await asyncio.to_thread(fc.get_batch_scrape_errors, (await _last_batch(jq))["id"])
    assert errors.errors == []


async def _seed_done(fc: Firecrawl, crawl_id: str) -> Any:
    """The crawl's status once its seed page is done (its extraction pool is then at rest), within 30 s."""
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        status = await asyncio.to_thread(fc.get_crawl_status, crawl_id)
        if status.data or asyncio.get_running_loop().time() > deadline:
            return status
        await asyncio.sleep(0.1)


async def _last_batch(server: Any) -> dict[str, Any]:
    api = Api(f"http://127.0.0.1:{server.port}")
    try:
        code, body = await api.call("GET", f"{API}/batches")
        assert code == 200
        return body["batches"][0]
    finally:
        api.close()
