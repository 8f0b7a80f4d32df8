"""Storage backends behind one interface, chosen from a database URL."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from jobqueue.store.base import BadCursor, Conflict, Lease, NewTask, NotFound, Store, StoreError

__all__ = ["BadCursor", "Conflict", "Lease", "NewTask", "NotFound", "Store", "StoreError", "store_from_url"]


def store_from_url(url: str, *, sqlite_synchronous: str = "FULL", clock: Callable[[], float] | None = None) -> Store:
    """Pick the backend from the URL's scheme: `sqlite:///...` or `mongodb://...`."""
    scheme = urlsplit(url).scheme
    kwargs = {"clock": clock} if clock is not None else {}
    if scheme == "sqlite":
        from jobqueue.store.sqlite import SQLiteStore

        return SQLiteStore.from_url(url, synchronous=sqlite_synchronous, **kwargs)
    if scheme in ("mongodb", "mongodb+srv"):
        from jobqueue.store.mongodb import MongoStore

        return MongoStore.from_url(url, **kwargs)
    raise ValueError(
        f"unsupported database URL {url!r}: use sqlite:///path.db (embedded) or mongodb://host:27017/dbname"
    )
