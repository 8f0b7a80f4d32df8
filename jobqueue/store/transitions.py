"""The job state machine, declared once for every store.

Each Transition says which states a job may leave by it, the state it enters, the fields it sets or
resets, and what must follow it: a finished run of a schedule is recorded and queues the next due time
(`ends_run`), a retried job loses its result (`drops_result`), a job entering a finished state gets its
webhook deliveries (`notifies`), and every move changes the status and batch counts. A backend does not
write these fields itself: SQLite renders a Transition as its SET clause and `status IN (...)`
(store/sqlite/transitions.py), MongoDB as its `$set`/`$unset`/`$inc` and `{"status": {"$in": ...}}`
(store/mongodb/transitions.py), and both refuse a job in another state through `refusal` below.

Field names are the logical ones of a Task: `error` is one field (SQLite stores it as error_code and
error_message), `result` is the job's stored result (SQLite: its row in `results`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from jobqueue.errors import Conflict, NotFound
from jobqueue.models import CANCELLED, COMPLETED, FAILED, FINISHED, QUEUED, RUNNING, Task, TaskError


@dataclass(frozen=True)
class Param:
    """A value the transition takes when it happens: `now` (the store's clock), or one the caller passes."""

    name: str


@dataclass(frozen=True)
class Step:
    """A counter moved by `by`, never below `floor` (attempts: a claim counts one, a give-back uncounts it)."""

    by: int
    floor: int | None = None


@dataclass(frozen=True)
class First:
    """A field set only while it has no value yet (a second stop keeps the first stop's time)."""

    value: Param


NOW = Param("now")
AT = Param("at")  # when a rescheduled job is due again
TOKEN = Param("token")  # a claim's lease token
UNTIL = Param("until")  # when a claim's lease runs out
HTTP_STATUS = Param("http_status")  # the attempt's answer
ERROR = Param("error")  # the attempt's TaskError
Value = Param | Step | First | int | None


def _fields(**sets: Value) -> Mapping[str, Value]:
    return MappingProxyType(sets)


@dataclass(frozen=True)
class Transition:
    """One move of a job between states, with everything it writes and what must follow it."""

    name: str
    sources: tuple[str, ...]
    target: str
    sets: Mapping[str, Value] = field(default_factory=lambda: _fields())
    leased: bool = False  # only under the attempt's live lease (lease_token and status running)
    attempt: str | None = None  # the outcome this move logs in the job's attempt_log
    ends_run: bool = False  # a run of a schedule finished: count it, queue the next due time
    drops_result: bool = False  # the job's result goes (its body too, unless another result shares it)
    refused: str | None = None  # the conflict message, for a job in none of `sources` ({id}, {status})

    @property
    def notifies(self) -> bool:
        """Whether this move writes webhook deliveries (the outbox): only a job that finishes has an event."""
        return self.target in FINISHED


@dataclass(frozen=True)
class Given:
    """The values of one move's Params: the store's clock, and those its caller passes."""

    now: float
    at: float | None = None
    token: str | None = None
    until: float | None = None
    http_status: int | None = None
    error: TaskError | None = None

    def __getitem__(self, param: Param) -> object:
        return getattr(self, param.name)


# Every field a move back to queued clears: the job keeps nothing of its last attempt but its spec.
_FROM_SCRATCH = _fields(attempts=0, available_at=NOW, updated_at=NOW, started_at=None, finished_at=None,
                        http_status=None, error=None, lease_token=None, reused_from=None)

CANCEL = Transition(
    "cancel", (QUEUED, RUNNING), CANCELLED,
    # a cancelled job has no lease, is finished now, and keeps nothing of its last attempt
    _fields(lease_token=None, finished_at=NOW, updated_at=NOW, http_status=None, error=None),
    ends_run=True,
    refused="task {id} is already {status}; only queued or running tasks can be cancelled")
# a stopped schedule's queued run (a running one finishes, and nothing follows it)
CANCEL_QUEUED = Transition("cancel", (QUEUED,), CANCELLED, CANCEL.sets, ends_run=True, refused=CANCEL.refused)
RETRY = Transition(
    "retry", FINISHED, QUEUED, _FROM_SCRATCH, drops_result=True,
    refused="task {id} is still {status}; only finished tasks can be retried")
# a batch's retry takes its failed jobs only, which have no result to drop
RETRY_FAILED = Transition("retry", (FAILED,), QUEUED, _FROM_SCRATCH, refused=RETRY.refused)
CLAIM = Transition(
    "claim", (QUEUED, RUNNING), RUNNING,  # running: a job whose lease ran out is taken over
    _fields(lease_token=TOKEN, available_at=UNTIL, attempts=Step(1), started_at=NOW, updated_at=NOW))
RELEASE = Transition(
    "release", (RUNNING,), QUEUED,  # handed back due now, the interrupted attempt not counted
    _fields(lease_token=None, available_at=NOW, updated_at=NOW, attempts=Step(-1, floor=0)), leased=True)
COMPLETE = Transition(
    "complete", (RUNNING,), COMPLETED,
    _fields(lease_token=None, finished_at=NOW, updated_at=NOW, http_status=HTTP_STATUS, error=None),
    leased=True, attempt=COMPLETED, ends_run=True)
RESCHEDULE = Transition(
    "reschedule", (RUNNING,), QUEUED,  # the last error stays visible until the next attempt ends
    _fields(lease_token=None, available_at=AT, updated_at=NOW, http_status=HTTP_STATUS, error=ERROR),
    leased=True, attempt="retry")
FAIL = Transition(
    "fail", (RUNNING,), FAILED,
    _fields(lease_token=None, finished_at=NOW, updated_at=NOW, http_status=HTTP_STATUS, error=ERROR),
    leased=True, attempt=FAILED, ends_run=True)
# MongoDB only: a job created completed on another's result, whose source dropped it meanwhile, fetches itself
UNSHARE = Transition(
    "unshare", (COMPLETED,), QUEUED,
    _fields(finished_at=None, http_status=None, reused_from=None, updated_at=NOW), drops_result=True)
DELETE_FROM = FINISHED  # the states a job may be deleted in (bulk delete, retention)

TRANSITIONS = (CANCEL, CANCEL_QUEUED, RETRY, RETRY_FAILED, CLAIM, RELEASE, COMPLETE, RESCHEDULE, FAIL, UNSHARE)


def refusal(move: Transition, task_id: str, current: Task | None) -> Exception:
    """The error for a move a job could not make: NotFound when it does not exist, else Conflict naming its state."""
    if current is None:
        return NotFound(task_id)
    assert move.refused is not None, f"{move.name} is not refused to callers"
    return Conflict(current, move.refused.format(id=task_id, status=current.status))


# A schedule stops once: the first stop's time stays, and it points at no next run any more.
STOP_SCHEDULE = _fields(stopped_at=First(NOW), next_task_id=None, next_run_at=None)
# The fields a schedule's next run copies from the run before it; the rest are those of a new queued job.
INHERITED = ("url", "host", "priority", "fetch", "tags", "reuse_key", "webhook", "schedule_id", "every", "render",
             "formats", "changed_on", "robots")
