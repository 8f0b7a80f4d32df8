"""/healthz is cheap and bounded: it never writes, so a busy writer (a bulk delete) does not hold it up; it says
`degraded` when writes are slow, and it answers within its deadline even when the database does not."""

from __future__ import annotations

import asyncio
import threading

import pytest

from tests.helpers import API, wait_for


@pytest.mark.gen_test(timeout=60)
async def test_healthz_answers_without_the_writer_and_says_when_writes_are_slow(jq, api, target):
    release = threading.Event()
    writer = jq.store._writer  # the SQLite writer thread, held as a long bulk delete would hold it
    held = writer.submit(lambda _conn: release.wait(30))
    answers: list[dict] = []

    async def degraded() -> bool:
        got, health = await api.call("GET", "/healthz")
        assert got == 200, health  # a probe write queued behind the held writer made this a 503
        answers.append(health)
        return health["status"] == "degraded"

    try:
        await wait_for(degraded, 10, "/healthz to say the writes are slow")
        warning = answers[-1]["warning"]
        assert warning["code"] == "database_slow" and "writes are slow" in warning["message"], warning
        assert {a["status"] for a in answers} <= {"ok", "degraded"}
        assert (await api.call("GET", f"{API}/queue_tasks?limit=1"))[0] == 200  # reads go on meanwhile
    finally:
        release.set()
    await held
    got, health = await api.call("GET", "/healthz")
    assert got == 200 and health.pop("rendering")["available"] in (True, False)
    assert health == {"status": "ok", "database": "sqlite"}


@pytest.mark.gen_test(timeout=60)
async def test_healthz_answers_within_its_deadline_when_the_database_does_not(jq, api):
    never = asyncio.Event()

    async def hanging_ping() -> None:
        await never.wait()

    jq.service.store.ping = hanging_ping  # a database that takes the connection and never answers
    got, health = await api.call("GET", "/healthz")
    assert got == 503 and health["status"] == "unavailable" and health["error"]["code"] == "database_unavailable"
    assert "did not answer within" in health["error"]["message"]
    assert int((await api.raw("GET", "/healthz")).headers["Retry-After"]) >= 1
