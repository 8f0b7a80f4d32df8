"""Replies no HTTP library would send end as `protocol_error`, never as a stored impossible status."""

from __future__ import annotations

import pytest

from tests.helpers import API, Api

BROKEN_REPLIES = [
    "/raw/http09", "/raw/garbage-status", "/raw/binary-junk", "/raw/status-2000", "/raw/status-huge",
    "/raw/status-600", "/raw/status-099", "/raw/redirect-to-bad-status",
]


@pytest.mark.gen_test(timeout=60)
async def test_broken_replies_fail_as_protocol_errors_and_the_server_stays_healthy(make_server, target):
    server = await make_server(max_attempts=1, fetch_timeout=5.0)
    api = Api(f"http://127.0.0.1:{server.port}")
    try:
        submitted = {path: await api.submit(target.url(path)) for path in BROKEN_REPLIES}
        to_ftp = await api.submit(target.url("/redirect-to?url=ftp://127.0.0.1:9/file"))
        for path, task in submitted.items():
            done = await api.wait_finished(task["id"])
            assert done["status"] == "failed", (path, done)
            assert done["error"]["code"] == "protocol_error", (path, done)
            assert done["http_status"] is None, (path, done)
            got, payload = await api.call("GET", f"{API}/results/{task['id']}")
            assert got == 409 and payload["error"]["code"] == "no_result", (path, payload)
        done = await api.wait_finished(to_ftp["id"])  # curl's same error 1, but this one is about the scheme
        assert done["status"] == "failed" and done["error"]["code"] == "unsupported_scheme", done
        got, payload = await api.call("GET", "/healthz")
        assert got == 200 and payload["status"] == "ok"
        healthy = await api.wait_finished((await api.submit(target.url("/utf8")))["id"])
        assert healthy["status"] == "completed" and healthy["http_status"] == 200
    finally:
        api.close()

