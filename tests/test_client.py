"""jobqueue.client against a real server and target: typed results, errors with codes, waits, the stream."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import time
from typing import Any

import pytest

from jobqueue.client import APIError, AsyncClient, Batch, Client, JobQueueError, Unreachable
from jobqueue.errors import StoreError
from tests.target import UTF8_TEXT
from tests.test_export import filled_server

REFUSED = "http://127.0.0.1:9/refused"  # nothing listens there: the job fails
LATER = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 30 * 86400))  # stays queued


def client_for(server: Any, token: str | None = None, **options: Any) -> AsyncClient:
    return AsyncClient(f"http://127.0.0.1:{server.port}", token, **options)


@pytest.mark.gen_test(timeout=30)
async def test_submit_wait_and_result_are_typed(jq: Any, target: Any) -> None:
    async with client_for(jq) as client:
        task = await client.submit(target.url("/utf8"), tags=["docs"], priority=3)
        assert task.status == "queued" and task.tags == ("docs",) and task.priority == 3
        done = await client.wait(task.id, timeout=20)
        assert done.status == "completed" and done.http_status == 200 and done.finished
        assert done.finished_at is not None and done.finished_at.tzinfo is not None
        result = await client.result(task.id)
        assert UTF8_TEXT in (result.body or "") and result.http_status == 200 and result.final_url.endswith("/utf8")
        assert (await client.body(task.id)).decode() == result.body
        assert (await client.counts())["completed"] == 1


@pytest.mark.gen_test(timeout=30)
async def test_errors_carry_the_api_code(make_server: Any) -> None:
    server = await make_server(api_tokens=("s3cret",))
    async with client_for(server, "s3cret") as client:
        with pytest.raises(APIError) as missing:
            await client.get("nosuchjob")
        assert missing.value.code == "not_found" and missing.value.status == 404
        with pytest.raises(APIError) as bad:
            await client.submit("ftp://example.com/")
        assert bad.value.code == "unsupported_scheme" and bad.value.status == 400
        task = await client.submit("https://example.invalid/", not_before=LATER)
        with pytest.raises(APIError) as pending:
            await client.result(task.id)
        assert pending.value.code == "no_result" and pending.value.status == 409
    async with client_for(server, "wrong") as client:
        with pytest.raises(APIError) as refused:
            await client.counts()
        assert refused.value.code == "unauthorized" and "JOBQUEUE_API_TOKEN" in str(refused.value)
        with pytest.raises(APIError) as stream:
            async for _ in client.events():
                pass
        assert stream.value.status == 401
    port = server.port
    await server.stop()
    async with AsyncClient(f"http://127.0.0.1:{port}") as client:
        with pytest.raises(Unreachable) as down:
            await client.counts()
        assert down.value.code == "unreachable" and f"127.0.0.1:{port}" in str(down.value)


@pytest.mark.gen_test(timeout=30)
async def test_rate_limits_are_waited_out_with_retry_after(make_server: Any) -> None:
    server = await make_server(rate_limit=1.0, rate_burst=1)
    later = LATER  # nothing is fetched
    async with client_for(server) as client:
        started = time.monotonic()
        first = await client.submit("https://example.invalid/a", not_before=later)
        second = await client.submit("https://example.invalid/b", not_before=later)  # 429 Retry-After: 1, then 201
        assert first.id != second.id and time.monotonic() - started >= 0.9
    async with client_for(server, max_wait=0.5) as impatient:
        with pytest.raises(APIError) as limited:
            await impatient.submit("https://example.invalid/c", not_before=later)
        assert limited.value.code == "rate_limited" and limited.value.status == 429


@pytest.mark.gen_test(timeout=30)
async def test_a_batch_is_followed_to_its_end(jq: Any, target: Any) -> None:
    urls = [target.url(f"/page/p{i}") for i in range(20)] + [REFUSED]
    seen: list[Batch] = []
    async with client_for(jq) as client:
        batch = await client.submit_batch(urls, tags=["bulk"], priority=2)
        assert batch.total == 21 and batch.tags == ("bulk",)
        final = await client.wait_batch(batch.id, timeout=25, on_progress=seen.append)
    assert final.finished and final.done == 21 and final.failed == 1 and final.counts["completed"] == 20
    assert seen[-1] == final and all(a.done <= b.done for a, b in itertools.pairwise(seen))


@pytest.mark.gen_test(timeout=30)
async def test_a_batch_with_other_fields_goes_as_json(jq: Any, target: Any) -> None:
    async with client_for(jq) as client:
        batch = await client.submit_batch([target.url("/echo/a"), "# a comment", ""], fetch={"method": "HEAD"})
        assert batch.total == 1
        final = await client.wait_batch(batch.id, timeout=20)
        assert final.counts["completed"] == 1


@pytest.mark.gen_test(timeout=30)
async def test_events_wait_for_the_server_then_resync_and_follow_jobs(make_server: Any, target: Any) -> None:
    stopped = await make_server()
    port = stopped.port
    await stopped.stop()
    received: asyncio.Queue[Any] = asyncio.Queue()
    async with AsyncClient(f"http://127.0.0.1:{port}") as client:

        async def consume() -> None:
            async for event in client.events():
                received.put_nowait(event)

        consumer = asyncio.ensure_future(consume())
        await asyncio.sleep(0.2)  # let its first connections be refused; it retries with backoff
        assert received.empty()
        await make_server(port=port)
        first = await asyncio.wait_for(received.get(), 10)
        assert first.type == "resync"  # connected: read what you show now, then follow the stream
        task = await client.submit(target.url("/utf8"))
        statuses: list[str] = []
        while "completed" not in statuses:
            event = await asyncio.wait_for(received.get(), 10)
            if event.type == "task" and event.task is not None and event.task.id == task.id:
                statuses.append(event.task.status)
        assert statuses[0] in ("queued", "running") and event.task.http_status == 200
        consumer.cancel()


@pytest.mark.gen_test(timeout=30)
async def test_the_blocking_client(jq: Any, target: Any) -> None:
    def use() -> tuple[str, str | None]:
        with Client(f"http://127.0.0.1:{jq.port}") as client:
            task = client.wait(client.submit(target.url("/utf8")).id, timeout=20)
            return task.status, client.result(task.id).body

    status, body = await asyncio.to_thread(use)
    assert status == "completed" and UTF8_TEXT in (body or "")


@pytest.mark.gen_test(timeout=30)
async def test_export_streams_to_a_file(jq: Any, target: Any, tmp_path: Any) -> None:
    async with client_for(jq) as client:
        tasks = await client.submit_many([target.url("/utf8"), target.url("/binary"), REFUSED])
        for task in tasks:
            await client.wait(task.id, timeout=20)
        written = await client.export(str(tmp_path), "jsonl")
        assert written.path is not None and os.path.dirname(written.path) == str(tmp_path)
        assert os.path.basename(written.path).startswith("jobqueue-export-") and written.path.endswith(".jsonl")
        data = read(written.path)
        lines = [json.loads(line) for line in data.splitlines()]
        assert len(data) == written.size
        assert sorted(line["task"]["id"] for line in lines) == sorted(t.id for t in tasks)
        failed = await client.export(str(tmp_path / "failed.csv"), "csv", status="failed")
        rows = read(str(failed.path)).decode().splitlines()
        assert rows[0].startswith("id,url,status") and len(rows) == 2 and tasks[2].id in rows[1]
        with pytest.raises(APIError) as bad:
            await client.export(str(tmp_path / "x.txt"), "pdf")
        assert bad.value.code == "invalid_format"
        assert sorted(os.listdir(tmp_path)) == sorted([os.path.basename(written.path), "failed.csv",
                                                        "jobqueue.db", "jobqueue.db-shm", "jobqueue.db-wal"])


@pytest.mark.gen_test(timeout=30)
async def test_a_stream_that_cannot_connect_is_retried_then_given_up(make_server: Any) -> None:
    server = await make_server()
    port = server.port
    await server.stop()
    async with AsyncClient(f"http://127.0.0.1:{port}") as client:
        events = [event async for event in client.events(max_failures=2)]
    assert events == []


def read(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


@pytest.mark.gen_test(timeout=60)
async def test_a_cut_export_raises_and_leaves_no_file(make_server: Any, tmp_path: Any) -> None:
    server, api = await filled_server(make_server, tmp_path, 600, 2048)
    api.close()
    store = server.service.store
    real_list, calls = store.list, []

    async def failing_list(*args: Any) -> Any:
        calls.append(args)
        if len(calls) == 2:  # the second page: the download has begun
            raise StoreError("the database went away")
        return await real_list(*args)

    store.list = failing_list
    out = tmp_path / "out"
    out.mkdir()
    async with client_for(server) as client:
        with pytest.raises(JobQueueError) as cut:
            await client.export(str(out / "all.jsonl"))
        assert cut.value.code == "incomplete_download" and "cut off after" in str(cut.value)
        assert os.listdir(out) == []
        store.list = real_list
        whole = await client.export(str(out / "all.jsonl"))
        assert whole.path == str(out / "all.jsonl") and os.listdir(out) == ["all.jsonl"]
