"""What every part of MongoStore (its mixins, one file per concern) uses from the store itself, declared once
for the type checker; at run time it is an empty base, and MongoStore provides these."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any


class MongoParts:
    """The base of MongoStore's mixins: the database handle and the one way to call it."""

    if TYPE_CHECKING:  # provided by MongoStore
        @property
        def db(self) -> Any: ...

        async def _call(self, operation: Any, allow: tuple[type[Exception], ...] = ()) -> Any: ...
