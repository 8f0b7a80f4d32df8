"""Webhooks end to end: a real server, a real target, a real receiver on 127.0.0.1 that checks signatures."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook

from tests.helpers import Api, wait_for
from tests.webhook_receiver import HANG, Receiver

SECRET = "whsec_" + base64.b64encode(b"a test key of thirty-two bytes!!").decode()
API = "/jobqueue/api/v1.0"
FAST = "0.05,0.05,0.05"


@pytest.fixture
def receiver(io_loop):
    hooks = io_loop.run_sync(lambda: _async(Receiver))
    yield hooks
    hooks.stop()


async def _async(factory):
    return factory()


async def start(make_server, **overrides):
    settings = {"webhook_secret": SECRET, "webhook_retry_delays": FAST, **overrides}
    server = await make_server(**settings)
    return Api(f"http://127.0.0.1:{server.port}")


async def deliveries(api, **query):
    params = "&".join(f"{k}={v}" for k, v in query.items())
    code, body = await api.call("GET", f"{API}/webhook_deliveries?{params}")
    assert code == 200, body
    return body["deliveries"]


async def settled(api, task_id, status="delivered"):
    async def probe():
        found = await deliveries(api, task_id=task_id)
        return found if found and all(d["status"] == status for d in found) else None
    return await wait_for(probe, 20, f"deliveries of {task_id} {status}")


def independent_check(secret: str, received) -> bool:
    """The signature rule written out again, apart from the server's code."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{received.headers['webhook-id']}.{received.headers['webhook-timestamp']}.".encode() + received.body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return received.headers["webhook-signature"] == f"v1,{expected}"


@pytest.mark.gen_test(timeout=60)
async def test_a_completion_is_delivered_signed_with_the_task_as_the_api_shows_it(make_server, target, receiver):
    api = await start(make_server)
    code, body = await api.call("POST", f"{API}/queue_tasks", {"url": target.url("/utf8"),
                                                                 "webhook": {"url": receiver.url("a")}})
    assert code == 201 and body["task"]["webhook"] == {"url": receiver.url("a"), "events": [
        "task.completed", "task.failed", "task.cancelled", "batch.finished"]}
    task_id = body["task"]["id"]
    [delivery] = await settled(api, task_id)
    [got] = receiver.got("a")
    Webhook(SECRET).verify(got.body, got.headers)  # the Standard Webhooks reference library
    assert independent_check(SECRET, got)
    assert got.headers["content-type"] == "application/json" and got.headers["webhook-id"] == delivery["id"]
    message = got.json
    assert message["type"] == "task.completed" and message["data"]["task"] == await api.task(task_id)
    assert delivery["attempts"] == 1 and delivery["last_http_status"] == 200 and delivery["delivered_at"]
    api.close()


@pytest.mark.gen_test(timeout=60)
async def test_errors_are_retried_with_the_same_id_until_delivered_once(make_server, target, receiver):
    api = await start(make_server, webhook_url=receiver.url("all"))
    receiver.answer("all", 500, 503)
    task = await api.submit(target.url("/status/404"))
    [delivery] = await settled(api, task["id"])
    got = receiver.got("all")
    assert [r.json["type"] for r in got] == ["task.completed"] * 3
    assert len({r.headers["webhook-id"] for r in got}) == 1 == len({r.body for r in got})
    assert delivery["attempts"] == 3 and delivery["last_http_status"] == 200
    assert delivery["last_error"] is None
    metrics = (await api.raw("GET", "/metrics")).body.decode()
    assert 'jobqueue_webhook_attempts_total{outcome="retry"} 2.0' in metrics
    assert 'jobqueue_webhook_attempts_total{outcome="delivered"} 1.0' in metrics
    api.close()


@pytest.mark.gen_test(timeout=60)
async def test_410_stops_at_once_and_running_out_of_delays_fails(make_server, target, receiver):
    api = await start(make_server)
    receiver.answer("gone", 410)
    receiver.answer("down", 500, 500, 500, 500, 500)
    gone = await api.call("POST", f"{API}/queue_tasks", {"url": target.url("/"), "webhook": receiver.url("gone")})
    down = await api.call("POST", f"{API}/queue_tasks", {"url": target.url("/"), "webhook": receiver.url("down")})
    [stopped] = await settled(api, gone[1]["task"]["id"], "failed")
    assert stopped["attempts"] == 1 and stopped["last_http_status"] == 410 and "410" in stopped["last_error"]
    [exhausted] = await settled(api, down[1]["task"]["id"], "failed")
    assert exhausted["attempts"] == 4 and exhausted["last_error"] == "the receiver answered HTTP 500: ok"
    assert len(receiver.got("gone")) == 1 and len(receiver.got("down")) == 4
    failed = await deliveries(api, status="failed")
    assert {d["id"] for d in failed} == {stopped["id"], exhausted["id"]}
    code, again = await api.call("POST", f"{API}/webhook_deliveries/{stopped['id']}/redeliver")
    assert code == 202 and again["delivery"]["status"] == "pending"
    [redelivered] = await settled(api, gone[1]["task"]["id"])
    assert redelivered["id"] == stopped["id"]
    assert [r.headers["webhook-id"] for r in receiver.got("gone")] == [stopped["id"]] * 2
    api.close()


@pytest.mark.gen_test(timeout=60)
async def test_a_receiver_that_never_answers_times_out_and_is_tried_again(make_server, target, receiver):
    api = await start(make_server, webhook_timeout=0.5)
    receiver.answer("slow", HANG)
    _, body = await api.call("POST", f"{API}/queue_tasks", {"url": target.url("/"), "webhook": receiver.url("slow")})
    [delivery] = await settled(api, body["task"]["id"])
    assert delivery["attempts"] == 2 and len(receiver.got("slow")) == 2
    api.close()


@pytest.mark.gen_test(timeout=60)
async def test_failures_cancels_and_a_finished_batch_are_told(make_server, target, receiver):
    api = await start(make_server, max_attempts=1)
    code, body = await api.call("POST", f"{API}/batches", {
        "urls": [target.url("/"), "http://127.0.0.1:9/refused"], "webhook": {"url": receiver.url("b")}})
    assert code == 201, body
    batch_id = body["batch"]["id"]

    async def finished():
        found = await deliveries(api, batch_id=batch_id)
        return found if any(d["type"] == "batch.finished" and d["status"] == "delivered" for d in found) else None

    await wait_for(finished, 20, "batch.finished delivered")
    types = sorted(r.json["type"] for r in receiver.got("b"))
    assert types == ["batch.finished", "task.completed", "task.failed"]
    [batch_message] = [r.json for r in receiver.got("b") if r.json["type"] == "batch.finished"]
    assert batch_message["data"]["batch"]["counts"]["failed"] == 1
    tomorrow = datetime.fromtimestamp(time.time() + 86400, UTC).isoformat()
    _, queued = await api.call("POST", f"{API}/queue_tasks", {"url": target.url("/"), "not_before": tomorrow,
                                                                "webhook": receiver.url("c")})
    await api.call("DELETE", f"{API}/queue_tasks/{queued['task']['id']}")
    await settled(api, queued["task"]["id"])
    assert [r.json["type"] for r in receiver.got("c")] == ["task.cancelled"]
    api.close()


@pytest.mark.gen_test(timeout=60)
async def test_a_slow_receiver_holds_only_its_own_connections_and_nothing_is_lost(make_server, target, receiver):
    receiver.state.delay = 0.3
    api = await start(make_server, webhook_url=receiver.url("slow"), webhook_concurrency=2, workers=8)
    tasks = await api.submit_many([target.url(f"/page/{i}") for i in range(40)])
    for task in tasks:
        await api.wait_finished(task["id"])
    # every fetch is done while most deliveries still wait their turn: the receiver did not slow fetching
    assert len(receiver.got("slow")) < 20

    async def all_delivered():
        found = await deliveries(api, status="delivered", limit=100)
        return found if len(found) == 40 else None

    await wait_for(all_delivered, 30, "40 deliveries", interval=0.2)
    assert {r.json["data"]["task"]["id"] for r in receiver.got("slow")} == {t["id"] for t in tasks}
    starts = sorted(r.at for r in receiver.got("slow"))
    # two in flight at most: any three arrivals span at least one answer's delay
    assert all(starts[i + 2] - starts[i] >= 0.25 for i in range(len(starts) - 2))
    api.close()


@pytest.mark.gen_test(timeout=30)
async def test_the_deliveries_api_refuses_bad_input_clearly(make_server):
    api = await start(make_server)
    for path, code_word in ((f"{API}/webhook_deliveries?status=sent", "invalid_status"),
                            (f"{API}/webhook_deliveries?task_id=a%20b", "invalid_id"),
                            (f"{API}/webhook_deliveries/msg_none", "not_found")):
        code, body = await api.call("GET", path)
        assert code in (400, 404) and body["error"]["code"] == code_word, body
    code, body = await api.call("POST", f"{API}/webhook_deliveries/msg_none/redeliver")
    assert code == 404 and "webhook delivery" in body["error"]["message"]
    for hook, word in (({"url": "ftp://x/"}, "unsupported_scheme"), ({"url": "https://x/", "events": ["nope"]},
                       "invalid_field"), ({"url": "https://x/", "secret": 1}, "unknown_field"), (7, "invalid_field")):
        code, body = await api.call("POST", f"{API}/queue_tasks", {"url": "https://example.com/", "webhook": hook})
        assert code == 400 and body["error"]["code"] == word and "webhook" in body["error"]["message"], body
    assert json.loads((await api.raw("GET", "/healthz")).body)["status"] == "ok"
    api.close()


@pytest.mark.gen_test(timeout=60)
async def test_deliveries_through_the_mongodb_store_mongomock(tmp_path, target, receiver):
    """The same path on the MongoDB store (mongomock-motor, an in-memory mock, not a server): the finishing
    update marks the job and the relay turns the mark into one signed delivery."""
    from mongomock_motor import AsyncMongoMockClient

    from jobqueue.store.mongodb.store import MongoStore
    from server import JobQueueServer
    from tests.conftest import test_settings

    client = AsyncMongoMockClient()
    store = MongoStore("mongodb://mock/jobqueue_hooks", client_factory=lambda _url: client)
    server = JobQueueServer(test_settings(tmp_path, webhook_secret=SECRET, webhook_retry_delays=FAST), store=store)
    await server.start()
    api = Api(f"http://127.0.0.1:{server.port}")
    try:
        receiver.answer("m", 500)
        code, body = await api.call("POST", f"{API}/batches", {"urls": [target.url("/utf8")],
                                                                "webhook": receiver.url("m")})
        assert code == 201, body

        async def both_delivered():
            found = await deliveries(api, batch_id=body["batch"]["id"])
            return found if len(found) == 2 and all(d["status"] == "delivered" for d in found) else None

        found = await wait_for(both_delivered, 20, "task.completed and batch.finished delivered")
        assert sorted(d["type"] for d in found) == ["batch.finished", "task.completed"]
        for got in receiver.got("m"):
            Webhook(SECRET).verify(got.body, got.headers)
        assert len(receiver.got("m")) == 3  # one retried after the 500, under the same id
    finally:
        api.close()
        await server.stop()
