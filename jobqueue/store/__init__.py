"""Storage backends behind one interface, chosen from a database URL by one scheme table."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from jobqueue.models import Task
from jobqueue.store.base import BadCursor, Capabilities, Conflict, Lease, NewTask, NotFound, Store, StoreError
from jobqueue.store.trip_time import Latency
from jobqueue.webhooks.outbox import Outbox

__all__ = ["BACKENDS", "BadCursor", "Capabilities", "Conflict", "Lease", "NewTask", "NotFound", "Store",
           "StoreError", "backend_for", "store_from_url"]


@dataclass(frozen=True)
class Backend:
    """Where a backend lives and what it needs installed; imported only when chosen."""

    module: str
    cls: str
    requires: str | None = None  # the package a missing import means, for the error message
    install: str | None = None
    options: tuple[tuple[str, str], ...] = ()  # server option -> keyword of the backend's from_url


_MONGODB = Backend("jobqueue.store.mongodb.store", "MongoStore", "motor", "pip install 'jobqueue[mongodb]' (motor)")
BACKENDS: dict[str, Backend] = {
    "sqlite": Backend("jobqueue.store.sqlite.store", "SQLiteStore", options=(("sqlite_synchronous", "synchronous"),)),
    "mongodb": _MONGODB,
    "mongodb+srv": _MONGODB,
}
_USE = "use sqlite:///path.db (embedded) or mongodb://host:27017/dbname"


def backend_for(url: str) -> Backend:
    """The backend a database URL names (ValueError naming the accepted schemes otherwise)."""
    scheme = urlsplit(url).scheme.lower() if "://" in url else ""
    backend = BACKENDS.get(scheme)
    if backend is None:
        raise ValueError(f"--database {url!r}: unknown scheme; {_USE}")
    return backend


def store_from_url(url: str, *, clock: Callable[[], float] | None = None, outbox: Outbox | None = None,
                   url_changed: Callable[[Task, str], None] | None = None, latency: Latency | None = None,
                   **options: Any) -> Store:
    """Build the store a URL names, with its hooks (the webhook outbox, the word that a recurring page changed,
    where its database calls' times go) and the server options that backend takes (the others are not its
    business)."""
    backend = backend_for(url)
    try:
        module = importlib.import_module(backend.module)
    except ImportError as exc:
        if backend.requires and backend.requires in str(exc):
            raise ValueError(f"{url.split(':', 1)[0]} needs the {backend.requires} package: {backend.install}") from exc
        raise
    cls = getattr(module, backend.cls)
    kwargs = {keyword: options[option] for option, keyword in backend.options if option in options}
    if clock is not None:
        kwargs["clock"] = clock
    return cls.from_url(url, outbox=outbox, url_changed=url_changed, latency=latency, **kwargs)
