"""The job state machine is declared once (jobqueue/store/transitions.py) and each store renders it: these tests
check that every declared field exists in both stores, and that the renderings write what the stores wrote by
hand before (the cancel and the give-back, spelled out as they were)."""

from __future__ import annotations

import dataclasses
import sqlite3

import pytest

from jobqueue.errors import Conflict, NotFound
from jobqueue.models import STATUSES, Task, TaskError
from jobqueue.store.mongodb.schedules import next_run_doc
from jobqueue.store.mongodb.transitions import status_filter, update_doc
from jobqueue.store.sqlite.migrations import migrate
from jobqueue.store.sqlite.transitions import assignments
from jobqueue.store.sqlite.transitions import status_in as sql_status_in
from jobqueue.store.transitions import CANCEL, CLAIM, FAIL, RELEASE, RETRY, TRANSITIONS, Given, refusal


def sqlite_job_columns() -> set[str]:
    conn = sqlite3.connect(":memory:")
    conn.row_factory = sqlite3.Row
    migrate(conn)
    return {row["name"] for row in conn.execute("PRAGMA table_info(jobs)")}


@pytest.mark.parametrize("move", TRANSITIONS, ids=lambda m: f"{m.name}-{'-'.join(m.sources)}")
def test_every_declared_move_names_real_states_and_fields_of_both_stores(move):
    columns = sqlite_job_columns()
    mongo_fields = set(next_run_doc({"every": 60.0}, "id", 0.0, 0.0))
    assert set(move.sources) <= set(STATUSES) and move.target in STATUSES
    for name in move.sets:
        assert ({"error_code", "error_message"} if name == "error" else {name}) <= columns, name
        assert name in mongo_fields, name


def test_sqlite_renders_a_cancel_and_a_give_back_as_written_by_hand_before():
    clause, args = assignments(CANCEL, Given(5.0))
    assert clause == ("status = 'cancelled', lease_token = NULL, finished_at = ?, updated_at = ?,"
                      " http_status = NULL, error_code = NULL, error_message = NULL")
    assert args == (5.0, 5.0)
    assert sql_status_in(CANCEL) == "status IN ('queued', 'running')"
    clause, args = assignments(RELEASE, Given(5.0))
    assert clause == ("status = 'queued', lease_token = NULL, available_at = ?, updated_at = ?,"
                      " attempts = MAX(attempts - 1, 0)")
    clause, args = assignments(CLAIM, Given(5.0, token="t", until=9.0))
    assert clause == ("status = 'running', lease_token = ?, available_at = ?, attempts = attempts + 1,"
                      " started_at = ?, updated_at = ?")
    assert args == ("t", 9.0, 5.0, 5.0)


def test_sqlite_logs_the_attempt_of_a_move_that_ends_one():
    clause, args = assignments(FAIL, Given(5.0, http_status=500, error=TaskError("http_error", "boom")))
    assert "attempt_log = json_insert" in clause
    assert args == (5.0, 5.0, 500, "http_error", "boom", 5.0, "failed", 500, "http_error", "boom")


def test_mongodb_renders_a_cancel_a_retry_and_a_give_back_as_written_by_hand_before():
    assert update_doc(CANCEL, Given(5.0), None) == {"$set": {
        "status": "cancelled", "lease_token": None, "finished_at": 5.0, "updated_at": 5.0, "http_status": None,
        "error": None}}
    assert status_filter(CANCEL) == {"status": {"$in": ["queued", "running"]}}
    retry = update_doc(RETRY, Given(5.0), None)
    assert retry["$unset"] == {"result": ""} and retry["$set"]["reused_from"] is None
    assert update_doc(RELEASE, Given(5.0), None) == {
        "$set": {"status": "queued", "lease_token": None, "available_at": 5.0, "updated_at": 5.0},
        "$inc": {"attempts": -1}}


def test_a_refused_move_is_not_found_or_a_conflict_naming_the_state():
    assert isinstance(refusal(CANCEL, "j1", None), NotFound)
    task = Task(id="j1", url="https://example.com/", host="example.com", status="completed", attempts=1,
                created_at=0.0, updated_at=0.0)
    refused = refusal(CANCEL, "j1", task)
    assert isinstance(refused, Conflict)
    assert str(refused) == "task j1 is already completed; only queued or running tasks can be cancelled"
    assert str(refusal(RETRY, "j1", dataclasses.replace(task, status="queued"))) == (
        "task j1 is still queued; only finished tasks can be retried")
