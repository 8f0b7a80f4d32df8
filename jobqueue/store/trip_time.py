"""How long a store's database round trips take, measured where they all pass and named by the operation they serve.

Every database call of a backend goes through one place: SQLite's writer and reader threads (each write
function and each read), MongoDB's `_call` (each driver call). Timing there times what reaches the
database and nothing else (no wrapper around every attribute of the store). A call is named after the
Store operation it serves (`claim`, `complete`...): the nearest caller that is one of the backend's public
coroutine methods; a call made for none of them (MongoDB's change log writes) is named after its caller.
One operation may make several calls (MongoDB's complete stores a body, then the job): each is reported.
"""

from __future__ import annotations

import functools
import inspect
import sys
import time
from collections.abc import Callable
from types import CodeType, FrameType

Latency = Callable[[str, float], None]  # (operation, seconds): where a store reports each database call's time
MAX_DEPTH = 12  # callers looked through for the operation: helpers nest a few deep, never more


@functools.cache
def operation_codes(store_class: type) -> dict[CodeType, str]:
    """The code of each public coroutine method of a backend (under any decorators), to its name."""
    codes = {}
    for name in dir(store_class):
        method = getattr(store_class, name, None)
        if not name.startswith("_") and inspect.iscoroutinefunction(method):
            codes[inspect.unwrap(method).__code__] = name
    return codes


class CallTimer:
    """Reports each database call's time to `report`, on the IOLoop thread (what LoopHistogram requires)."""

    def __init__(self, store_class: type, report: Latency, clock: Callable[[], float] = time.perf_counter) -> None:
        self._codes = operation_codes(store_class)
        self._report = report
        self._clock = clock

    def begin(self, skip: int) -> tuple[str, float]:
        """Called by a choke point as a call starts: the operation the call serves, and when it started. `skip`
        is how many frames (the choke point's own included) lie between here and the code that made the call."""
        try:
            caller: FrameType | None = sys._getframe(skip + 1)
        except ValueError:  # called from the top of a thread's stack (a test driving a writer thread itself)
            caller = None
        return self.operation(caller), self._clock()

    def end(self, begun: tuple[str, float]) -> None:
        """Called on the IOLoop when the call is over, however it ended."""
        operation, started = begun
        self._report(operation, self._clock() - started)

    def operation(self, frame: FrameType | None) -> str:
        """The nearest of the store's operations among `frame` and its callers, else `frame`'s function."""
        first, depth = frame, 0
        while frame is not None and depth < MAX_DEPTH:
            name = self._codes.get(frame.f_code)
            if name is not None:
                return name
            frame, depth = frame.f_back, depth + 1
        return first.f_code.co_name.lstrip("_") if first is not None else "unknown"
