"""Rendering through the real server: jobs with `render` go to the browser pool's own workers and slots, their
results are the DOM after the waits with the captures beside them, and a browser that dies mid-render costs a
retry, not the job. Real Chromium, a real target on 127.0.0.1."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import struct

import pytest
from warcio.archiveiterator import ArchiveIterator

from tests.helpers import API, Api, wait_for
from tests.render_site import Site

CHROMIUM = os.environ.get("JOBQUEUE_TEST_CHROMIUM", "/usr/bin/chromium")
pytestmark = [pytest.mark.slow, pytest.mark.browser,
              pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian's chromium")]
RENDERING = {"render_browsers": 1, "render_pages": 2, "chromium": CHROMIUM}


async def started(make_server, **overrides):
    server = await make_server(**{**RENDERING, **overrides})
    site = await Site().start()
    return server, site, Api(f"http://127.0.0.1:{server.port}")


async def submit(api: Api, spec: dict) -> dict:
    code, body = await api.call("POST", f"{API}/queue_tasks", spec)
    assert code == 201, body
    return body["task"]


async def result(api: Api, task_id: str) -> dict:
    code, body = await api.call("GET", f"{API}/results/{task_id}")
    assert code == 200, body
    return body["result"]


@pytest.mark.gen_test(timeout=90)
async def test_a_rendered_job_stores_the_dom_after_javascript_and_a_fetched_one_does_not(make_server):
    _server, site, api = await started(make_server)
    try:
        fetched = await submit(api, {"url": site.url("/js")})
        rendered = await submit(api, {"url": site.url("/js"), "render": True})
        assert rendered["render"] is True and rendered["capture"] == [] and "render" not in fetched
        for task in (fetched, rendered):
            assert (await api.wait_finished(task["id"], 60))["status"] == "completed"
        plain, dom = await result(api, fetched["id"]), await result(api, rendered["id"])
        made = '<div id="root"><p id="made">made by javascript</p></div>'  # the source has an empty root
        assert made not in plain["body"] and '<div id="root"></div>' in plain["body"] and "rendered" not in plain
        assert made in dom["body"]
        assert dom["rendered"] is True and dom["content_type"] == "text/html; charset=utf-8"
        assert dom["http_status"] == 200 and dom["final_url"] == site.url("/js")
        assert dom["headers"]["content-type"] == "text/html; charset=utf-8" and dom["blocked_requests"] == 0
        assert dom["render_timings"]["total"] >= dom["render_timings"]["navigation"] > 0
        body = await api.raw("GET", f"{API}/results/{rendered['id']}/body")
        assert body.headers["Content-Type"] == "text/html; charset=utf-8" and made.encode() in body.body
        # the capture routes: nothing was captured
        code, error = await api.call("GET", f"{API}/results/{rendered['id']}/screenshot")
        assert code == 404 and error["error"]["code"] == "not_captured" and "capture" in error["error"]["message"]
        code, error = await api.call("GET", f"{API}/results/{fetched['id']}/pdf")
        assert code == 404 and error["error"]["code"] == "not_captured" and "not rendered" in error["error"]["message"]
        code, error = await api.call("GET", f"{API}/results/nosuchjob/pdf")
        assert code == 404 and error["error"]["code"] == "not_found"
        # what /healthz and /metrics say of it
        code, health = await api.call("GET", "/healthz")
        assert health["rendering"] == {"available": True, "browsers": 1}
        metrics = (await api.raw("GET", "/metrics")).body.decode()
        assert 'jobqueue_renders_total{outcome="completed"} 1.0' in metrics
        assert "jobqueue_render_browsers 1.0" in metrics and "jobqueue_render_page_slots 2.0" in metrics
        assert "jobqueue_render_seconds_total" in metrics and "jobqueue_render_browser_restarts_total 0.0" in metrics
    finally:
        api.close()
        await site.stop()


@pytest.mark.gen_test(timeout=90)
async def test_the_screenshot_and_the_pdf_are_served_and_counted_as_stored_bodies(make_server):
    _server, site, api = await started(make_server)
    try:
        before = (await api.call("GET", f"{API}/stats/storage"))[1]
        task = await submit(api, {"url": site.url("/tall"), "render": {"viewport": {"width": 800, "height": 600}},
                                  "capture": ["screenshot_full", "pdf"]})
        assert (await api.wait_finished(task["id"], 60))["status"] == "completed"
        assert (await result(api, task["id"]))["captured"] == ["pdf", "screenshot"]
        png = await api.raw("GET", f"{API}/results/{task['id']}/screenshot")
        assert png.code == 200 and png.headers["Content-Type"] == "image/png"
        assert png.body[:8] == b"\x89PNG\r\n\x1a\n"
        width, height = struct.unpack(">II", png.body[16:24])
        assert width == 800 and height >= 3000  # the whole page, taller than the viewport
        pdf = await api.raw("GET", f"{API}/results/{task['id']}/pdf")
        assert pdf.code == 200 and pdf.headers["Content-Type"] == "application/pdf" and pdf.body[:5] == b"%PDF-"
        after = (await api.call("GET", f"{API}/stats/storage"))[1]
        assert after["distinct_bodies"] == before["distinct_bodies"] + 3  # the DOM, the PNG and the PDF
        assert after["stored_bytes"] > before["stored_bytes"]
        # the WARC export: the DOM and each capture as resource records, as Browsertrix writes them
        warc = await api.raw("GET", f"{API}/export?format=warc")
        records = [(r.rec_type, r.rec_headers.get_header("WARC-Target-URI"), r.rec_headers.get_header("Content-Type"),
                    r.rec_headers, r.content_stream().read())
                   for r in ArchiveIterator(io.BytesIO(warc.body), check_digests="raise")]
        assert [r[0] for r in records] == ["warcinfo", "resource", "resource", "resource"]
        url = site.url("/tall")
        (_, dom_uri, dom_type, dom_headers, dom), *captures = records[1:]
        assert dom_uri == url and dom_type == "text/html; charset=utf-8" and b">tall</div>" in dom
        assert [(uri, kind) for _, uri, kind, _, _ in captures] == [(f"urn:pdf:{url}", "application/pdf"),
                                                                   (f"urn:fullPage:{url}", "image/png")]
        assert captures[0][4] == pdf.body and captures[1][4] == png.body
        assert all(c[3].get_header("WARC-Concurrent-To") == dom_headers.get_header("WARC-Record-ID") for c in captures)
    finally:
        api.close()
        await site.stop()


@pytest.mark.gen_test(timeout=60)
async def test_render_and_capture_are_checked_and_refused_without_browsers(make_server):
    _server, site, api = await started(make_server)
    off = await make_server(render_browsers=0, chromium=CHROMIUM)
    api_off = Api(f"http://127.0.0.1:{off.port}")
    try:
        url = site.url("/js")
        for spec, code, field in [({"url": url, "capture": ["pdf"]}, "invalid_field", "capture"),
                                  ({"url": url, "render": {"wait_ms": -1}}, "invalid_field", "render.wait_ms"),
                                  ({"url": url, "render": {"zoom": 2}}, "unknown_field", "render.zoom"),
                                  ({"url": url, "render": True, "capture": ["gif"]}, "invalid_field", "capture"),
                                  ({"jobs": [{"url": url, "render": 3}]}, "invalid_field", "jobs[0].render")]:
            status, body = await api.call("POST", f"{API}/queue_tasks", spec)
            assert status == 400 and body["error"]["code"] == code, body
            assert body["error"]["message"].startswith(f"{field}:"), body
        status, body = await api_off.call("POST", f"{API}/queue_tasks", {"url": url, "render": True})
        assert status == 400 and body["error"]["code"] == "rendering_unavailable"
        assert "chromium" in body["error"]["message"]
        assert (await api_off.call("GET", "/healthz"))[1]["rendering"] == {"available": False, "browsers": 0}
        assert (await api_off.submit(url))["status"] == "queued"  # plain jobs are unaffected
    finally:
        api.close()
        api_off.close()
        await site.stop()


@pytest.mark.gen_test(timeout=90)
async def test_a_slow_render_holds_no_fetch_slot(make_server):
    """One curl worker: plain jobs submitted after a 4-second render all complete while it is still running."""
    server, site, api = await started(make_server, workers=1)
    try:
        slow = await submit(api, {"url": site.url("/js"), "render": {"wait_ms": 4000}})
        await wait_for(lambda: _rendering(server), 30, "the render to start")
        plain = await api.submit_many([site.url(f"/echo?{i}") for i in range(3)])
        for task in plain:
            assert (await api.wait_finished(task["id"], 20))["status"] == "completed"
        assert (await api.task(slow["id"]))["status"] == "running"
        assert (await api.wait_finished(slow["id"], 60))["status"] == "completed"
    finally:
        api.close()
        await site.stop()


@pytest.mark.gen_test(timeout=120)
async def test_a_browser_killed_mid_render_costs_a_retry_not_the_job(make_server):
    server, site, api = await started(make_server, retry_base_delay=0.05)
    try:
        task = await submit(api, {"url": site.url("/js"), "render": {"wait_ms": 5000}})
        await asyncio.wait_for(site.served("/js"), 30)  # the page is loaded: the render is in its wait
        pool = server.render_pool
        for group in list(pool.launched):
            os.killpg(group, signal.SIGKILL)  # the browser and every one of its processes
        done = await api.wait_finished(task["id"], 90)
        assert done["status"] == "completed" and done["attempts"] == 2, done
        first = done["attempt_log"][0]
        assert first["outcome"] == "retry" and first["error"]["code"] == "connection_error", first
        assert "browser" in first["error"]["message"]
        assert '<div id="root"><p id="made">' in (await result(api, task["id"]))["body"]
        stats = pool.stats()
        assert stats["renders"]["browser_died"] == 1 and stats["browser_restarts"] >= 1
    finally:
        api.close()
        await site.stop()


async def _rendering(server) -> bool:
    await asyncio.sleep(0)
    return server.render_pool is not None and server.render_pool.stats()["pages_in_use"] > 0


@pytest.mark.gen_test(timeout=90)
async def test_an_endless_page_fails_timeout_and_a_refused_main_document_fails_blocked(make_server):
    """Through the server, with the fetcher's guard: only 127.0.0.1 allowed, a redirect to 127.0.0.2 refused."""
    server, site, api = await started(make_server, allow_private_addresses=False, allow_networks=("127.0.0.1/32",),
                                      max_attempts=1)
    try:
        endless = await submit(api, {"url": site.url("/endless"), "render": True, "fetch": {"timeout": 2}})
        elsewhere = f"http://127.0.0.2:{site.port}/js"
        refused = await submit(api, {"url": site.url(f"/redirect-to?url={elsewhere}"), "render": True})
        done = await api.wait_finished(endless["id"], 60)
        assert done["status"] == "failed" and done["error"]["code"] == "timeout", done
        done = await api.wait_finished(refused["id"], 60)
        assert done["status"] == "failed" and done["error"]["code"] == "blocked", done
        after = await submit(api, {"url": site.url("/js"), "render": True})  # the browser stayed healthy
        assert (await api.wait_finished(after["id"], 60))["status"] == "completed"
        metrics = (await api.raw("GET", "/metrics")).body.decode()
        for outcome in ("timeout", "blocked", "completed"):
            assert f'jobqueue_renders_total{{outcome="{outcome}"}} 1.0' in metrics, metrics
        assert server.render_pool.stats()["browser_restarts"] == 0
    finally:
        api.close()
        await site.stop()
