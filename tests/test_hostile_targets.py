"""Targets that misbehave on purpose: each ends in a clear state and the service stays responsive."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.helpers import API, Api


async def responsive(api: Api) -> float:
    started = time.monotonic()
    got, payload = await api.call("GET", "/healthz")
    assert got == 200 and payload["status"] == "ok"
    return time.monotonic() - started


@pytest.mark.gen_test(timeout=60)
async def test_hostile_targets_end_cleanly(make_server, target):
    server = await make_server(fetch_timeout=2.0, max_attempts=1, max_body_size=1024 * 1024)
    api = Api(f"http://127.0.0.1:{server.port}")
    cases = {
        "/endless": ("failed", "too_large"),
        "/trickle?every=0.2": ("failed", "timeout"),
        "/loop/0": ("failed", "too_many_redirects"),
        "/many-headers": ("completed", None),
        "/bad-gzip": ("failed", "decode_error"),
        "/bad-charset": ("completed", None),
    }
    submitted = {path: await api.submit(target.url(path)) for path in cases}
    latencies = []
    pending = dict(submitted)
    deadline = time.monotonic() + 30
    while pending:  # health stays fast while the hostile fetches run
        assert time.monotonic() < deadline, f"still unfinished: {list(pending)}"
        latencies.append(await responsive(api))
        for path, task in list(pending.items()):
            current = await api.task(task["id"])
            if current["status"] in ("completed", "failed"):
                status, code = cases[path]
                assert current["status"] == status, (path, current)
                assert (current["error"] or {}).get("code") == code, (path, current)
                pending.pop(path)
        await asyncio.sleep(0.05)
    assert max(latencies) < 1.0
    got, payload = await api.call("GET", f"{API}/results/{submitted['/many-headers']['id']}")
    assert got == 200 and len([h for h in payload["result"]["headers"] if h.startswith("x-header-")]) == 1000
    got, payload = await api.call("GET", f"{API}/results/{submitted['/bad-charset']['id']}")
    assert got == 200 and "caf" in payload["result"]["body"]
    assert payload["result"]["encoding_source"] in ("detected", "default")
    api.close()
