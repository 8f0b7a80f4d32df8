"""A bug met after the fetch (building the result of a response, deciding or writing its outcome) ends the attempt
at once as `failed`/`internal_error` and frees its slots: never `running` for a whole lease, then `abandoned`.
Only the database being unavailable leaves a job to its lease, since then nothing can be recorded."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from jobqueue import workers
from jobqueue.errors import StoreError
from jobqueue.models import Result
from tests.helpers import API, Api, wait_for
from tests.target import Target

BROKEN = "/page/broken"
LEASE = 60.0  # every wait below ends long before it


def breaks_on_the_broken_page(monkeypatch: Any) -> None:
    """result_from_response raises for the broken page's response, as a bug meeting an odd response would."""
    real = workers.result_from_response

    def result_from_response(task_id: str, response: Any) -> Result:
        if response.url.endswith(BROKEN):
            raise RuntimeError("a bug building this result")
        return real(task_id, response)

    monkeypatch.setattr(workers, "result_from_response", result_from_response)


async def submit(api: Api, url: str, **spec: Any) -> str:
    code, body = await api.call("POST", f"{API}/queue_tasks", {"url": url, **spec})
    assert code == 201, body
    return body["task"]["id"]


# a job fetched by callbacks (a plain job) and one fetched by the Fetcher.fetch coroutine (headers kept across
# redirects): after the fetch, both go through the same steps
PATHS = [pytest.param({}, id="callbacks"), pytest.param({"fetch": {"headers": {"X-Key": "1"}}}, id="task")]


@pytest.mark.parametrize("spec", PATHS)
@pytest.mark.gen_test(timeout=90)
async def test_a_bug_building_the_result_fails_the_job_at_once(make_server, target: Target, monkeypatch, caplog,
                                                                spec):
    breaks_on_the_broken_page(monkeypatch)
    as_tasks: list[str] = []  # the URLs fetched by the coroutine
    fetch = workers.Fetcher.fetch

    async def counted(fetcher: workers.Fetcher, url: str, *options: Any) -> Any:
        as_tasks.append(url)
        return await fetch(fetcher, url, *options)

    monkeypatch.setattr(workers.Fetcher, "fetch", counted)
    server = await make_server(lease_seconds=LEASE, per_host=1, workers=2, max_attempts=3)
    api = Api(f"http://127.0.0.1:{server.port}")
    try:
        broken = await submit(api, target.url(BROKEN), **spec)
        after = await submit(api, target.url("/page/after"), **spec)  # same host: waits for the broken one's slot
        done = await api.wait_finished(broken, timeout=30)
        assert done["status"] == "failed", done
        assert done["error"]["code"] == "internal_error", done
        assert "RuntimeError: a bug building this result" in done["error"]["message"], done
        assert done["attempts"] == 1 and target.state.hits[BROKEN] == 1, done  # a bug is not retried
        next_one = await api.wait_finished(after, timeout=30)  # the host slot was freed
        assert next_one["status"] == "completed", next_one
        assert (target.url(BROKEN) in as_tasks) == bool(spec), as_tasks  # the fetch the parameter names
    finally:
        api.close()
    assert any("failed unexpectedly" in r.getMessage() and r.exc_info and "a bug building" in str(r.exc_info[1])
               for r in caplog.records)


# a bug raised by the group write, and one in handing its answers out (an answer missing: zip(strict=True) raises)
WRITE_BUGS = [pytest.param("raises", "TypeError: a bug storing this result", id="raises"),
              pytest.param("answers-short", "ValueError: zip()", id="answers-short")]


@pytest.mark.parametrize(("bug", "named"), WRITE_BUGS)
@pytest.mark.gen_test(timeout=90)
async def test_a_bug_writing_the_result_fails_the_job_at_once(make_server, target: Target, monkeypatch, bug, named):
    server = await make_server(lease_seconds=LEASE, per_host=1, max_attempts=3)
    store = server.pool.store
    real = store.complete_many

    async def complete_many(pairs: list[tuple[Any, Result]], **kwargs: Any) -> Any:
        if any(result.url.endswith(BROKEN) for _lease, result in pairs):
            if bug == "raises":
                raise TypeError("a bug storing this result")
            return []
        return await real(pairs, **kwargs)

    monkeypatch.setattr(store, "complete_many", complete_many)
    api = Api(f"http://127.0.0.1:{server.port}")
    try:
        broken = await submit(api, target.url(BROKEN))
        done = await api.wait_finished(broken, timeout=30)
        assert done["status"] == "failed" and done["error"]["code"] == "internal_error", done
        assert named in done["error"]["message"], done
        healthy = await api.wait_finished(await submit(api, target.url("/page/after")), timeout=30)
        assert healthy["status"] == "completed", healthy
    finally:
        api.close()


@pytest.mark.gen_test(timeout=90)
async def test_only_an_unavailable_database_leaves_the_job_to_its_lease(make_server, target: Target, monkeypatch,
                                                                         caplog):
    """When even the failure cannot be written, the log says why the job stays running; its host slot is free."""
    breaks_on_the_broken_page(monkeypatch)
    server = await make_server(lease_seconds=LEASE, per_host=1, max_attempts=3)
    store = server.pool.store
    real = store.fail

    async def fail(lease: Any, error: Any, http_status: Any) -> Any:
        if error.code == "internal_error":
            raise StoreError("database is locked")
        return await real(lease, error, http_status)

    monkeypatch.setattr(store, "fail", fail)
    api = Api(f"http://127.0.0.1:{server.port}")
    caplog.set_level(logging.INFO, logger="jobqueue.workers")
    try:
        broken = await submit(api, target.url(BROKEN))

        async def logged() -> bool:
            return any(broken in r.getMessage() and "database is unavailable" in r.getMessage()
                       for r in caplog.records)

        await wait_for(logged, 30.0, "the failed write to be logged")
        [line] = [r.getMessage() for r in caplog.records if broken in r.getMessage() and "database" in r.getMessage()]
        assert "database is locked" in line and "after its lease expires" in line, line
        assert (await api.task(broken))["status"] == "running"
        after = await api.wait_finished(await submit(api, target.url("/page/after")), timeout=30)
        assert after["status"] == "completed", after  # its host slot was freed all the same
    finally:
        api.close()
