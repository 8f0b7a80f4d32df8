"""Faults at exact points of a MongoDB store's work: a database handle whose chosen collection methods a test wraps.

`Faults(store)` puts itself between a store and its database. `on("jobs", "find_one", hook)` makes
every `find_one` on `jobs` call `hook(real, *args, **kwargs)`, where `real` is the driver's (or the
mock's) own method: the hook may raise before it, after it (a reply lost once the write was applied),
or run another process's work in between. Everything else passes through untouched.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

Hook = Callable[..., Awaitable[Any]]


class _Collection:
    def __init__(self, real: Any, hooks: dict[str, Hook]) -> None:
        self._real = real
        self._hooks = hooks

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._real, name)
        hook = self._hooks.get(name)
        if hook is None:
            return method

        def hooked(*args: Any, **kwargs: Any) -> Awaitable[Any]:
            return hook(method, *args, **kwargs)

        return hooked


class Faults:
    """The store's database, with hooks on some collection methods (module docstring)."""

    def __init__(self, store: Any) -> None:
        self._real = store._db
        self._hooks: dict[str, dict[str, Hook]] = {}
        store._db = self

    def on(self, collection: str, method: str, hook: Hook) -> None:
        """Route `collection.method(...)` through `hook(real_method, ...)`."""
        self._hooks.setdefault(collection, {})[method] = hook

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._real, name)
        return _Collection(found, self._hooks[name]) if name in self._hooks else found

    def __getitem__(self, name: str) -> Any:
        found = self._real[name]
        return _Collection(found, self._hooks[name]) if name in self._hooks else found
