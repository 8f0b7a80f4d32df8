"""Crawls under real server processes (server.py children on one SQLite file) and a generated site on 127.0.0.1:
`max_pages` exact with `--processes=2`, and a `kill -9` mid-crawl followed by a restart loses no page, queues
none twice, and the crawl finishes."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
from typing import Any

import pytest

from tests.crawl_site import GeneratedSite
from tests.helpers import API, Api, wait_for
from tests.test_durability import start_server

PAGES = 400  # the generated site: /g/0 .. /g/399, four links a page


@pytest.fixture
def generated(io_loop):
    site = io_loop.run_sync(_generated)
    yield site
    site.stop()


async def _generated() -> GeneratedSite:
    return GeneratedSite(PAGES, fanout=4, delay=0.01)


async def crawl_status(api: Api, crawl_id: str) -> dict[str, Any]:
    code, body = await api.call("GET", f"{API}/crawls/{crawl_id}")
    assert code == 200, body
    return body["crawl"]


def crawl_pages(db: str, crawl_id: str) -> list[tuple[str, str]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT url, status FROM jobs WHERE crawl_id = ?", (crawl_id,)).fetchall()


async def stop(proc: asyncio.subprocess.Process, api: Api) -> None:
    api.close()
    proc.send_signal(signal.SIGTERM)
    await asyncio.wait_for(proc.wait(), 20)


@pytest.mark.slow
@pytest.mark.gen_test(timeout=120)
async def test_max_pages_is_exact_with_two_processes(tmp_path, generated):
    db = str(tmp_path / "crawl.db")
    proc, api = await start_server(db, "--processes", "2")
    try:
        code, body = await api.call("POST", f"{API}/crawls", {"url": generated.url("/g/0"), "max_pages": 150,
                                                              "max_depth": 10, "sitemap": "skip"})
        assert code == 201, body
        crawl_id = body["crawl"]["id"]

        async def finished() -> dict[str, Any] | None:
            crawl = await crawl_status(api, crawl_id)
            return crawl if crawl["status"] == "finished" else None

        crawl = await wait_for(finished, 90, "the crawl to finish")
    finally:
        await stop(proc, api)
    pages = crawl_pages(db, crawl_id)
    assert len(pages) == crawl["discovered"] == 150
    assert len({url for url, _ in pages}) == 150 and {status for _, status in pages} == {"completed"}
    assert crawl["skipped"]["limit"] > 0
    assert max(generated.hits.values()) == 1 and sum(generated.hits.values()) == 150


@pytest.mark.slow
@pytest.mark.gen_test(timeout=180)
async def test_kill_9_mid_crawl_then_a_restart_loses_no_page_and_queues_none_twice(tmp_path, generated):
    db = str(tmp_path / "crawl.db")
    proc, api = await start_server(db)
    code, body = await api.call("POST", f"{API}/crawls", {"url": generated.url("/g/0"), "max_pages": PAGES,
                                                          "max_depth": 10, "sitemap": "skip"})
    assert code == 201, body
    crawl_id = body["crawl"]["id"]

    async def under_way() -> bool:
        crawl = await crawl_status(api, crawl_id)
        return crawl["counts"]["completed"] >= PAGES // 4 and crawl["counts"]["queued"] + crawl["counts"]["running"] > 0

    await wait_for(under_way, 60, "a quarter of the crawl to complete")
    proc.send_signal(signal.SIGKILL)
    assert await asyncio.wait_for(proc.wait(), 15) == -signal.SIGKILL
    api.close()
    proc, api = await start_server(db)
    try:
        async def finished() -> dict[str, Any] | None:
            crawl = await crawl_status(api, crawl_id)
            return crawl if crawl["status"] == "finished" else None

        crawl = await wait_for(finished, 120, "the crawl to finish after the restart")
    finally:
        await stop(proc, api)
    pages = crawl_pages(db, crawl_id)
    assert sorted(url for url, _ in pages) == sorted(generated.url(f"/g/{n}") for n in range(PAGES))
    assert {status for _, status in pages} == {"completed"} and crawl["discovered"] == PAGES
    assert sorted(generated.hits) == sorted(f"/g/{n}" for n in range(PAGES))
    assert max(generated.hits.values()) <= 2  # a fetch the kill interrupted runs once more, nothing else does
