"""A fetch that cannot be made, or that meets a bug, ends its attempt at once with a true error code: never
`running` for a whole lease, then `abandoned` as if its process had died."""

from __future__ import annotations

import sqlite3
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from jobqueue.addresses import AddressPolicy
from jobqueue.errors import FetchError
from jobqueue.fetcher import Fetcher, FetchSettings
from jobqueue.spec import FetchOptions
from tests.helpers import API, Api

LOOPBACK = AddressPolicy.build(False, ["127.0.0.0/8"])
LATER = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")


async def held_job(api: Api, url: str, **spec: Any) -> str:
    """A job due in an hour, so the test can change its row before any worker sees it."""
    code, body = await api.call("POST", f"{API}/queue_tasks", {"url": url, "not_before": LATER, **spec})
    assert code == 201, body
    return body["task"]["id"]


def release_as_stored(db: str, task_id: str, url: str) -> None:
    """Make the job due now with the URL as an older release stored it (unencoded)."""
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE jobs SET url = ?, available_at = ? WHERE id = ?", (url, time.time(), task_id))


@pytest.mark.gen_test(timeout=60)
async def test_a_stored_unencoded_url_fails_at_once_as_invalid_url(make_server, target, tmp_path):
    server = await make_server(lease_seconds=60.0, max_attempts=3)
    api = Api(f"http://127.0.0.1:{server.port}")
    try:
        plain = await held_job(api, target.url("/utf8"))
        with_headers = await held_job(api, target.url("/utf8"), fetch={"headers": {"X-Key": "1"}})
        for task_id in (plain, with_headers):  # the callback path and the coroutine path of the workers
            release_as_stored(str(tmp_path / "jobqueue.db"), task_id, target.url("/page/Müller"))
        server.pool.wake()
        for task_id in (plain, with_headers):
            done = await api.wait_finished(task_id, timeout=20)  # well inside the 60 s lease
            assert done["status"] == "failed" and done["error"]["code"] == "invalid_url", done
            assert done["attempts"] == 1 and "Müller" in done["error"]["message"], done
        healthy = await api.wait_finished((await api.submit(target.url("/utf8")))["id"])
        assert healthy["status"] == "completed"
    finally:
        api.close()


@pytest.mark.gen_test(timeout=60)
async def test_a_bug_in_the_address_guard_fails_the_job_as_internal_error(make_server, target, monkeypatch):
    """A curl callback that raises (here the guard's check) is the job's `internal_error`, at once."""
    server = await make_server(lease_seconds=60.0, allow_private_addresses=False, allow_networks=("127.0.0.0/8",))
    api = Api(f"http://127.0.0.1:{server.port}")
    real = AddressPolicy.allows

    def broken(self: AddressPolicy, address: Any) -> bool:
        if isinstance(address, str):  # as curl's OPENSOCKETFUNCTION asks (submission passes a parsed address)
            raise RuntimeError("a bug in the guard")
        return real(self, address)

    monkeypatch.setattr(AddressPolicy, "allows", broken)
    try:
        task = await api.submit(target.url("/page/guard"))
        done = await api.wait_finished(task["id"], timeout=20)
        assert done["status"] == "failed" and done["error"]["code"] == "internal_error", done
        assert "a bug in the guard" in done["error"]["message"] and done["attempts"] == 1, done
    finally:
        api.close()


@pytest.mark.gen_test(timeout=60)
async def test_a_redirect_to_a_non_ascii_location_is_followed_percent_encoded(make_server, target):
    """Hops followed one by one (a job with headers) meet a raw UTF-8 Location as curl's own hops do."""
    server = await make_server(lease_seconds=60.0)
    api = Api(f"http://127.0.0.1:{server.port}")
    try:
        code, body = await api.call("POST", f"{API}/queue_tasks", {
            "url": target.url("/redirect-to?url=/echo/M%C3%BCller%3Fq%3D%C3%A9"), "fetch": {"headers": {"X-Key": "1"}}})
        assert code == 201, body
        done = await api.wait_finished(body["task"]["id"], timeout=20)
        assert done["status"] == "completed" and done["http_status"] == 200, done
        assert "/echo/M%C3%BCller?q=%C3%A9" in (await api.call("GET", f"{API}/results/{done['id']}"))[1][
            "result"]["final_url"]
    finally:
        api.close()


@pytest.mark.parametrize("soon", [True, False])
@pytest.mark.parametrize(("url", "options", "code"), [
    ("/page/Müller", FetchOptions(), "invalid_url"),
    ("/page/\ud800", FetchOptions(), "invalid_url"),
    ("/page/a", FetchOptions(headers=(("X-Snow", "☃"),), follow_redirects=False), "invalid_header"),
    ("/page/a", FetchOptions(user_agent="snow ☃"), "invalid_header"),
    ("/page/a", FetchOptions(headers=(("X-Split", "a\r\nInjected: 1"),), follow_redirects=False), "invalid_header"),
    ("/page/a", FetchOptions(method="POST", body="\ud800"), "invalid_body"),
])
@pytest.mark.gen_test(timeout=30)
async def test_the_fetcher_turns_every_unsendable_request_into_a_fetch_error(target, soon, url, options, code):
    """Called directly, both entry points (`fetch` and `fetch_soon`) end with a FetchError, never another."""
    fetcher = Fetcher(FetchSettings(), LOOPBACK)
    try:
        if soon and Fetcher.fetches_soon(options):
            import asyncio
            outcome: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            fetcher.fetch_soon(target.url(url), options, outcome.set_result)
            error = await outcome
        else:
            with pytest.raises(FetchError) as raised:
                await fetcher.fetch(target.url(url), options)
            error = raised.value
        assert isinstance(error, FetchError) and error.code == code, repr(error)
        assert not error.retryable
        done = await fetcher.fetch(target.url("/utf8"))  # the client's handle is clean again
        assert done.http_status == 200
    finally:
        fetcher.close()


def test_a_redirect_host_beyond_ascii_is_made_ascii_as_a_submitted_one_is():
    """A Location names `faß.example` (UTF-8 bytes, read as Latin-1 header text): the hop goes to the host a
    submission of that URL stores (UTS #46, non-transitional), not IDNA 2003's `fass.example`."""
    from jobqueue.redirect_urls import next_url

    location = "http://faß.example/x".encode().decode("latin-1")
    assert next_url("http://a.example/", location) == "http://xn--fa-hia.example/x"
