"""Runs server.py with each IOLoop callback timed, to say which ones hold the loop (bench only, never shipped).

`python bench/callback_timer.py OUT.json server.py [flags]`: every asyncio handle the loop runs (a callback, a
timer, a task's step) is timed twice, by the wall clock and by the loop thread's CPU clock, and the garbage
collections that ran inside it are timed apart. A callback whose wall time is long but whose CPU time is short
was not running: the thread waited for the GIL (another thread of the process held it) or for a core. A
collection runs in whatever callback allocates the object that crosses its threshold, so its time is not that
callback's own. At exit OUT.json gets the count of callbacks and each one over 1 ms: its time of day, CPU,
wall and collection milliseconds, the collection's generation, and its name (a task's coroutine with the
request handler's class or the line its step ended at). The harness uses it when BENCH_CALLBACKS names a folder.
"""

from __future__ import annotations

import asyncio.events
import atexit
import functools
import gc
import json
import os
import runpy
import sys
import time
from typing import Any

NOTED = 0.001  # callbacks longer than this (wall) are written down
KEPT = 200_000


def name_of(callback: Any, args: tuple[Any, ...], frame: Any) -> str:
    """What a handle ran: a task's coroutine (and its handler's class), or the callback's qualified name."""
    owner = getattr(callback, "__self__", None)
    if isinstance(owner, asyncio.Task):
        coro = owner.get_coro()
        name = f"task {getattr(coro, '__qualname__', coro)}"
        handler = frame.f_locals.get("self") if frame is not None else None
        if name.endswith("._execute") and handler is not None:
            request = getattr(handler, "request", None)
            what = f" {request.method} {request.uri[:60]}" if request is not None else ""
            return f"{name} ({type(handler).__name__}{what})"
        line = frame.f_lineno if frame is not None and coro.cr_frame is not None else "end"
        return f"{name} (suspended at line {line})"  # the step ran up to there (or to its return)
    if getattr(callback, "__name__", "") == "_run_callback" and args:  # Tornado's add_callback: what it runs
        callback = args[0]
    while isinstance(callback, functools.partial):
        callback = callback.func
    return str(getattr(callback, "__qualname__", None) or repr(callback))


def install(out: str) -> None:
    """Time every handle from now on; write the figures to `out` at exit."""
    original = asyncio.events.Handle._run
    figures: dict[str, Any] = {"callbacks": 0, "slow": []}
    slow: list[tuple[float, float, float, float, int, str]] = figures["slow"]
    wall_clock, cpu_clock, now = time.perf_counter, time.thread_time, time.time
    collecting = [0.0, 0.0, -1]  # when the collection under way began; collection time in this callback; generation

    def collected(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collecting[0] = wall_clock()
        else:
            collecting[1] += wall_clock() - collecting[0]
            collecting[2] = max(collecting[2], info["generation"])

    def timed(self: asyncio.events.Handle) -> None:
        callback: Any = self._callback  # type: ignore[attr-defined]
        owner = getattr(callback, "__self__", None)
        frame = owner.get_coro().cr_frame if isinstance(owner, asyncio.Task) else None  # kept past its return
        collecting[1], collecting[2] = 0.0, -1
        wall, cpu = wall_clock(), cpu_clock()
        try:
            original(self)
        finally:
            cpu, wall = cpu_clock() - cpu, wall_clock() - wall
            figures["callbacks"] += 1
            if wall > NOTED and len(slow) < KEPT:
                slow.append((round(now(), 4), round(cpu * 1000, 2), round(wall * 1000, 2),
                             round(collecting[1] * 1000, 2), int(collecting[2]), name_of(callback, self._args, frame)))  # type: ignore[attr-defined]

    def write() -> None:
        with open(out, "w") as handle:
            json.dump(figures, handle)

    asyncio.events.Handle._run = timed  # type: ignore[method-assign]
    gc.callbacks.append(collected)
    atexit.register(write)


if __name__ == "__main__":
    install(sys.argv[1])
    sys.argv = sys.argv[2:]
    sys.path.insert(0, os.path.dirname(os.path.abspath(sys.argv[0])))  # as `python server.py` would have it
    runpy.run_path(sys.argv[0], run_name="__main__")
