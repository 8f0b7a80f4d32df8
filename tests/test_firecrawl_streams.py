"""A synchronous Firecrawl scrape waits for its job through an event-hub subscription, but it is no websocket:
scrapes waiting do not use up the places --max-websockets gives event streams."""

from __future__ import annotations

import asyncio
import json

import pytest
from tornado.websocket import websocket_connect

from tests.crawl_site import CrawlSite
from tests.helpers import API, Api, wait_for


@pytest.mark.gen_test(timeout=60)
async def test_waiting_scrapes_do_not_use_up_websocket_places(make_server):
    slow = CrawlSite(slow=True)  # its pages but / wait for the release
    server = await make_server(max_websockets=1)
    api = Api(f"http://127.0.0.1:{server.port}")
    stream = None
    try:
        scrapes = [asyncio.ensure_future(api.call("POST", "/v2/scrape", {"url": slow.url(f"/{name}")}))
                   for name in ("a", "b")]

        async def both_waiting() -> bool:
            return server.hub.subscribers >= 2

        await wait_for(both_waiting, 20, "both scrapes to wait for their jobs")
        assert server.hub.streams == 0
        stream = await websocket_connect(f"ws://127.0.0.1:{server.port}{API}/events")
        assert json.loads(await stream.read_message())["type"] == "hello"
        assert server.hub.streams == 1
        metrics = (await api.raw("GET", "/metrics")).body.decode()
        assert "jobqueue_websocket_clients 1.0" in metrics  # the stream, not the two waiting scrapes
        slow.release.set()
        for scrape in scrapes:
            code, body = await scrape
            assert code == 200 and body["success"] is True, body
    finally:
        if stream is not None:
            stream.close()
        slow.release.set()
        api.close()
        slow.stop()
