"""The Node SDK (@mendable/firecrawl-js 4.x) against a real server and a real site on loopback: one scrape and one
crawl. Optional: it runs when Node and the SDK are installed, and is skipped with the reason otherwise."""

from __future__ import annotations

import asyncio
import json
import os
import shutil

import pytest

from tests.crawl_site import CrawlSite

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SDK = os.path.join(ROOT, ".venv", "firecrawl-js")  # npm install --prefix .venv/firecrawl-js @mendable/firecrawl-js@4
SCRIPT = os.path.join(ROOT, "tests", "firecrawl_js", "run.mjs")


def missing() -> str | None:
    """Why the Node SDK cannot run here, or None."""
    if shutil.which("node") is None:
        return "Node is not installed"
    if not os.path.isdir(os.path.join(SDK, "node_modules", "@mendable", "firecrawl-js")):
        return f"the Node SDK is not installed: npm install --prefix {SDK} @mendable/firecrawl-js@4"
    return None


@pytest.mark.slow
@pytest.mark.skipif(missing() is not None, reason=missing() or "")
@pytest.mark.gen_test(timeout=90)
async def test_the_node_sdk_scrapes_and_crawls(jq):
    site = CrawlSite()
    try:
        script = await asyncio.to_thread(shutil.copy, SCRIPT, SDK)  # beside its node_modules, so its import resolves
        proc = await asyncio.create_subprocess_exec(
            "node", script, f"http://127.0.0.1:{jq.port}", site.url("/a"), site.url("/"),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err.decode()[-2000:]
        got = json.loads(out)
    finally:
        site.stop()
    assert got["status"] == 200 and got["markdown"].startswith("a\n") and f"{site.base}/a/deeper" in got["links"]
    assert got["crawl"]["status"] == "completed" and got["crawl"]["completed"] == got["crawl"]["pages"] == 5
