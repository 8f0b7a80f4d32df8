"""On a MongoDB replica set each process follows a change stream: a job another process deletes arrives as a
delete event, which every process's dashboards must hear of as `task.deleted`."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from jobqueue import peer_sync
from jobqueue.events import EventHub
from jobqueue.store.base import JobDeleted
from jobqueue.store.mongodb import watch as mongodb_watch
from tests.test_mongodb_change_events import AT, DONE, Stream, update

EVENTS = [{"operationType": "insert", "fullDocument": {**DONE, "status": "queued", "attempts": 0, "updated_at": AT,
                                                        "attempt_log": []}},
          update({"status": "running", "attempts": 1, "updated_at": AT + 1}),
          {"operationType": "delete", "documentKey": {"_id": "job"}}]


def test_the_streams_filter_lets_deletions_through():
    [match, _project] = mongodb_watch.PIPELINE
    assert {"operationType": {"$in": ["insert", "replace", "delete"]}} in match["$match"]["$or"]


class QuietStream(Stream):
    """A stream that, once its events are read, waits for more that never come (as a real one does)."""

    async def try_next(self) -> Any:
        if not self.events:
            await asyncio.Event().wait()
        return self.events.pop(0)


def following(events: list[Any]) -> Any:
    """mongodb_watch.follow over one stream of `events`, then waiting."""

    async def open_stream(_pipeline: list[dict[str, Any]], _resume: Any) -> Stream:
        return QuietStream(list(events))

    async def catch_up(_since: float) -> Any:
        return
        yield

    return mongodb_watch.follow(open_stream, catch_up, lambda: AT, "mock", backoff=0.001)


@pytest.mark.gen_test
async def test_a_delete_event_is_yielded_as_the_jobs_deletion_after_its_states():
    seen: list[Any] = []
    changes = following(EVENTS)
    async for change in changes:
        seen.append(change)
        if len(seen) == 3:
            break
    await changes.aclose()
    assert [c.status for c in seen[:2]] == ["queued", "running"]
    assert seen[2] == JobDeleted("job")


class StreamingStore:
    """Just enough of MongoStore for peer_sync.follow_stream."""

    def watch(self) -> Any:
        return following(EVENTS)


@pytest.mark.gen_test
async def test_a_deletion_from_the_stream_reaches_the_hubs_readers():
    hub = EventHub()
    reader = hub.subscribe()
    follower = asyncio.ensure_future(peer_sync.follow_stream(StreamingStore(), hub))  # type: ignore[arg-type]
    messages: list[dict[str, Any]] = []
    try:
        while not any(m["type"] == "task.deleted" for m in messages):
            messages += [json.loads(m) for m in await asyncio.wait_for(reader.next_batch(), 5)]
    finally:
        follower.cancel()
        await asyncio.gather(follower, return_exceptions=True)
    assert [m.get("task", {}).get("status") for m in messages if m["type"] == "task"] == ["queued", "running"]
    assert [m["task_id"] for m in messages if m["type"] == "task.deleted"] == ["job"]
