"""Tokens, per-client limits, caps, logs and configuration errors: the surface put on a network."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import sys

import pytest
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import websocket_connect

from jobqueue.access import RateLimiter, TokenSet, bearer
from tests.helpers import API, Api

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOKEN = "t0ken-for-tests-0123456789"
OTHER = "another-token-abcdefghijkl"


def test_token_set_and_bearer_parsing():
    tokens = TokenSet([TOKEN, OTHER])
    assert tokens.required and tokens.accepts(TOKEN) and tokens.accepts(OTHER)
    assert not tokens.accepts(None) and not tokens.accepts("") and not tokens.accepts(TOKEN + "x")
    assert TokenSet([]).accepts(None)
    assert bearer(f"Bearer {TOKEN}") == TOKEN and bearer(f"bearer {TOKEN}") == TOKEN
    assert bearer(f"Basic {TOKEN}") is None and bearer(None) is None and bearer("Bearer ") is None


def test_rate_limiter_refills_and_charges_big_batches_as_debt():
    now = [0.0]
    limiter = RateLimiter(rate=10, burst=20, clock=lambda: now[0])
    assert limiter.take("a", 20) is None
    assert limiter.take("a", 1) == pytest.approx(0.1)
    assert limiter.take("b", 5) is None  # another client has its own bucket
    now[0] += 1.0
    assert limiter.take("a", 10) is None
    now[0] += 2.0
    assert limiter.take("a", 50) is None  # bigger than the burst: allowed from a full bucket...
    assert limiter.take("a", 1) == pytest.approx(3.1)  # ...and paid back before the next
    assert RateLimiter(rate=0, burst=1).take("x", 10**6) is None


def test_rate_limiter_refunds_what_it_charged():
    now = [0.0]
    limiter = RateLimiter(rate=1, burst=10, clock=lambda: now[0])
    assert limiter.take("a", 8) is None
    limiter.refund("a", 8)
    assert limiter.take("a", 10) is None  # the whole burst again, without waiting
    limiter.refund("a", 50)
    assert limiter.take("a", 11) is None and limiter.take("a", 1) is not None  # refunds never pass the burst


def authed(api: Api, token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


@pytest.mark.gen_test
async def test_tokens_guard_the_api_but_not_health_or_the_spec(make_server, target):
    server = await make_server(api_tokens=(TOKEN, OTHER))
    api = Api(f"http://127.0.0.1:{server.port}")
    body = json.dumps({"url": target.url("/utf8")})
    for headers in ({"Content-Type": "application/json"}, authed(api, "wrong-token-wrong-token")):
        response = await api.raw("POST", f"{API}/queue_tasks", body, headers)
        assert response.code == 401
        assert json.loads(response.body)["error"]["code"] == "unauthorized"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    for path in (f"{API}/queue_tasks", f"{API}/results", f"{API}/queue_tasks/x", "/metrics"):
        assert (await api.raw("GET", path)).code == 401, path
    assert (await api.raw("GET", f"{API}/queue_tasks?token={TOKEN}")).code == 401  # query tokens: websocket only
    created = await api.raw("POST", f"{API}/queue_tasks", body, authed(api))
    assert created.code == 201
    assert (await api.raw("GET", f"{API}/queue_tasks", headers=authed(api, OTHER))).code == 200
    assert (await api.raw("GET", "/healthz")).code == 200
    spec = await api.raw("GET", "/openapi.json")
    assert spec.code == 200 and json.loads(spec.body)["security"] == [{"bearer": []}]
    api.close()


@pytest.mark.gen_test
async def test_tokens_guard_the_websocket(make_server):
    server = await make_server(api_tokens=(TOKEN,))
    base = f"ws://127.0.0.1:{server.port}{API}/events"
    for url in (base, f"{base}?token=nope"):
        with pytest.raises(HTTPClientError) as info:
            await websocket_connect(url)
        assert info.value.code == 401
    by_query = await websocket_connect(f"{base}?token={TOKEN}")
    assert json.loads(await by_query.read_message())["type"] == "hello"
    by_header = await websocket_connect(HTTPRequest(base, headers={"Authorization": f"Bearer {TOKEN}"}))
    assert json.loads(await by_header.read_message())["type"] == "hello"
    by_query.close()
    by_header.close()


@pytest.mark.gen_test
async def test_rate_limit_answers_429_and_other_clients_carry_on(make_server, target):
    server = await make_server(api_tokens=(TOKEN, OTHER), rate_limit=1.0, rate_burst=5)
    api = Api(f"http://127.0.0.1:{server.port}")
    urls = [target.url(f"/page/{i}") for i in range(5)]
    first = await api.raw("POST", f"{API}/queue_tasks", json.dumps({"urls": urls}), authed(api))
    assert first.code == 201
    refused = await api.raw("POST", f"{API}/queue_tasks", json.dumps({"url": urls[0]}), authed(api))
    assert refused.code == 429
    error = json.loads(refused.body)["error"]
    assert error["code"] == "rate_limited"
    wait = int(refused.headers["Retry-After"])
    assert wait >= 1
    assert "1 URLs/s per client" in error["message"] and "bursts of up to 5 URLs" in error["message"]
    assert f"wait {wait} s" in error["message"] and "larger batches" not in error["message"]
    other = await api.raw("POST", f"{API}/queue_tasks", json.dumps({"url": urls[0]}), authed(api, OTHER))
    assert other.code == 201
    assert (await api.raw("GET", f"{API}/queue_tasks", headers=authed(api))).code == 200  # reads are not limited
    assert (await api.raw("GET", "/healthz")).code == 200
    api.close()


@pytest.mark.gen_test
async def test_a_submission_refused_as_queue_full_does_not_spend_the_rate_limit(make_server):
    server = await make_server(max_queued=3, rate_limit=0.001, rate_burst=4)  # no refill during the test
    await server.pool.stop()
    api = Api(f"http://127.0.0.1:{server.port}")
    assert len(await api.submit_many(["https://example.com/1", "https://example.com/2"])) == 2
    got, payload = await api.call("POST", f"{API}/queue_tasks", {"urls": ["https://example.com/3",
                                                                          "https://example.com/4"]})
    assert got == 503 and payload["error"]["code"] == "queue_full"
    assert (await api.submit("https://example.com/5"))["status"] == "queued"  # the two refused URLs were not charged
    api.close()


@pytest.mark.gen_test
async def test_queue_cap_answers_503_queue_full(make_server):
    server = await make_server(max_queued=3, workers=1)
    await server.pool.stop()  # nothing drains the queue during this test
    api = Api(f"http://127.0.0.1:{server.port}")
    assert len(await api.submit_many(["https://example.com/1", "https://example.com/2"])) == 2
    got, payload = await api.call("POST", f"{API}/queue_tasks", {"urls": ["https://example.com/3",
                                                                          "https://example.com/4"]})
    assert got == 503 and payload["error"]["code"] == "queue_full"
    assert (await api.submit("https://example.com/5"))["status"] == "queued"
    assert (await api.call("GET", "/healthz"))[0] == 200
    api.close()


@pytest.mark.gen_test
async def test_websocket_cap(make_server):
    server = await make_server(max_websockets=2)
    url = f"ws://127.0.0.1:{server.port}{API}/events"
    open_ones = [await websocket_connect(url) for _ in range(2)]
    for conn in open_ones:
        await conn.read_message()
    with pytest.raises(HTTPClientError) as info:
        await websocket_connect(url)
    assert info.value.code == 503
    for conn in open_ones:
        conn.close()


@pytest.mark.gen_test
async def test_metrics_report_jobs_fetches_and_clients(make_server, target):
    server = await make_server()
    api = Api(f"http://127.0.0.1:{server.port}")
    stream = await websocket_connect(f"ws://127.0.0.1:{server.port}{API}/events")
    await stream.read_message()
    for path in ("/utf8", "/status/404"):
        await api.wait_finished((await api.submit(target.url(path)))["id"])
    text = (await api.raw("GET", "/metrics")).body.decode()
    for line in ('jobqueue_jobs_submitted_total 2.0', 'jobqueue_jobs_completed_total{status_class="2xx"} 1.0',
                 'jobqueue_jobs_completed_total{status_class="4xx"} 1.0', 'jobqueue_jobs{status="completed"} 2.0',
                 'jobqueue_websocket_clients 1.0', 'jobqueue_fetch_duration_seconds_count 2.0',
                 'jobqueue_response_size_bytes_count 2.0'):
        assert line in text, line
    assert 'jobqueue_store_operation_seconds_count{operation="claim"}' in text
    stream.close()
    api.close()


async def run_server(*args: str, timeout: float = 20) -> tuple[int | None, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, os.path.join(ROOT, "server.py"), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=ROOT)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        out, err = await proc.communicate()
    return proc.returncode, out.decode(), err.decode()


@pytest.mark.gen_test(timeout=60)
async def test_configuration_errors_are_one_sentence(tmp_path):
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    readonly = tmp_path / "readonly"
    readonly.mkdir()
    readonly.chmod(0o500)
    token_file = tmp_path / "tokens.txt"
    token_file.write_text("# comment only\n\n")
    cases = [
        (["--port", str(port)], "cannot listen on 127.0.0.1"),
        (["--database", "sqlite://"], "names no file"),
        (["--database", "mysql://x/y"], "unknown scheme"),
        (["--api-token", "short"], "at least 16 characters"),
        (["--api-token-file", str(token_file)], "holds no token"),
        (["--api-token-file", str(tmp_path / "missing")], "cannot be read"),
        (["--log-format", "xml"], "--log-format must be text or json"),
        (["--database", "sqlite:////proc/jobqueue-test.db"], "cannot open the database"),  # unwritable, even for root
    ]
    if os.geteuid() != 0:  # root writes anywhere, so this case only means something for other users
        cases.append((["--database", f"sqlite:///{readonly}/x.db"], "cannot open the database"))
    try:
        for args, expected in cases:
            # a case that names no database gets one of its own: the default would be jobqueue.db in the checkout
            database = () if "--database" in args else ("--database", f"sqlite:///{tmp_path}/cases.db")
            port_args = ("--port", "0") if "--port" not in args else ()
            code, _out, err = await run_server(*port_args, *database, *args)
            assert code == 2, (args, err)
            assert expected in err and "Traceback" not in err, (args, err)
            assert len(err.strip().splitlines()) == 1, (args, err)
    finally:
        busy.close()


@pytest.mark.gen_test(timeout=60)
async def test_json_logs_one_line_per_state_change_without_secrets(tmp_path, target):
    proc = await asyncio.create_subprocess_exec(
        sys.executable, os.path.join(ROOT, "server.py"), "--port", "0", "--log-format", "json",
        "--database", f"sqlite:///{tmp_path}/logs.db", "--allow-private-addresses", "--api-token", TOKEN,
        "--host", "127.0.0.1", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=ROOT)
    line = await asyncio.wait_for(proc.stdout.readline(), 15)
    started = json.loads(line)  # the start-up line is JSON too
    assert started["msg"].startswith("dashboard on http://127.0.0.1:")
    port = int(re.search(r"http://127\.0\.0\.1:(\d+)/", started["msg"]).group(1))
    api = Api(f"http://127.0.0.1:{port}")
    presigned = target.url("/utf8?X-Signature=s3cr3t-sig")
    response = await api.raw("POST", f"{API}/queue_tasks", json.dumps({"url": presigned}), authed(api))
    task_id = json.loads(response.body)["task"]["id"]
    stream = await websocket_connect(f"ws://127.0.0.1:{port}{API}/events?token={TOKEN}")
    await stream.read_message()
    while True:
        got = await api.raw("GET", f"{API}/queue_tasks/{task_id}", headers=authed(api))
        if json.loads(got.body)["task"]["status"] == "completed":
            break
        await asyncio.sleep(0.02)
    await api.raw("GET", f"{API}/queue_tasks/nope", headers=authed(api))
    stream.close()
    api.close()
    proc.terminate()
    _, err = await asyncio.wait_for(proc.communicate(), 15)
    text = err.decode()
    records = [json.loads(line) for line in text.splitlines() if line.strip()]
    states = [r["status"] for r in records if r["msg"] == "task state" and r["task"] == task_id]
    assert states == ["queued", "running", "completed"]
    refused = [r for r in records if r["msg"] == "request" and r["status"] == 404]
    assert refused and refused[0]["code"] == "not_found"
    assert TOKEN not in text and "Grüße" not in text  # neither tokens nor page bodies reach the log
    assert "s3cr3t-sig" not in text  # nor query strings (a presigned URL's signature)


async def start_then_stop(*args: str) -> str:
    """Start server.py, wait for its start line, stop it with SIGTERM; return what it wrote to stderr."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, os.path.join(ROOT, "server.py"), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=ROOT)
    assert b"dashboard on" in await asyncio.wait_for(proc.stdout.readline(), 15)
    proc.terminate()
    _, err = await asyncio.wait_for(proc.communicate(), 15)
    assert proc.returncode == 0
    return err.decode()


@pytest.mark.gen_test(timeout=30)
async def test_listening_beyond_loopback_without_a_token_warns_loudly(tmp_path):
    err = await start_then_stop("--host", "0.0.0.0", "--port", "0", "--database", f"sqlite:///{tmp_path}/w.db")
    assert "WARNING" in err and "WITHOUT an API token" in err
    err = await start_then_stop("--host", "0.0.0.0", "--port", "0", "--database", f"sqlite:///{tmp_path}/w.db",
                                "--api-token", TOKEN)
    assert "WARNING" not in err
    err = await start_then_stop("--port", "0", "--database", f"sqlite:///{tmp_path}/w2.db")
    assert "WARNING" not in err and "reachable from this machine only (127.0.0.1)" in err
