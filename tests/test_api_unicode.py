"""Text beyond ASCII in what clients submit: URLs stored as browsers send them, headers that HTTP can carry,
and strings that are not Unicode at all (lone surrogates) refused with a 400, never a 500."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from tornado.ioloop import IOLoop

from tests.helpers import API, Api, wait_for
from tests.test_webhooks import SECRET
from tests.webhook_receiver import Receiver

JSON = {"Content-Type": "application/json"}
FULLWIDTH_EXAMPLE = "https://\uff25\uff38\uff21\uff2d\uff30\uff2c\uff25.com/"  # EXAMPLE.com
FULLWIDTH_LOOPBACK = "https://\uff11\uff12\uff17.\uff10.\uff10.\uff11/"  # 127.0.0.1


@pytest.fixture
def idle_api(io_loop: IOLoop, make_server: Any) -> Iterator[Api]:
    """A server that fetches nothing (its workers are stopped): these tests submit URLs off this machine."""
    server = io_loop.run_sync(make_server)
    io_loop.run_sync(server.pool.stop)
    client = Api(f"http://127.0.0.1:{server.port}")
    yield client
    client.close()


@pytest.fixture
def hooks(io_loop: IOLoop) -> Iterator[Receiver]:
    """A webhook receiver on 127.0.0.1."""
    receiver = io_loop.run_sync(lambda: _made(Receiver))
    yield receiver
    receiver.stop()


async def _made(factory: Any) -> Any:
    return factory()


@pytest.mark.gen_test
async def test_a_url_beyond_ascii_is_stored_percent_encoded_and_fetched(api, target):
    task = await api.submit(target.url("/echo/Müller?q=ü&r=%C3%A4#frag"))
    assert task["url"] == target.url("/echo/M%C3%BCller?q=%C3%BC&r=%C3%A4")  # existing escapes kept
    done = await api.wait_finished(task["id"])
    assert done["status"] == "completed", done
    assert target.state.order == ["/echo/M%C3%BCller"]
    got, payload = await api.call("POST", f"{API}/queue_tasks", body=target.url("/echo/日本") + "\n",
                                  headers={"Content-Type": "text/plain; charset=utf-8"})
    assert got == 201 and payload["tasks"][0]["url"] == target.url("/echo/%E6%97%A5%E6%9C%AC")
    got, payload = await api.call("POST", f"{API}/queue_tasks", body="url=" + target.url("/echo/%C3%A9t%C3%A9"),
                                  headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert got == 201 and payload["task"]["url"] == target.url("/echo/%C3%A9t%C3%A9")
    typed = quote(target.url("/echo/Müller?q=ü&r=%C3%A4"), safe="")
    got, history = await api.call("GET", f"{API}/history?url={typed}")
    assert got == 200 and [r["id"] for r in history["results"]] == [task["id"]]  # the same URL, typed either way


@pytest.mark.gen_test
async def test_host_names_are_made_ascii_as_browsers_do_and_invalid_ones_refused(idle_api):
    api = idle_api
    for typed, stored in [("https://Bücher.example/straße", "https://xn--bcher-kva.example/stra%C3%9Fe"),
                          ("faß.example", "https://xn--fa-hia.example/"),  # non-transitional: ß stays
                          (FULLWIDTH_EXAMPLE, "https://example.com/"),
                          ("https://☃.example/", "https://xn--n3h.example/"),
                          ("https://%C3%BC.example/", "https://xn--tda.example/"),
                          (FULLWIDTH_LOOPBACK, "https://127.0.0.1/")]:  # the form the address guard judges
        task = await api.submit(typed)
        assert task["url"] == stored, (typed, task["url"])
    for bad in ["https://a\u05d0.example/", "https://ex\ufffdample.com/", "https://xn--a.example/",
                "https://\u0301a.example/"]:
        got, payload = await api.call("POST", f"{API}/queue_tasks", {"url": bad})
        assert got == 400 and payload["error"]["code"] == "invalid_url", (bad, payload)
        assert "internationalized domain name" in payload["error"]["message"]


@pytest.mark.gen_test
async def test_header_values_and_user_agents_beyond_latin1_are_refused(api, target):
    cases = [({"headers": {"X-Name": "☃"}}, "invalid_header", "fetch.headers.X-Name"),
             ({"user_agent": "bot ☃"}, "invalid_field", "fetch.user_agent"),
             ({"user_agent": "bot \u0100"}, "invalid_field", "fetch.user_agent")]
    for fetch, code, where in cases:
        got, payload = await api.call("POST", f"{API}/queue_tasks", {"url": target.url("/echo"), "fetch": fetch})
        assert got == 400 and payload["error"]["code"] == code, payload
        assert payload["error"]["message"].startswith(where)
    task = await api.submit_many([target.url("/echo/x")])
    assert task  # the server stays fine
    got, payload = await api.call("POST", f"{API}/queue_tasks", {"url": target.url("/echo/latin1"), "fetch": {
        "headers": {"X-Name": "Müller"}, "user_agent": "bót/1.0"}})
    assert got == 201, payload
    done = await api.wait_finished(payload["task"]["id"])
    assert done["status"] == "completed", done
    got, result = await api.call("GET", f"{API}/results/{done['id']}")
    sent = json.loads(result["result"]["body"])["headers"]
    assert sent["X-Name"] == "Müller" and sent["User-Agent"] == "bót/1.0"  # sent as Latin-1 bytes


@pytest.mark.gen_test
async def test_a_webhook_url_beyond_ascii_is_encoded_and_delivered(make_server, target, hooks):
    receiver = hooks
    server = await make_server(webhook_secret=SECRET)
    api = Api(f"http://127.0.0.1:{server.port}")
    hook = receiver.url("uni") + "?for=Müller"
    got, payload = await api.call("POST", f"{API}/queue_tasks", {"url": target.url("/utf8"), "webhook": hook})
    assert got == 201, payload
    assert payload["task"]["webhook"]["url"] == receiver.url("uni") + "?for=M%C3%BCller"
    await wait_for(lambda: _made(lambda: receiver.got("uni")), 20, "the webhook delivery")
    api.close()


LONE_SURROGATES = [
    # (path, raw JSON body): each holds \ud800 somewhere a string goes
    ("/queue_tasks", b'{"url": "https://example.com/\\ud800"}'),
    ("/queue_tasks", b'{"urls": ["https://example.com/a", "https://example.com/\\udc00"]}'),
    ("/queue_tasks", b'{"url": "https://example.com/", "tags": ["\\ud800"]}'),
    ("/queue_tasks", b'{"url": "https://example.com/", "\\ud800": 1}'),
    ("/queue_tasks", b'{"url": "https://example.com/", "fetch": {"headers": {"X-A": "\\ud800"}}}'),
    ("/queue_tasks", b'{"url": "https://example.com/", "fetch": {"method": "POST", "body": "\\ud800"}}'),
    ("/queue_tasks", b'{"url": "https://example.com/", "fetch": {"user_agent": "\\udfff"}}'),
    ("/queue_tasks", b'{"url": "https://example.com/", "fetch": {"profile": "\\ud800"}}'),
    ("/queue_tasks", b'{"jobs": [{"url": "https://example.com/", "not_before": "\\ud800"}]}'),
    ("/queue_tasks", b'{"url": "https://example.com/\\ud83d"}'),  # the first half of a pair, alone
    ("/queue_tasks", b'{"url": "https://example.com/\xed\xa0\x80"}'),  # the raw bytes of one (CESU-8)
    ("/batches", b'{"urls": ["https://example.com/\\ud800"]}'),
    ("/batches", b'{"urls": ["https://example.com/"], "webhook": "https://example.com/\\ud800"}'),
    ("/queue_tasks/bulk", b'{"action": "cancel", "filter": {"url": "\\ud800"}}'),
    ("/queue_tasks/bulk", b'{"action": "cancel", "filter": {"tag": "\\ud800"}}'),
]


@pytest.mark.gen_test
@pytest.mark.parametrize("path,body", LONE_SURROGATES, ids=[f"{p} {b[:60]!r}" for p, b in LONE_SURROGATES])
async def test_a_lone_surrogate_anywhere_in_a_json_body_is_a_400(idle_api, path, body):
    api = idle_api
    response = await api.raw("POST", API + path, body, JSON)
    payload = json.loads(response.body)
    assert response.code == 400, payload
    assert payload["error"]["code"] == "invalid_json" and "surrogate" in payload["error"]["message"]
    assert (await api.call("GET", "/healthz"))[0] == 200


@pytest.mark.gen_test
async def test_paired_surrogate_escapes_are_one_character_and_text_that_is_not_utf8_is_a_400(idle_api):
    api = idle_api
    got, payload = await api.call("POST", f"{API}/queue_tasks", body=b'{"url": "https://example.com/\\ud83d\\ude00"}',
                                  headers=JSON)
    assert got == 201 and payload["task"]["url"] == "https://example.com/%F0%9F%98%80", payload
    for body, ctype, code in [(b"url=https://example.com/%ED%A0%80", "application/x-www-form-urlencoded",
                               "invalid_form"),
                              (b"https://example.com/\xed\xa0\x80\n", "text/plain", "invalid_request")]:
        got, payload = await api.call("POST", f"{API}/queue_tasks", body=body, headers={"Content-Type": ctype})
        assert got == 400 and payload["error"]["code"] == code, payload
    for query in ["tag=%ED%A0%80", "user_agent=%FF"]:
        got, payload = await api.call("POST", f"{API}/queue_tasks?{query}", body=b"https://example.com/\n",
                                      headers={"Content-Type": "text/plain"})
        assert got == 400 and payload["error"]["code"] == "invalid_parameter", payload
    for query in ["url=%ED%A0%80", "status=%FF"]:
        got, payload = await api.call("GET", f"{API}/queue_tasks?{query}")
        assert got == 400 and payload["error"]["code"] == "invalid_parameter", payload
    assert (await api.counts())["queued"] == 1  # only the emoji URL was stored
