"""The backends the store contract suite runs against, named honestly in test ids."""

from __future__ import annotations

import os
from typing import Any

import pytest

from jobqueue.store.sqlite import SQLiteStore


class FakeClock:
    """A clock the tests move by hand, so lease expiry needs no sleeping."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def sqlite_factory(tmp_path: Any, clock: FakeClock) -> Any:
    """Every call opens another store on the same file, as a second process would."""
    path = os.path.join(str(tmp_path), "contract.db")
    return lambda: SQLiteStore(path, synchronous="NORMAL", clock=clock)


BACKENDS = [pytest.param("sqlite", id="sqlite-file")]
