"""The job state machine (store/transitions.py) as SQLite writes it: a Transition becomes the SET clause and the
`status IN (...)` guard of one UPDATE, and its follow-ups run in the same transaction (the schedule's next run,
the result dropped, the webhook outbox). The status and batch counts follow by themselves (triggers)."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping

from jobqueue.errors import NotFound
from jobqueue.models import Task
from jobqueue.store.sqlite.crawl_pages import finish_crawls
from jobqueue.store.sqlite.schedules import finish_run
from jobqueue.store.sqlite.schema import JOB_COLUMNS, LOG_ATTEMPT, drop_result, task_from_row
from jobqueue.store.sqlite.webhooks import write_outbox
from jobqueue.store.transitions import ERROR, First, Given, Param, Step, Transition, Value, refusal
from jobqueue.webhooks.outbox import Outbox

_ERROR_COLUMNS = "error_code = ?, error_message = ?"


def status_in(move: Transition | tuple[str, ...], column: str = "status") -> str:
    """The guard that a job is in one of the states `move` leaves (or of those named)."""
    sources = move.sources if isinstance(move, Transition) else move
    if len(sources) == 1:
        return f"{column} = '{sources[0]}'"
    return f"{column} IN ({', '.join(repr(s) for s in sources)})"


def among(move: Transition | tuple[str, ...], count: int) -> str:
    """The guard of a chunk of `count` ids (bulk actions) in the states `move` leaves.

    `+status` keeps SQLite from reading every job of those states through their index to find a bulk
    chunk's 500: the ids' own index is the way in (300 ms a chunk against 2 ms, among a million jobs).
    """
    return f"id IN ({','.join('?' * count)}) AND {status_in(move, '+status')}"


def leased(move: Transition) -> str:
    """The guard of a move made under an attempt's lease: its two parameters are the job's id and the token."""
    assert move.leased, f"{move.name} is not made under a lease"
    return f"id = ? AND lease_token = ? AND {status_in(move)}"


def set_clause(sets: Mapping[str, Value], given: Given) -> tuple[list[str], list[object]]:
    """The assignments of `sets` with their parameters, in the order the assignments take them."""
    parts: list[str] = []
    args: list[object] = []
    for name, value in sets.items():
        if value is None:
            parts += ["error_code = NULL", "error_message = NULL"] if name == ERROR.name else [f"{name} = NULL"]
        elif isinstance(value, Step):
            moved = f"{name} {'+' if value.by >= 0 else '-'} {abs(value.by)}"
            parts.append(f"{name} = {moved}" if value.floor is None else f"{name} = MAX({moved}, {value.floor})")
        elif isinstance(value, First):
            parts.append(f"{name} = COALESCE({name}, ?)")
            args.append(given[value.value])
        elif isinstance(value, Param) and name == ERROR.name:
            parts.append(_ERROR_COLUMNS)
            args += _error_args(given)
        elif isinstance(value, Param):
            parts.append(f"{name} = ?")
            args.append(given[value])
        else:
            parts.append(f"{name} = {int(value)}")
    return parts, args


def assignments(move: Transition, given: Given) -> tuple[str, tuple[object, ...]]:
    """The SET clause of `move` and its parameters: the status, its fields, and the attempt it logs."""
    parts, args = set_clause(move.sets, given)
    parts.insert(0, f"status = '{move.target}'")
    if move.attempt is not None:
        parts.append(LOG_ATTEMPT)
        args += [given.now, move.attempt, given.http_status, *_error_args(given)]
    return ", ".join(parts), tuple(args)


def _error_args(given: Given) -> list[object]:
    return [given.error.code, given.error.message] if given.error is not None else [None, None]


def move_jobs(conn: sqlite3.Connection, move: Transition, where: str, args: tuple[object, ...], given: Given,
              outbox: Outbox | None) -> list[Task]:
    """Make `move` for the jobs `where` selects (it must hold the status guard), with its follow-ups; the jobs after
    it."""
    tasks = update_jobs(conn, move, where, args, given)
    follow(conn, move, tasks, given.now, outbox)
    return tasks


def update_jobs(conn: sqlite3.Connection, move: Transition, where: str, args: tuple[object, ...], given: Given
                ) -> list[Task]:
    """The UPDATE of `move` alone, for a caller that writes more before its follow-ups (a completion's result)."""
    clause, set_args = assignments(move, given)
    rows = conn.execute(f"UPDATE jobs SET {clause} WHERE {where} RETURNING {JOB_COLUMNS}", (*set_args, *args))
    return [task_from_row(r) for r in rows.fetchall()]


def move_batch_chunk(conn: sqlite3.Connection, move: Transition, batch_id: str, limit: int, given: Given,
                     outbox: Outbox | None) -> list[Task]:
    """Make `move` for up to `limit` jobs of a sealed batch; [] when none is left, NotFound without such a batch."""
    chunk = ("seq IN (SELECT seq FROM jobs INDEXED BY jobs_batch_status WHERE batch_id = ?"
             f" AND {status_in(move)} LIMIT ?)")
    tasks = move_jobs(conn, move, chunk, (batch_id, limit), given, outbox)
    if not tasks and not conn.execute("SELECT 1 FROM batches WHERE id = ? AND sealed = 1", (batch_id,)).fetchone():
        raise NotFound(batch_id, "batch")
    return tasks


def follow(conn: sqlite3.Connection, move: Transition, tasks: list[Task], now: float, outbox: Outbox | None,
           sha256: str | None = None) -> str | None:
    """What must follow `move` in its transaction: the result dropped, a finished run recorded by its schedule
    (which queues the next due time), the webhook outbox. The previous run's id when a run's body changed."""
    changed_from = None
    for task in tasks:
        if move.drops_result:
            drop_result(conn, task.id)
        if move.ends_run and task.schedule_id is not None:
            changed_from = finish_run(conn, task, sha256, now)[1]
    if move.notifies:
        write_outbox(conn, outbox, tasks, now)
    if move.ends_run:
        finish_crawls(conn, (task.crawl_id for task in tasks if task.crawl_id is not None), now, outbox)
    return changed_from


def refuse(conn: sqlite3.Connection, move: Transition, task_id: str) -> Exception:
    """The error for a job `move` did not change: NotFound, or Conflict with the job as it is now."""
    row = conn.execute(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?", (task_id,)).fetchone()
    return refusal(move, task_id, task_from_row(row) if row is not None else None)
