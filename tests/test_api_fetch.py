"""End to end through the API: real server, real SQLite file, real target site on 127.0.0.1."""

from __future__ import annotations

import hashlib

import pytest

from tests.helpers import API
from tests.target import FIVE_MIB, LATIN1_TEXT, PNG_BYTES, SJIS_TEXT, UTF8_TEXT


async def fetched(api, target, path):
    task = await api.submit(target.url(path))
    task = await api.wait_finished(task["id"])
    code, body = await api.call("GET", f"{API}/results/{task['id']}")
    return task, code, body


@pytest.mark.gen_test
async def test_utf8_page_round_trips(api, target):
    task, code, body = await fetched(api, target, "/utf8")
    assert task["status"] == "completed" and task["http_status"] == 200 and task["attempts"] == 1
    result = body["result"]
    assert code == 200
    assert UTF8_TEXT in result["body"]
    assert result["encoding"] == "utf-8" and result["encoding_source"] == "header"
    assert result["content_type"] == "text/html"
    assert result["final_url"] == target.url("/utf8")
    assert result["headers"]["content-type"] == "text/html; charset=utf-8"
    assert result["size"] == len(result["body"].encode())


@pytest.mark.gen_test
async def test_latin1_declared_only_in_meta(api, target):
    _, _, body = await fetched(api, target, "/latin1-meta")
    assert LATIN1_TEXT in body["result"]["body"]
    assert body["result"]["encoding_source"] == "meta"


@pytest.mark.gen_test
async def test_shift_jis(api, target):
    _, _, body = await fetched(api, target, "/sjis")
    assert SJIS_TEXT in body["result"]["body"]
    assert body["result"]["encoding"] == "shift_jis"


@pytest.mark.gen_test
@pytest.mark.parametrize("path,word", [("/gzip", "gzip"), ("/deflate", "deflate")])
async def test_compressed_bodies_are_decoded(api, target, path, word):
    _, _, body = await fetched(api, target, path)
    result = body["result"]
    assert result["body"].startswith(f"{word} {UTF8_TEXT}")
    assert result["size"] == len(result["body"].encode())


@pytest.mark.gen_test
async def test_five_mib_page_intact(api, target):
    task, _, body = await fetched(api, target, "/big")
    assert body["result"]["size"] == len(FIVE_MIB)
    assert body["result"]["sha256"] == hashlib.sha256(FIVE_MIB).hexdigest()
    raw = await api.raw("GET", f"{API}/results/{task['id']}/body")
    assert raw.body == FIVE_MIB


@pytest.mark.gen_test
async def test_body_over_the_cap_fails_too_large(api, target):
    task = await api.submit(target.url("/over-cap"))
    task = await api.wait_finished(task["id"])
    assert task["status"] == "failed"
    assert task["error"]["code"] == "too_large"
    assert task["attempts"] == 1


@pytest.mark.gen_test
async def test_binary_body_is_served_raw(api, target):
    task, _, body = await fetched(api, target, "/binary")
    assert body["result"]["body"] is None and body["result"]["content_type"] == "image/png"
    raw = await api.raw("GET", f"{API}/results/{task['id']}/body")
    assert raw.body == PNG_BYTES
    assert raw.headers["Content-Type"] == "image/png"
    assert raw.headers["Content-Security-Policy"] == "sandbox"
    assert raw.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.gen_test
async def test_404_is_a_result_and_is_not_retried(api, target):
    task, code, body = await fetched(api, target, "/status/404")
    assert task["status"] == "completed" and task["http_status"] == 404 and task["attempts"] == 1
    assert code == 200 and body["result"]["http_status"] == 404
    assert target.state.hits["/status/404"] == 1


@pytest.mark.gen_test
async def test_500_is_retried_then_kept(api, target):
    task, _, body = await fetched(api, target, "/status/500")
    assert task["status"] == "completed" and task["http_status"] == 500
    assert task["attempts"] == 3 and target.state.hits["/status/500"] == 3
    assert body["result"]["http_status"] == 500


@pytest.mark.gen_test
async def test_flaky_then_200(api, target):
    task, _, body = await fetched(api, target, "/flaky/a?fail=2")
    assert task["status"] == "completed" and task["http_status"] == 200 and task["attempts"] == 3
    assert task["error"] is None
    assert body["result"]["body"] == "ok after 2 failures"


@pytest.mark.gen_test
async def test_redirect_chain_records_final_url(api, target):
    _, _, body = await fetched(api, target, "/redirect/3")
    result = body["result"]
    assert result["final_url"] == target.url("/utf8")
    assert [hop["status"] for hop in result["redirects"]] == [302, 301, 302]
    assert result["redirects"][0]["url"] == target.url("/redirect/3")
    assert UTF8_TEXT in result["body"]


@pytest.mark.gen_test
async def test_retry_after_is_honoured(api, target):
    task, _, body = await fetched(api, target, "/retry-after/x?after=1")
    assert task["status"] == "completed" and task["attempts"] == 2
    first, second = target.state.times["/retry-after/x"]
    assert second - first >= 0.95
    assert body["result"]["body"] == "thanks for waiting"


@pytest.mark.gen_test
async def test_slow_target_times_out(make_server, target):
    from tests.helpers import Api

    server = await make_server(fetch_timeout=0.3, max_attempts=2)
    api = Api(f"http://127.0.0.1:{server.port}")
    task = await api.submit(target.url("/slow?delay=3"))
    task = await api.wait_finished(task["id"])
    assert task["status"] == "failed" and task["error"]["code"] == "timeout" and task["attempts"] == 2
    api.close()


@pytest.mark.gen_test
async def test_unresolvable_host_fails_with_dns_error(make_server):
    from tests.helpers import Api

    server = await make_server(max_attempts=1)
    api = Api(f"http://127.0.0.1:{server.port}")
    task = await api.submit("http://no-such-host.invalid/")
    task = await api.wait_finished(task["id"])
    assert task["status"] == "failed" and task["error"]["code"] == "dns_error"
    api.close()
