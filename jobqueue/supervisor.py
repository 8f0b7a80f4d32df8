"""Named background loops that are logged and restarted when they die, and stopped together.

A loop that raises is a bug or an outage nobody planned for; left alone, the task would end and its
work (dashboard counts, other processes' changes, claims, heartbeats) would stop with nothing said.
The supervisor runs each loop in a guard that logs the error with the loop's name, waits a short
backoff (doubling while the loop keeps failing at once, up to `max_backoff`) and starts it again.
A loop that returns has finished its job (a claim loop told to stop) and is not restarted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from jobqueue.backoff import delay as backoff_delay

log = logging.getLogger("jobqueue.supervisor")

STOP_ATTEMPTS = 5
STOP_ROUND_SECONDS = 2.0


class Supervisor:
    """Runs named loops, restarting any that raises, until `stop` cancels them all."""

    def __init__(self, backoff: float = 0.5, max_backoff: float = 30.0, healthy_after: float = 60.0) -> None:
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.healthy_after = healthy_after  # a loop that ran this long before failing starts from `backoff` again
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.restarts: dict[str, int] = {}

    def start(self, name: str, factory: Callable[[], Awaitable[None]]) -> asyncio.Task[None]:
        """Run `factory()` under supervision as `name`; the task ends when the loop returns or on stop."""
        if name in self._tasks and not self._tasks[name].done():
            raise ValueError(f"a background loop named {name!r} is already running")
        self.restarts[name] = 0
        task = asyncio.get_running_loop().create_task(self._guard(name, factory), name=name)
        self._tasks[name] = task
        return task

    async def _guard(self, name: str, factory: Callable[[], Awaitable[None]]) -> None:
        loop = asyncio.get_running_loop()
        failures = 0  # in a row, each restarted soon after it began
        while True:
            began = loop.time()
            try:
                await factory()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                if loop.time() - began >= self.healthy_after:
                    failures = 0
                delay = backoff_delay(failures, self.backoff, self.max_backoff)
                log.exception("background loop %s failed; restarting it in %.1fs", name, delay,
                              extra={"loop": name})
            await asyncio.sleep(delay)
            failures += 1
            self.restarts[name] += 1
            log.info("background loop %s restarted", name, extra={"loop": name})

    @property
    def running(self) -> list[str]:
        """Names of the loops still running (for diagnostics and tests)."""
        return [name for name, task in self._tasks.items() if not task.done()]

    async def stop(self) -> None:
        """Cancel every loop and wait until they have all ended (idempotent)."""
        running = [task for task in self._tasks.values() if not task.done()]
        for _ in range(STOP_ATTEMPTS):
            if not running:
                break
            for task in running:
                task.cancel()  # again on each round: a loop may have swallowed the first cancellation
            # unlike awaiting each, a cancel of the caller itself still propagates
            await asyncio.wait(running, timeout=STOP_ROUND_SECONDS)
            running = [task for task in running if not task.done()]
        for task in running:
            log.error("background loop %s did not stop when cancelled; leaving it", task.get_name(),
                      extra={"loop": task.get_name()})
        self._tasks.clear()
