"""A crawl as live clients and webhooks see it, through the real server and a real site on 127.0.0.1: coalesced
`crawl.progress` messages and one `crawl.finished` on the websocket; the crawl's webhook gets every page's
events and one signed `crawl.finished`, on SQLite and on MongoDB (through the mongomock-motor mock)."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from tornado.websocket import websocket_connect

from tests.crawl_site import CrawlSite
from tests.helpers import API, Api, wait_for
from tests.test_webhooks import SECRET, Receiver, deliveries


@pytest.fixture
def site(io_loop):
    made = io_loop.run_sync(_make)
    yield made
    made.stop()


async def _make() -> CrawlSite:
    return CrawlSite()


@pytest.fixture
def receiver(io_loop):
    hooks = io_loop.run_sync(_receiver)
    yield hooks
    hooks.stop()


async def _receiver() -> Receiver:
    return Receiver()


@pytest.mark.gen_test(timeout=60)
async def test_the_websocket_sends_crawl_progress_and_one_crawl_finished(jq, api, site):
    conn = await websocket_connect(f"ws://127.0.0.1:{jq.port}{API}/events")
    assert json.loads(await conn.read_message())["type"] == "hello"
    code, body = await api.call("POST", f"{API}/crawls", {"url": site.url("/"), "sitemap": "skip"})
    assert code == 201, body
    crawl_id = body["crawl"]["id"]
    progress, finished, pages = [], [], 0
    end = time.monotonic() + 30
    while not finished:
        assert time.monotonic() < end, f"no crawl.finished; {len(progress)} progress messages"
        event = json.loads(await asyncio.wait_for(conn.read_message(), end - time.monotonic()))
        if event["type"] == "task" and event["task"].get("crawl_id") == crawl_id:
            pages += 1
        elif event["type"] == "crawl.progress" and event["crawl"]["id"] == crawl_id:
            progress.append(event["crawl"])
        elif event["type"] == "crawl.finished" and event["crawl"]["id"] == crawl_id:
            finished.append(event["crawl"])
    done = finished[0]
    assert done["status"] == "finished" and done["counts"]["completed"] == done["discovered"] > 5
    assert 1 <= len(progress) < pages  # coalesced: fewer progress messages than page changes
    with pytest.raises(asyncio.TimeoutError):
        while True:
            event = json.loads(await asyncio.wait_for(conn.read_message(), 1.5))
            assert event["type"] != "crawl.finished", event
    conn.close()


@pytest.mark.parametrize("database", ["sqlite", "mongodb-mongomock"])
@pytest.mark.gen_test(timeout=60)
async def test_a_crawls_webhook_gets_its_pages_events_and_one_crawl_finished(make_server, site, receiver,
                                                                               database, tmp_path):
    overrides = {"webhook_secret": SECRET, "webhook_retry_delays": "0.05,0.05"}
    server = None
    if database == "sqlite":
        port = (await make_server(**overrides)).port
    else:
        from mongomock_motor import AsyncMongoMockClient

        from jobqueue.store.mongodb.store import MongoStore
        from server import JobQueueServer
        from tests.conftest import test_settings

        client = AsyncMongoMockClient()
        store = MongoStore("mongodb://mock/jobqueue_crawls", client_factory=lambda _url: client)
        server = JobQueueServer(test_settings(tmp_path, **overrides), store=store)
        await server.start()
        port = server.port
    api = Api(f"http://127.0.0.1:{port}")
    try:
        await _crawl_with_webhook(api, site, receiver)
    finally:
        api.close()
        if server is not None:
            await server.stop()


async def _crawl_with_webhook(api: Api, site: CrawlSite, receiver: Receiver) -> None:
    code, body = await api.call("POST", f"{API}/crawls", {"url": site.url("/"), "max_depth": 1, "sitemap": "skip",
                                                          "webhook": {"url": receiver.url("crawl")}})
    assert code == 201, body
    crawl_id = body["crawl"]["id"]

    async def told():
        return [r.json for r in receiver.got("crawl") if r.json["type"] == "crawl.finished"]

    [message] = await wait_for(told, 30, "crawl.finished delivered")
    crawl = message["data"]["crawl"]
    assert crawl["id"] == crawl_id and crawl["status"] == "finished"
    completed = [r.json for r in receiver.got("crawl") if r.json["type"] == "task.completed"]
    assert len(completed) == crawl["counts"]["completed"] == crawl["discovered"]
    assert any(d["type"] == "crawl.finished" for d in await deliveries(api))
