"""URLs no fetch could ever succeed with are refused at submission (400 invalid_url), not accepted to fail later
as invalid_url or dns_error three times; an `@` inside the user info is escaped as browsers do, and fetched.

Every URL off this machine here is refused at submission, and the servers' workers are stopped besides, so
nothing is ever fetched from another host (even on code that would accept them)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from tornado.ioloop import IOLoop

from tests.helpers import API, Api

LABEL_63 = "a" * 63
HOST_253 = ".".join([LABEL_63] * 3 + ["b" * 61])  # 63*3 + 61 + 3 dots
NEVER = {
    "an IPvFuture literal": "http://[v1.fe80::a+en1]/",
    "a malformed zone": "http://[fe80::1%en1]/",
    "text after an IPv6 literal": "http://[::1]x/",  # read as http://[::1]/ before
    "a 254-character host": f"http://{HOST_253}c/",
    "254 characters before the root's dot": f"http://{HOST_253}c./",
    "a 64-character label": f"https://{'a' * 64}.example/",
    "a label 64 characters long once made ASCII": f"https://{'ü' * 58}.example/",  # xn--tda...: 64 octets
    "a host 254 characters long once made ASCII": "https://" + ".".join([LABEL_63] * 3 + ["ü" * 56]) + "/",
    "an empty label": "https://a..example/",
    "a leading dot": "https://.a.example/",
    "an empty label, percent-encoded": "https://a%2E%2Eexample/",
    "a long label without a scheme": f"{'a' * 64}.example/page",
}


@pytest.fixture
def idle_api(io_loop: IOLoop, make_server: Any) -> Iterator[Api]:
    """A server whose workers are stopped: nothing it accepts is fetched."""
    server = io_loop.run_sync(make_server)
    io_loop.run_sync(server.pool.stop)
    client = Api(f"http://127.0.0.1:{server.port}")
    yield client
    client.close()


@pytest.mark.gen_test(timeout=60)
async def test_urls_that_can_never_be_fetched_are_refused_at_submission(idle_api):
    accepted = {}
    for what, url in NEVER.items():
        code, body = await idle_api.call("POST", f"{API}/queue_tasks", {"url": url})
        if code != 400 or body["error"]["code"] != "invalid_url":
            accepted[what] = (code, body)
        assert len(body["error"]["message"]) < 400 if code == 400 else True, body  # a long host is cut short
    assert accepted == {}
    counts = (await idle_api.call("GET", f"{API}/queue_tasks"))[1]
    assert counts["tasks"] == []


@pytest.mark.gen_test(timeout=60)
async def test_the_refusals_say_why(idle_api):
    reasons = {
        "http://[v1.fe80::a+en1]/": "IPvFuture",
        f"https://{'a' * 64}.example/": "at most 63 per label",
        f"http://{HOST_253}c/": "254 characters in its ASCII form; DNS allows at most 253",
        "https://a..example/": "empty label",
    }
    for url, reason in reasons.items():
        code, body = await idle_api.call("POST", f"{API}/queue_tasks", {"url": url})
        assert code == 400 and reason in body["error"]["message"], body


@pytest.mark.gen_test(timeout=60)
async def test_the_longest_names_dns_carries_are_taken(idle_api):
    """At the limits, accepted: checked through GET /history?url=, which normalises the URL as a submission
    does and creates no job, so nothing off this machine is ever submitted."""
    for url in (f"http://{HOST_253}/", f"http://{HOST_253}./", f"https://{LABEL_63}.example/",
                f"https://{'ü' * 57}.example/", "http://[fe80::1%25eth0]/", "http://[2001:db8::1]:8080/"):
        code, body = await idle_api.call("GET", f"{API}/history?url={quote(url, safe='')}")
        assert code == 200 and body["results"] == [], (url, body)
    for url in (f"http://{HOST_253}c/", "http://[v1.x]/"):
        code, body = await idle_api.call("GET", f"{API}/history?url={quote(url, safe='')}")
        assert code == 400 and body["error"]["code"] == "invalid_url", (url, body)


@pytest.mark.gen_test(timeout=60)
async def test_an_at_sign_in_the_user_info_is_escaped_and_the_job_succeeds(api, target):
    """WHATWG: the last `@` ends the user info. Sent unescaped, the fetcher could not read the URL."""
    port = target.url("/").split(":")[2].split("/")[0]
    task = await api.submit(f"http://us@er:p@ss:w@127.0.0.1:{port}/echo")
    assert task["url"] == f"http://us%40er:p%40ss%3Aw@127.0.0.1:{port}/echo"
    done = await api.wait_finished(task["id"])
    assert done["status"] == "completed", done
    response = await api.raw("GET", f"{API}/results/{task['id']}/body")
    sent = json.loads(response.body)["headers"]
    assert base64.b64decode(sent["Authorization"].split()[1]) == b"us@er:p@ss:w"
