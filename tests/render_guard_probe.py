"""Runs inside a network namespace with only loopback: renders pages that reach for 127.0.0.2, which the
guard refuses (only 127.0.0.1/32 is allowed), while a raw listener there counts every TCP accept.

Started by test_render_guard.py as `unshare -nm sh -c '... python -m tests.render_guard_probe CHROMIUM'`
with an /etc/hosts naming allowed.test (127.0.0.1) and blocked.test (127.0.0.2); prints one JSON line.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from jobqueue.addresses import AddressPolicy
from jobqueue.errors import FetchError
from jobqueue.render import RenderPool, RenderSettings, parse_render
from tests.render_site import AcceptCounter, Site


async def probe(chromium: str) -> dict[str, Any]:
    site = await Site().start()
    other = await AcceptCounter("127.0.0.2").start()
    pool = RenderPool(RenderSettings(browsers=1, pages=2, chromium=chromium),
                      AddressPolicy.build(False, ["127.0.0.1/32"]))
    await pool.start()
    named = f"http://blocked.test:{other.port}"
    out: dict[str, Any] = {}

    async def attempt(name: str, url: str, render: Any = True) -> None:
        try:
            result = await pool.render(url, parse_render(render), timeout=20)
            out[name] = {"status": result.http_status, "blocked_requests": result.blocked_requests,
                         "blocked_urls": result.blocked_urls, "body": result.body.decode()[:2000]}
        except FetchError as exc:
            out[name] = {"error": exc.code, "message": exc.message}

    try:
        await attempt("reach", site.url(f"/reach?other={other.origin}"), {"wait_ms": 2000})
        await attempt("reach_by_name", site.url(f"/reach?other={named}"), {"wait_ms": 2000})
        await attempt("main_direct", f"{other.origin}/")
        await attempt("main_https", f"https://127.0.0.2:{other.port}/")
        await attempt("main_by_name", f"{named}/")
        await attempt("main_redirect", site.url(f"/redirect-to?url={other.origin}/moved"))
        await attempt("main_redirect_https", site.url(f"/redirect-to?url=https://127.0.0.2:{other.port}/moved"))
        await attempt("main_meta_refresh", site.url(f"/go-meta?to={other.origin}/meta"), {"wait_ms": 1500})
        await attempt("main_js_navigation", site.url(f"/go-js?to={other.origin}/js"), {"wait_ms": 1500})
        await attempt("allowed_by_name", f"http://allowed.test:{site.port}/js")
        out["accepts"] = other.accepts
        out["stats"] = pool.stats()
    finally:
        await pool.stop()
        await other.stop()
        await site.stop()
    return out


if __name__ == "__main__":
    print(json.dumps(asyncio.run(probe(sys.argv[1]))), flush=True)
