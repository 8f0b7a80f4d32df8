"""The MongoDB store's client options and its change stream's recovery, checked without a server.

The options are read from a real motor client built for a closed local port (it connects to
nothing). The change stream loop is driven by a scripted stream standing in for the driver's
(what a real server does is in test_mongodb_real.py): its events, the resume tokens the server
would hand out, and the errors a replica set raises.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo.errors import AutoReconnect, OperationFailure

from jobqueue.models import Task
from jobqueue.store.base import ChangesUnavailable
from jobqueue.store.mongodb import watch as mongodb_watch
from jobqueue.store.mongodb.connect import database_name, write_concern
from jobqueue.store.mongodb.store import MongoStore


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.gen_test
async def test_the_urls_write_concern_and_timeouts_are_kept_and_only_missing_ones_filled_in():
    port = closed_port()
    url = f"mongodb://127.0.0.1:{port}/crawl?w=2&wtimeoutMS=5000&serverSelectionTimeoutMS=1234"
    client = MongoStore(url)._new_client()
    try:
        assert client.options.server_selection_timeout == 1.234  # the URL's
        # no timeoutMS, under which PyMongo would drop the wtimeout (test_mongodb_wire.py checks the wire);
        # a bound on every network wait instead: no operation waits forever
        assert client.options.timeout is None and client.options.pool_options.socket_timeout == 30.0
        db = client.get_database(database_name(url), write_concern=write_concern(url))
        assert db.name == "crawl" and db.write_concern.document == {"w": 2, "wtimeout": 5000, "j": True}
    finally:
        client.close()
    plain = f"mongodb://127.0.0.1:{port}/"
    client = MongoStore(plain)._new_client()
    try:
        assert client.options.server_selection_timeout == 20.0  # outlasts an election
        assert client.options.timeout == 30.0  # added: no operation waits forever
        assert database_name(plain) == "jobqueue" and write_concern(plain).document == {"w": "majority", "j": True}
        assert write_concern(f"{plain}?journal=false&timeoutMS=9000").document == {"w": "majority", "j": False}
        assert write_concern(f"{plain}?w=0").document == {"w": 0}
    finally:
        client.close()
    patient = f"{plain}?serverSelectionTimeoutMS=45000"  # under CSOT an operation waits for a server only as
    client = MongoStore(patient)._new_client()          # long as its own limit: that limit is made as long
    try:
        assert client.options.timeout == 45.0
    finally:
        client.close()


def doc(task_id: str, at: float) -> dict[str, Any]:
    return {"_id": task_id, "url": f"https://example.com/{task_id}", "host": "example.com", "status": "queued",
            "attempts": 0, "created_at": at, "updated_at": at, "available_at": at}


class Script:
    """Streams that replay, per opening, a list of steps: a document, None (an empty getMore), "invalidate",
    or an exception; every step moves the resume token, as the server's post-batch token does."""

    def __init__(self, *openings: list[Any]) -> None:
        self.openings = list(openings)
        self.opened_with: list[Any] = []
        self.token = 0

    async def open(self, _pipeline: list[dict[str, Any]], start_after: Any) -> Any:
        self.opened_with.append(start_after)
        if not self.openings:
            raise AutoReconnect("no more openings in the script")
        steps = self.openings.pop(0)
        if isinstance(steps, Exception):
            raise steps
        return Stream(self, steps)


class Stream:
    def __init__(self, script: Script, steps: list[Any]) -> None:
        self.script, self.steps, self.alive, self.resume_token = script, steps, True, None

    async def __aenter__(self) -> Stream:
        return self

    async def __aexit__(self, *_exc: Any) -> None:
        self.alive = False

    async def try_next(self) -> Any:
        if not self.steps:
            raise AutoReconnect("the script ran out")
        step = self.steps.pop(0)
        self.script.token += 1
        self.resume_token = {"_data": self.script.token}
        if isinstance(step, Exception):
            raise step
        if step == "invalidate":
            self.alive = False
            return {"operationType": "invalidate"}
        return None if step is None else {"operationType": "insert", "fullDocument": step}


async def collect(script: Script, changed: dict[float, list[Task]], wanted: int) -> list[str]:
    async def catch_up(since: float) -> AsyncIterator[Task]:
        for task in [t for at, found in changed.items() if at >= since for t in found]:
            yield task

    seen: list[str] = []
    follow = mongodb_watch.follow(script.open, catch_up, lambda: 100.0, "mock", backoff=0.001)
    async for task in follow:
        seen.append(task.id)
        if len(seen) == wanted:
            break
    await follow.aclose()
    return seen


@pytest.mark.gen_test
async def test_the_stream_keeps_its_token_without_events_and_catches_up_after_lost_history_or_invalidation():
    from jobqueue.store.mongodb.schema import task_from_doc

    early, late = task_from_doc(doc("gap1", 150.0)), task_from_doc(doc("gap2", 165.0))  # changed while closed
    script = Script([doc("a", 150.0), None, None, AutoReconnect("primary stepped down")],
                    [None, OperationFailure("resume point no longer in the oplog", code=286)],
                    [None, doc("b", 160.0), "invalidate"],
                    [None, doc("c", 170.0)])
    seen = await collect(script, {150.0: [early], 165.0: [late]}, wanted=6)
    # caught up from the last change seen (less OVERLAP) after 286 and after invalidation; the hub drops repeats
    assert seen == ["a", "gap1", "gap2", "b", "gap2", "c"]
    # a plain failure resumes from the token of the last try_next (an empty one); lost history or
    # invalidation open a fresh stream
    assert script.opened_with == [None, {"_data": 3}, None, None]


@pytest.mark.gen_test
async def test_a_stream_that_keeps_failing_gives_way_to_polling():
    script = Script(*[AutoReconnect("down")] * mongodb_watch.MAX_FAILURES)
    with pytest.raises(ChangesUnavailable, match="failed 5 times in a row"):
        await collect(script, {}, wanted=1)
    standalone = Script(OperationFailure("The $changeStream stage is only supported on replica sets", code=40573))
    with pytest.raises(ChangesUnavailable, match="no change streams"):
        await collect(standalone, {}, wanted=1)


@pytest.mark.gen_test
async def test_heartbeats_are_filtered_out_of_the_stream_by_its_pipeline():
    match = mongodb_watch.PIPELINE[0]["$match"]["$or"]
    update = {"operationType": "update", "updateDescription.updatedFields.updated_at": {"$exists": True}}
    assert update in match  # extend() sets only available_at: no updated_at, no event, no updateLookup read
    await asyncio.sleep(0)
