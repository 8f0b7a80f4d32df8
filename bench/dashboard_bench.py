"""The dashboard under load, in chromium: frame times while 100,000 jobs are stored and about 2,000
events a second arrive (jobs being fetched as fast as the server can).

Measured in the page with requestAnimationFrame: the time between frames while the events stream in,
as p50/p95/max. Needs Debian's chromium and playwright (skipped, with a note, without them).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from typing import Any

from bench.harness import Client, Server, pct
from bench.search_bench import fill

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
FRAMES_JS = """() => new Promise((resolve) => {
    const gaps = []; let last = performance.now(); const end = last + 8000;
    function tick(now) {
        gaps.push(now - last); last = now;
        if (now < end) requestAnimationFrame(tick); else resolve(gaps);
    }
    requestAnimationFrame(tick);
})"""


def have_chromium() -> bool:
    """Whether Debian's chromium is installed."""
    return os.path.exists(CHROMIUM)


async def measure_dashboard(submit_all: Any, target: Any, stored: int, jobs: int) -> dict[str, Any]:
    """Frame times of the dashboard over 8 s while `jobs` new jobs run, with `stored` already in the database."""
    if not have_chromium():
        return {"skipped": "needs Debian's chromium (apt-get install chromium)"}
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        return {"skipped": "needs the playwright package"}
    with tempfile.TemporaryDirectory() as tmp:
        db = os.path.join(tmp, "dash.db")
        fill(db, stored)
        server = Server(db).start()
        client = Client(server.base)
        try:
            async with async_playwright() as p:
                browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                page = await browser.new_page(viewport={"width": 1280, "height": 900})
                await page.goto(server.base + "/")
                await page.wait_for_selector("#link[data-state=live]")
                frames = asyncio.ensure_future(page.evaluate(FRAMES_JS))
                started = time.perf_counter()
                await submit_all(client, target, jobs)
                gaps = await frames
                elapsed = time.perf_counter() - started
                _, body = await client.call("GET", "/jobqueue/api/v1.0/queue_tasks?limit=1")
                await browser.close()
        finally:
            client.close()
            server.stop()
    finished = body["counts"]["completed"] + body["counts"]["failed"] - stored // 5
    return {"stored_jobs": stored, "new_jobs": jobs, "events_per_s_about": round(3 * finished / elapsed),
            "frames": len(gaps), "frame_p50_ms": round(pct(gaps, 50), 1), "frame_p95_ms": round(pct(gaps, 95), 1),
            "frame_max_ms": round(max(gaps), 1)}
