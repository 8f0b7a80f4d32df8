"""Readable content through the real server: /results/:id/markdown, /text and /links and the result's metadata,
extracted once per stored body (counted on /metrics), 415 not_html for a binary body, and a hostile page that
ends within its limit while the service keeps answering."""

from __future__ import annotations

import asyncio
import base64
import gc
import json
import re
import time
from typing import Any

import pytest

from jobqueue.extract import extract
from jobqueue.extract.pool import _GRACE, stop_helpers
from tests.helpers import API, Api, wait_for
from tests.readable_api_site import ReadableSite, corpus_expectations, corpus_page
from tests.webhook_receiver import Receiver


@pytest.fixture
def site(io_loop):
    started = io_loop.run_sync(lambda: _async(ReadableSite))
    yield started
    started.stop()


@pytest.fixture(autouse=True, scope="module")
def helpers_stopped():
    """No forkserver or resource tracker outlives these tests (each server stops them at its shutdown too)."""
    yield
    stop_helpers()


async def _async(factory: Any) -> Any:
    return factory()


async def start(make_server: Any, **overrides: Any) -> Api:
    server = await make_server(**overrides)
    return Api(f"http://127.0.0.1:{server.port}")


_start_sqlite = start


async def completed(api: Api, url: str) -> str:
    task = await api.submit(url)
    done = await api.wait_finished(task["id"])
    assert done["status"] == "completed", done
    return task["id"]


async def extractions(api: Api) -> dict[str, float]:
    """jobqueue_extractions_total by outcome, read from /metrics."""
    response = await api.raw("GET", "/metrics")
    text = response.body.decode()
    return {m.group(1): float(m.group(2))
            for m in re.finditer(r'^jobqueue_extractions_total\{outcome="(\w+)"\} (\S+)$', text, re.MULTILINE)}


@pytest.mark.gen_test(timeout=60)
async def test_markdown_text_links_and_metadata_of_a_page(make_server, site):
    api = await start(make_server)
    url = site.url("/corpus/article")
    task_id = await completed(api, url)
    expected = extract(corpus_page("article"), "text/html", "utf-8", url)
    keep = corpus_expectations("article")

    markdown = await api.raw("GET", f"{API}/results/{task_id}/markdown")
    assert markdown.code == 200 and markdown.headers["Content-Type"] == "text/markdown; charset=utf-8"
    assert markdown.body.decode() == expected.markdown
    assert all(s in markdown.body.decode() for s in keep["keep"])
    assert not any(s in markdown.body.decode() for s in keep["drop"])

    text = await api.raw("GET", f"{API}/results/{task_id}/text")
    assert text.code == 200 and text.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert text.body.decode() == expected.text

    code, links = await api.call("GET", f"{API}/results/{task_id}/links")
    assert code == 200 and links == {"links": expected.links} and links["links"]

    code, body = await api.call("GET", f"{API}/results/{task_id}")
    assert code == 200 and body["result"]["metadata"] == expected.metadata
    assert body["result"]["metadata"]["og"]["title"] == "How the river towns rebuilt their bridges"

    whole = await api.raw("GET", f"{API}/results/{task_id}/markdown?main_content=false")
    assert whole.code == 200 and "Sign up for our morning newsletter" in whole.body.decode()
    assert whole.body.decode() == extract(corpus_page("article"), "text/html", "utf-8", url,
                                          main_content=False).markdown
    bad = await api.raw("GET", f"{API}/results/{task_id}/markdown?main_content=maybe")
    assert bad.code == 400 and json.loads(bad.body)["error"]["code"] == "invalid_parameter"
    # the main-content views were extracted once, then kept; the whole page is made on each ask
    assert (await extractions(api))["ok"] == 2
    api.close()


@pytest.mark.gen_test(timeout=60)
async def test_a_binary_body_gives_415_not_html_and_its_result_no_metadata(make_server, site):
    api = await start(make_server)
    task_id = await completed(api, site.url("/png"))
    for view in ("markdown", "text", "links"):
        code, body = await api.call("GET", f"{API}/results/{task_id}/{view}")
        assert code == 415 and body["error"]["code"] == "not_html", body
    code, body = await api.call("GET", f"{API}/results/{task_id}")
    assert code == 200 and "metadata" not in body["result"]
    code, body = await api.call("GET", f"{API}/results/nosuchjob/markdown")
    assert code == 404
    api.close()


@pytest.mark.gen_test(timeout=120)
async def test_one_body_shared_by_100_jobs_is_extracted_once(make_server, site):
    api = await start(make_server)
    tasks = await api.submit_many([site.url(f"/same/p{i}") for i in range(100)])
    for task in tasks:
        assert (await api.wait_finished(task["id"]))["status"] == "completed"
    answers = await asyncio.gather(*(api.raw("GET", f"{API}/results/{t['id']}/markdown") for t in tasks))
    assert {a.code for a in answers} == {200} and len({a.body for a in answers}) == 1
    answers = await asyncio.gather(*(api.call("GET", f"{API}/results/{t['id']}") for t in tasks))
    assert all(body["result"]["metadata"]["title"].startswith("How the river towns") for _c, body in answers)
    assert await extractions(api) == {"ok": 1.0}
    api.close()


@pytest.mark.slow
@pytest.mark.gen_test(timeout=120)
async def test_a_hostile_page_ends_within_its_limit_while_the_service_answers(make_server, site):
    limit = 3.0
    api = await start(make_server, extract_timeout=limit)
    for kind in ("deep", "links"):
        task_id = await completed(api, site.url(f"/hostile/{kind}"))
        slowest = 0.0

        async def ping() -> None:
            nonlocal slowest
            while True:
                began = time.monotonic()
                assert (await api.raw("GET", "/healthz")).code == 200
                slowest = max(slowest, time.monotonic() - began)
                await asyncio.sleep(0.05)

        pinger = asyncio.ensure_future(ping())
        began = time.monotonic()
        answer = await api.raw("GET", f"{API}/results/{task_id}/markdown")
        took = time.monotonic() - began
        pinger.cancel()
        assert took < limit + _GRACE + 2, (kind, took)
        if answer.code != 200:
            error = json.loads(answer.body)["error"]
            assert (answer.code, error["code"]) in ((503, "extraction_timeout"), (422, "extraction_failed")), error
        assert slowest < 1.0, (kind, slowest)
        # the result itself is served whatever became of its views
        code, _body = await api.call("GET", f"{API}/results/{task_id}")
        assert code == 200
    await wait_for(lambda: _any(api), 5, "the extractions counted")
    api.close()


@pytest.mark.slow
@pytest.mark.gen_test(timeout=120)
async def test_big_views_completing_with_formats_never_hold_the_ioloop(make_server, site, monkeypatch):
    """A page of 100,000 links (views of 8 MB) completes with formats, and no callback of the IOLoop (which the
    service, the site and this test share) runs long on it: the views' JSON is made in the extraction worker
    and passed on unparsed (made on the loop, it took 150 ms of its CPU). Each callback is timed by the loop
    thread's CPU clock, so a busy machine that delays the thread does not count, and without the garbage
    collections that ran in it, which fall in whatever callback crosses their threshold."""
    api = await start(make_server, extract_timeout=30)
    longest, slowest = 0.0, ""
    run = asyncio.events.Handle._run
    collecting = [0.0, 0.0]  # when the garbage collection under way began; collection time in this callback

    def collected(phase: str, _info: dict[str, int]) -> None:
        if phase == "start":
            collecting[0] = time.thread_time()
        else:
            collecting[1] += time.thread_time() - collecting[0]

    def timed(handle: asyncio.events.Handle) -> None:
        nonlocal longest, slowest
        collecting[1] = 0.0
        began = time.thread_time()
        try:
            run(handle)
        finally:
            own = time.thread_time() - began - collecting[1]  # a collection runs in whatever callback crosses it
            if own > longest:
                longest, slowest = own, repr(handle)[:300]

    gc.collect()
    gc.freeze()  # as server.py does once started: what earlier tests in this process left is not collected here
    monkeypatch.setattr(asyncio.events.Handle, "_run", timed)
    gc.callbacks.append(collected)
    try:
        code, body = await api.call("POST", f"{API}/queue_tasks",
                                    {"url": site.url("/hostile/many_links"), "formats": ["links"]})
        assert code == 201, body
        task = await api.wait_finished(body["task"]["id"], timeout=60)
    finally:
        monkeypatch.undo()
        gc.callbacks.remove(collected)
        gc.unfreeze()
    assert longest < 0.04, (longest, slowest)
    assert task["status"] == "completed", task
    links = await api.raw("GET", f"{API}/results/{task['id']}/links")  # read back: parsed now, once
    assert links.code == 200, links.body[:300]
    assert len(json.loads(links.body)["links"]) == 100_000
    api.close()


async def _any(api: Api) -> bool:
    return sum((await extractions(api)).values()) >= 2


SECRET = "whsec_" + base64.b64encode(b"a test key of thirty-two bytes!!").decode()
BACKENDS = [pytest.param("sqlite", id="sqlite-file"), pytest.param("mongomock", id="mongodb-mongomock-motor-mock")]


@pytest.fixture
def receiver(io_loop):
    hooks = io_loop.run_sync(lambda: _async(Receiver))
    yield hooks
    hooks.stop()


@pytest.fixture
def any_store_server(io_loop, tmp_path, make_server):
    """Start the service on SQLite (a file) or on MongoDB through mongomock-motor (an in-memory mock)."""
    started: list[Any] = []

    async def start(backend: str, **overrides: Any) -> Api:
        if backend == "sqlite":
            return await _start_sqlite(make_server, **overrides)
        from mongomock_motor import AsyncMongoMockClient

        from jobqueue.store.mongodb.store import MongoStore
        from server import JobQueueServer
        from tests.conftest import test_settings

        client = AsyncMongoMockClient()
        store = MongoStore("mongodb://mock/jobqueue_readable", client_factory=lambda _url: client)
        server = JobQueueServer(test_settings(tmp_path, **overrides), store=store)
        await server.start()
        started.append(server)
        return Api(f"http://127.0.0.1:{server.port}")

    yield start
    for server in started:
        io_loop.run_sync(server.stop)


@pytest.mark.gen_test(timeout=90)
@pytest.mark.parametrize("backend", BACKENDS)
async def test_formats_make_the_views_ready_on_completion_and_carried_in_the_webhook(any_store_server, site,
                                                                                    receiver, backend):
    api = await any_store_server(backend, webhook_secret=SECRET, webhook_retry_delays="0.05")
    url = site.url("/corpus/article")
    code, body = await api.call("POST", f"{API}/queue_tasks", {
        "url": url, "formats": ["markdown", "links", "metadata", "markdown"], "webhook": receiver.url("a")})
    assert code == 201 and body["task"]["formats"] == ["markdown", "links", "metadata"], body
    task = await api.wait_finished(body["task"]["id"])
    assert task["status"] == "completed"
    # computed before the job was recorded completed: asking now extracts nothing more
    assert await extractions(api) == {"ok": 1.0}
    expected = extract(corpus_page("article"), "text/html", "utf-8", url)
    markdown = await api.raw("GET", f"{API}/results/{task['id']}/markdown")
    assert markdown.code == 200 and markdown.body.decode() == expected.markdown
    assert await extractions(api) == {"ok": 1.0}

    [got] = await wait_for(lambda: _received(receiver, "a"), 20, "the task.completed delivery")
    message = got.json
    assert message["type"] == "task.completed" and message["data"]["task"]["formats"] == task["formats"]
    assert message["data"]["result"] == {"markdown": expected.markdown, "links": expected.links,
                                         "metadata": expected.metadata}

    # a binary body with formats completes all the same, and its webhook carries no views
    code, body = await api.call("POST", f"{API}/queue_tasks", {"url": site.url("/png"), "formats": ["text"],
                                                                 "webhook": receiver.url("b")})
    assert (await api.wait_finished(body["task"]["id"]))["status"] == "completed"
    [got] = await wait_for(lambda: _received(receiver, "b"), 20, "the binary page's delivery")
    assert "result" not in got.json["data"] and (await extractions(api)).get("not_html") == 1.0

    code, body = await api.call("POST", f"{API}/queue_tasks", {"url": url, "formats": ["pdf"]})
    assert code == 400 and body["error"]["code"] == "invalid_field" and "formats" in body["error"]["message"]
    code, body = await api.call("POST", f"{API}/queue_tasks", {"url": url, "changed_on": "footer"})
    assert code == 400 and body["error"]["code"] == "invalid_field" and "changed_on" in body["error"]["message"]
    api.close()


@pytest.mark.gen_test(timeout=90)
@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_schedules_next_run_keeps_its_formats_and_changed_on(any_store_server, site, backend):
    api = await any_store_server(backend)
    code, body = await api.call("POST", f"{API}/queue_tasks", {
        "url": site.url("/corpus/docs"), "every": 3600, "formats": ["text"], "changed_on": "text"})
    assert code == 201 and body["task"]["changed_on"] == "text", body
    first = await api.wait_finished(body["task"]["id"])
    assert first["status"] == "completed"

    async def next_run() -> dict[str, Any] | None:
        code, page = await api.call("GET", f"{API}/queue_tasks?status=queued")
        assert code == 200
        return next((t for t in page["tasks"] if t["schedule_id"] == first["schedule_id"]), None)

    queued = await wait_for(next_run, 20, "the schedule's next run")
    assert queued["id"] != first["id"] and queued["formats"] == ["text"] and queued["changed_on"] == "text"
    api.close()


async def _received(receiver: Receiver, name: str) -> list[Any] | None:
    return receiver.got(name) or None
