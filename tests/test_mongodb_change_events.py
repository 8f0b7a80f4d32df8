"""A MongoDB change stream yields each change's own state, in order: an update event's looked-up document
may already show a later state (a job that ran 5 ms shows `completed` in the event of its claim)."""

from __future__ import annotations

from typing import Any

import pytest

from jobqueue.store.mongodb import watch as mongodb_watch
from jobqueue.store.mongodb.watch import task_as_of

AT = 1_800_000_000.0
DONE = {"_id": "job", "url": "https://example.com/", "host": "example.com", "status": "completed", "attempts": 2,
        "created_at": AT, "updated_at": AT + 4, "available_at": AT + 4, "started_at": AT + 3, "finished_at": AT + 4,
        "http_status": 200, "error": None,
        "attempt_log": [
            {"at": AT + 2, "outcome": "queued", "http_status": 503, "error": "http_error", "message": "503"},
            {"at": AT + 4, "outcome": "completed", "http_status": 200, "error": None, "message": None}]}


def update(fields: dict[str, Any]) -> dict[str, Any]:
    """An update event read after the job completed: its own fields, and the document as it is now."""
    return {"operationType": "update", "fullDocument": DONE, "updateDescription": {"updatedFields": fields}}


def test_each_update_event_yields_the_state_that_update_made():
    claim = update({"status": "running", "attempts": 1, "updated_at": AT + 1, "started_at": AT + 1,
                    "lease_token": "t1", "available_at": AT + 31})
    retry = update({"status": "queued", "updated_at": AT + 2, "available_at": AT + 2.5, "http_status": 503,
                    "error": {"code": "http_error", "message": "503"}, "lease_token": None})
    running = task_as_of(claim)
    assert (running.status, running.attempts, running.updated_at) == ("running", 1, AT + 1)
    assert running.finished_at is None and running.http_status is None and running.attempt_log == ()
    queued = task_as_of(retry, attempts=1)  # the count its claim's event gave
    assert (queued.status, queued.attempts, queued.http_status, queued.error.code) == ("queued", 1, 503, "http_error")
    assert queued.finished_at is None and len(queued.attempt_log) == 1
    done = task_as_of(update({"status": "completed", "updated_at": AT + 4, "finished_at": AT + 4}))
    assert (done.status, done.http_status, len(done.attempt_log)) == ("completed", 200, 2)
    assert task_as_of({"operationType": "insert", "fullDocument": {**DONE, "status": "queued"}}).status == "queued"
    assert task_as_of({"operationType": "update", "fullDocument": None}) is None  # deleted since


class Stream:
    def __init__(self, events: list[Any]) -> None:
        self.events, self.alive, self.resume_token = events, True, None

    async def __aenter__(self) -> Stream:
        return self

    async def __aexit__(self, *_exc: Any) -> None:
        self.alive = False

    async def try_next(self) -> Any:
        if not self.events:
            self.alive = False
            return None
        return self.events.pop(0)


@pytest.mark.gen_test
async def test_the_stream_yields_every_state_of_a_job_in_order_even_when_read_after_it_finished():
    events = [{"operationType": "insert", "fullDocument": {**DONE, "status": "queued", "attempts": 0,
                                                             "updated_at": AT, "attempt_log": []}},
              update({"status": "running", "attempts": 1, "updated_at": AT + 1}),
              update({"status": "queued", "updated_at": AT + 2, "http_status": 503,
                      "error": {"code": "http_error", "message": "503"}}),
              update({"status": "running", "attempts": 2, "updated_at": AT + 3}),
              update({"status": "completed", "updated_at": AT + 4, "finished_at": AT + 4, "http_status": 200})]
    opened: list[Stream] = []

    async def open_stream(_pipeline: list[dict[str, Any]], _resume: Any) -> Stream:
        opened.append(Stream(events if not opened else []))
        return opened[-1]

    async def catch_up(_since: float) -> Any:
        return
        yield

    seen = []
    follow = mongodb_watch.follow(open_stream, catch_up, lambda: AT, "mock", backoff=0.001)
    async for task in follow:
        seen.append((task.status, task.attempts))
        if len(seen) == 5:
            break
    await follow.aclose()
    assert seen == [("queued", 0), ("running", 1), ("queued", 1), ("running", 2), ("completed", 2)]
