"""Per-host pacing: the policy a user sets for a host, what the store reports of one, and a PUT body read into it.

A host's policy is kept in the store so every process on the database obeys it: `max_concurrency` (fetches in
flight at once; None: the server's --per-host), `min_delay_ms` (between two fetch starts; None: --host-delay)
and `paused` (its jobs stay queued). Beside it the store keeps the host's next allowed start time, moved by each
claim of a paced host and by a 429 or 503 with Retry-After (capped at `HOLD_MAX`): the claim takes a host's job
only once that time has come.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jobqueue.errors import BadRequest, Code
from jobqueue.models import iso

POLICY_FIELDS = ("max_concurrency", "min_delay_ms", "paused")
MAX_CONCURRENCY = 1000
MAX_DELAY_MS = 3_600_000
HOLD_MAX = 3600.0  # the longest a Retry-After holds a host back, in seconds
HOLD_STATUSES = frozenset({429, 503})  # the answers whose Retry-After holds back every job of the host
RECENT = 3600  # seconds of finished jobs the error rate is computed over (host statistics are kept an hour)


@dataclass(frozen=True)
class HostPolicy:
    """What a user set for a host; None (and False) is the server's default."""

    max_concurrency: int | None = None
    min_delay_ms: int | None = None
    paused: bool = False

    @property
    def is_default(self) -> bool:
        """Nothing set: the host follows the server's options."""
        return self.max_concurrency is None and self.min_delay_ms is None and not self.paused


@dataclass(frozen=True)
class HostInfo:
    """One host as GET /hosts shows it: its policy, its next start time, its jobs and its recent outcomes."""

    host: str
    policy: HostPolicy
    next_start_at: float | None = None  # None (or a past time): a fetch may start now
    queued: int = 0
    running: int = 0
    finished: int = 0  # within the last RECENT seconds (the shared statistics)
    failed: int = 0
    http_errors: int = 0

    def to_json(self, per_host: int, host_delay_ms: int, now: float) -> dict[str, Any]:
        """The contract's shape: the stored policy, what applies (defaults filled in), counts and error rate."""
        policy = self.policy
        waiting = self.next_start_at is not None and self.next_start_at > now
        return {
            "host": self.host,
            "policy": {"max_concurrency": policy.max_concurrency, "min_delay_ms": policy.min_delay_ms,
                       "paused": policy.paused},
            "effective": {"max_concurrency": policy.max_concurrency or per_host,
                          "min_delay_ms": host_delay_ms if policy.min_delay_ms is None else policy.min_delay_ms,
                          "paused": policy.paused},
            "next_start_at": iso(self.next_start_at) if waiting else None,
            "queued": self.queued,
            "running": self.running,
            "recent": {"seconds": RECENT, "finished": self.finished, "failed": self.failed,
                       "http_errors": self.http_errors,
                       "error_rate": round((self.failed + self.http_errors) / self.finished, 4)
                       if self.finished else None},
        }


@dataclass(frozen=True)
class PolicyChange:
    """A PUT body read: the fields it gives (None resets one to the server's default) and those it leaves out."""

    max_concurrency: int | None
    min_delay_ms: int | None
    paused: bool | None
    keep: tuple[str, ...]  # fields absent from the body: left as stored


def read_policy_change(body: object) -> PolicyChange:
    """Check a PUT /hosts/:host body: an object of some of POLICY_FIELDS, each null or in its range."""
    if not isinstance(body, Mapping):
        raise BadRequest(Code.INVALID_POLICY, "the body must be a JSON object with some of max_concurrency, "
                         "min_delay_ms and paused")
    unknown = sorted(set(body) - set(POLICY_FIELDS))
    if unknown:
        raise BadRequest(Code.UNKNOWN_FIELD, f"unknown field {unknown[0]!r}: a host's policy has max_concurrency, "
                         "min_delay_ms and paused")
    given: dict[str, Any] = {}
    for name, low, high in (("max_concurrency", 1, MAX_CONCURRENCY), ("min_delay_ms", 0, MAX_DELAY_MS)):
        value = body.get(name)
        if type(value) is float and value.is_integer():  # 1000.0 is the JSON number 1000 (JSON Schema agrees)
            value = int(value)
        if value is not None and (type(value) is not int or not low <= value <= high):
            raise BadRequest(Code.INVALID_FIELD, f"{name} must be null (the server's default) or a whole number "
                             f"from {low} to {high}")
        given[name] = value
    paused = body.get("paused")
    if paused is not None and type(paused) is not bool:
        raise BadRequest(Code.INVALID_FIELD, "paused must be true, false or null (not paused)")
    return PolicyChange(given["max_concurrency"], given["min_delay_ms"], paused,
                        tuple(name for name in POLICY_FIELDS if name not in body))


def changed(policy: HostPolicy, change: PolicyChange) -> HostPolicy:
    """The policy a change leaves (what both stores write)."""
    keep = change.keep
    return HostPolicy(
        policy.max_concurrency if "max_concurrency" in keep else change.max_concurrency,
        policy.min_delay_ms if "min_delay_ms" in keep else change.min_delay_ms,
        policy.paused if "paused" in keep else bool(change.paused))
