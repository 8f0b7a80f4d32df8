"""The backends the store contract suite runs against, named honestly in test ids."""

from __future__ import annotations

import os
from typing import Any

import pytest

from jobqueue.store.sqlite.store import SQLiteStore


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




def mongomock_factory(tmp_path: Any, clock: FakeClock) -> Any:
    """MongoDB through mongomock-motor: an in-memory mock, not a server (no change streams, no transactions)."""
    from mongomock_motor import AsyncMongoMockClient

    from jobqueue.store.mongodb.store import MongoStore

    client = AsyncMongoMockClient()
    return lambda: MongoStore("mongodb://mock/jobqueue_contract", clock=clock, client_factory=lambda _url: client)


def real_mongodb_factory(tmp_path: Any, clock: FakeClock) -> Any:
    """A real MongoDB server named by JOBQUEUE_TEST_MONGODB_URL; each test gets a fresh database."""
    from urllib.parse import urlsplit, urlunsplit

    from jobqueue.store.mongodb.store import MongoStore

    parts = urlsplit(os.environ["JOBQUEUE_TEST_MONGODB_URL"])
    name = f"jobqueue_test_{os.urandom(4).hex()}"
    url = urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, ""))
    return lambda: MongoStore(url, clock=clock)


BACKENDS = [
    pytest.param("sqlite", id="sqlite-file"),
    pytest.param("mongomock", id="mongodb-mongomock-motor-mock"),
    pytest.param("mongodb", id="mongodb-real-server", marks=pytest.mark.skipif(
        not os.environ.get("JOBQUEUE_TEST_MONGODB_URL"),
        reason="set JOBQUEUE_TEST_MONGODB_URL=mongodb://host:27017 to run against a real MongoDB")),
]
FACTORIES = {"sqlite": sqlite_factory, "mongomock": mongomock_factory, "mongodb": real_mongodb_factory}

