"""Read-only tokens: they may read everything and watch live, and change nothing."""

from __future__ import annotations

import json

import pytest
from tornado.websocket import websocket_connect

from jobqueue.access import FULL, READ, TokenSet
from jobqueue.config import ConfigError, load_settings
from tests.helpers import API, Api

FULL_TOKEN = "full-token-0123456789abcdef"
READER = "reader-token-0123456789abcd"


def test_a_token_set_tells_full_from_read_only():
    tokens = TokenSet([FULL_TOKEN], [READER])
    assert tokens.access(FULL_TOKEN) == FULL and tokens.access(READER) == READ
    assert tokens.access(None) is None and tokens.access(READER + "x") is None
    assert tokens.accepts(READER) and TokenSet([]).access(None) == FULL


def test_read_only_tokens_need_a_full_token_and_differ_from_it():
    with pytest.raises(ConfigError, match="needs at least one --api-token"):
        load_settings(["--read-only-token", READER], environ={})
    with pytest.raises(ConfigError, match="both"):
        load_settings(["--api-token", FULL_TOKEN, "--read-only-token", FULL_TOKEN], environ={})
    with pytest.raises(ConfigError, match="at least 16"):
        load_settings(["--api-token", FULL_TOKEN, "--read-only-token", "short"], environ={})
    settings = load_settings([], environ={"JOBQUEUE_API_TOKEN": FULL_TOKEN, "JOBQUEUE_READ_ONLY_TOKEN": READER})
    assert settings.read_only_tokens == (READER,)


@pytest.mark.gen_test(timeout=30)
async def test_a_read_only_token_reads_and_watches_but_every_change_is_403(make_server, target):
    server = await make_server(api_tokens=(FULL_TOKEN,), read_only_tokens=(READER,))
    api = Api(f"http://127.0.0.1:{server.port}")
    full = {"Authorization": f"Bearer {FULL_TOKEN}", "Content-Type": "application/json"}
    reader = {"Authorization": f"Bearer {READER}", "Content-Type": "application/json"}
    made = await api.raw("POST", f"{API}/queue_tasks", json.dumps({"url": target.url("/utf8")}), full)
    assert made.code == 201 and made.headers["X-Jobqueue-Access"] == FULL
    task_id = json.loads(made.body)["task"]["id"]
    for path in (f"{API}/queue_tasks", f"{API}/queue_tasks/{task_id}", f"{API}/batches", "/metrics",
                 f"{API}/webhook_deliveries"):
        answer = await api.raw("GET", path, headers=reader)
        assert answer.code == 200, (path, answer.body[:200])
        assert answer.headers["X-Jobqueue-Access"] == READ
    changes = [("POST", f"{API}/queue_tasks", json.dumps({"url": target.url("/")})),
               ("DELETE", f"{API}/queue_tasks/{task_id}", None), ("POST", f"{API}/queue_tasks/{task_id}/retry", ""),
               ("POST", f"{API}/batches", json.dumps({"urls": [target.url("/")]})),
               ("POST", f"{API}/webhook_deliveries/msg_x/redeliver", "")]
    for method, path, body in changes:
        answer = await api.raw(method, path, body, reader)
        assert answer.code == 403, (method, path, answer.code)
        assert json.loads(answer.body)["error"]["code"] == "forbidden"
    stream = await websocket_connect(f"ws://127.0.0.1:{server.port}{API}/events?token={READER}")
    hello = json.loads(await stream.read_message())
    assert hello["type"] == "hello"
    stream.close()
    code, counts = await api.call("GET", f"{API}/queue_tasks?limit=1", headers={"Authorization": f"Bearer {READER}"})
    assert code == 200 and sum(counts["counts"].values()) == 1  # nothing the reader sent was stored
    api.close()
