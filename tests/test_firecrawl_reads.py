"""What a synchronous Firecrawl scrape reads from the store: the job it waits for once (after listening, in case
another process finished it first), the finished job from the hub, and a document of markdown and metadata from
the views the job's completion kept, without reading the page's body; a format that is the page itself (rawHtml)
reads the body once."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.crawl_site import CrawlSite


@pytest.fixture
def site() -> Iterator[CrawlSite]:
    served = CrawlSite()
    yield served
    served.stop()


def count_reads(store: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Count the store's reads of jobs and results (with and without body) from now on."""
    reads = {"job": 0, "result": 0, "body": 0}
    get, get_result = store.get, store.get_result

    async def counted_get(task_id: str) -> Any:
        reads["job"] += 1
        return await get(task_id)

    async def counted_get_result(task_id: str, with_body: bool) -> Any:
        reads["body" if with_body else "result"] += 1
        return await get_result(task_id, with_body)

    monkeypatch.setattr(store, "get", counted_get)
    monkeypatch.setattr(store, "get_result", counted_get_result)
    return reads


@pytest.mark.gen_test(timeout=60)
async def test_a_markdown_scrape_reads_the_job_once_and_not_the_body(jq, api, site, monkeypatch):
    reads = count_reads(jq.store, monkeypatch)
    code, body = await api.call("POST", "/v2/scrape", {"url": site.url("/a"), "formats": ["markdown", "links"]})
    assert code == 200 and body["success"] is True, body
    assert body["data"]["markdown"] and body["data"]["metadata"]["statusCode"] == 200
    assert isinstance(body["data"]["links"], list)
    assert reads["job"] == 1 and reads["body"] == 0, reads
    assert reads["result"] == 1, reads


@pytest.mark.gen_test(timeout=60)
async def test_a_raw_html_scrape_reads_the_body_once(jq, api, site, monkeypatch):
    reads = count_reads(jq.store, monkeypatch)
    code, body = await api.call("POST", "/v2/scrape", {"url": site.url("/b"), "formats": ["rawHtml", "markdown"]})
    assert code == 200 and body["success"] is True, body
    assert "<html" in body["data"]["rawHtml"].lower() and body["data"]["markdown"]
    assert reads["body"] == 1 and reads["job"] == 1, reads
