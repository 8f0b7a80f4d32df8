"""When a schedule's runs are due: on its grid (first due time + k * every), shared by both backends.

A run that finishes queues the next at the first due time after the finish, never at one already
past: after downtime, the run that was queued before it (whose due time passed meanwhile) is the one
run that catches up, and nothing runs twice in a row to "make up" for the missed due times.
"""

from __future__ import annotations

import math


def next_due(due: float, every: float, now: float) -> float:
    """The first due time on the grid after both `due` and `now`: the successor of a run due at `due` that
    finished at `now` (missed due times are skipped, not replayed)."""
    steps = max(1, math.floor((now - due) / every) + 1)
    following = due + steps * every
    while following <= now:  # float rounding may land on `now` itself
        following += every
    return following


def catch_up_due(due: float, every: float, now: float) -> float:
    """The last due time on the grid at or before `now` (at least the one after `due`): the run that repairs a
    chain a crash broke, which catches up at once, like the run left queued before downtime."""
    return due + max(1, math.floor((now - due) / every)) * every
