"""Firecrawl's rendering options through the real firecrawl-py SDK and real Chromium: `waitFor` and `mobile` map
to a rendered job (`render.wait_ms`, a phone's viewport) and the `screenshot` format answers the page's PNG as a
base64 data URL, as Firecrawl does."""

from __future__ import annotations

import asyncio
import base64
import os
import struct

import pytest
from firecrawl import Firecrawl

from tests.helpers import API, Api
from tests.render_site import Site

CHROMIUM = os.environ.get("JOBQUEUE_TEST_CHROMIUM", "/usr/bin/chromium")
pytestmark = [pytest.mark.slow, pytest.mark.browser,
              pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian's chromium")]
RENDERING = {"render_browsers": 1, "render_pages": 2, "chromium": CHROMIUM}
DATA_URL = "data:image/png;base64,"


def png_size(data_url: str) -> tuple[int, int]:
    """The width and height a PNG data URL's header gives."""
    assert data_url.startswith(DATA_URL), data_url[:40]
    png = base64.b64decode(data_url[len(DATA_URL):])
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", png[16:24])


@pytest.mark.gen_test(timeout=150)
async def test_wait_for_mobile_and_screenshots_render_the_page(make_server):
    server = await make_server(**RENDERING)
    site = await Site().start()
    api = Api(f"http://127.0.0.1:{server.port}")
    fc = Firecrawl(api_key="unused", api_url=f"http://127.0.0.1:{server.port}")
    try:
        plain = await asyncio.to_thread(fc.scrape, site.url("/late"), formats=["rawHtml"])
        assert "<p id=\"late\">" not in plain.raw_html and plain.screenshot is None  # fetched, not rendered
        waited = await asyncio.to_thread(fc.scrape, site.url("/late"), formats=["rawHtml"], wait_for=1500)
        assert '<p id="late">came late</p>' in waited.raw_html  # added 400 ms after load
        code, job = await api.call("GET", f"{API}/queue_tasks/{waited.metadata.scrape_id}")
        assert code == 200 and job["task"]["render"] == {"wait_ms": 1500}, job

        shot = await asyncio.to_thread(fc.scrape, site.url("/tall"), formats=["screenshot"])
        assert png_size(shot.screenshot) == (1280, 800) and shot.markdown is None
        phone = await asyncio.to_thread(fc.scrape, site.url("/tall"), formats=["markdown", "screenshot"], mobile=True)
        assert png_size(phone.screenshot) == (390, 844) and phone.markdown.strip() == "tall"
        full = await asyncio.to_thread(fc.scrape, site.url("/tall"),
                                       formats=[{"type": "screenshot", "fullPage": True}])
        assert png_size(full.screenshot) == (1280, 3000)
        code, jobs = await api.call("GET", f"{API}/queue_tasks?tag=firecrawl")
        assert code == 200 and {t["status"] for t in jobs["tasks"]} == {"completed"} and len(jobs["tasks"]) == 5
    finally:
        api.close()
        await site.stop()
