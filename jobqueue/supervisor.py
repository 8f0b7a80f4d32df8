"""Named background loops that are logged and restarted when they die, and stopped together.

A loop that raises is a bug or an outage nobody planned for; left alone, the task would end and its
work (dashboard counts, other processes' changes, claims, heartbeats) would stop with nothing said.
The supervisor runs each loop in a guard that logs the error with the loop's name, waits a short
backoff (doubling while the loop keeps failing at once, up to `max_backoff`) and starts it again.
A loop that returns has finished its job (a claim loop told to stop) and is not restarted.

So loops handle only what they expect (the database briefly unavailable, cancellation on shutdown) and let
anything else raise to it; each restart is counted per loop on /metrics (`jobqueue_loop_restarts_total`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from jobqueue.backoff import delay as backoff_delay
from jobqueue.metrics import Metrics

log = logging.getLogger("jobqueue.supervisor")

STOP_ATTEMPTS = 5
STOP_ROUND_SECONDS = 2.0


class Supervisor:
    """Runs named loops, restarting any that raises, until `stop` cancels them all."""

    def __init__(self, backoff: float = 0.5, max_backoff: float = 30.0, healthy_after: float = 60.0,
                 metrics: Metrics | None = None) -> None:
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.healthy_after = healthy_after  # a loop that ran this long before failing starts from `backoff` again
        self.metrics = metrics
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._waiting: set[str] = set()  # failed, waiting out the backoff before the restart
        self._finishing: set[str] = set()  # told to end by their own means: not restarted
        self.restarts: dict[str, int] = {}

    def start(self, name: str, factory: Callable[[], Awaitable[None]]) -> asyncio.Task[None]:
        """Run `factory()` under supervision as `name`; the task ends when the loop returns or on stop."""
        if name in self._tasks and not self._tasks[name].done():
            raise ValueError(f"a background loop named {name!r} is already running")
        self.restarts[name] = 0
        self._finishing.discard(name)
        if self.metrics is not None:
            self.metrics.loop_restarts.labels(name)  # shown at 0 from the start, not only after a failure
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
                if name in self._finishing:
                    log.exception("background loop %s failed as it was ending", name, extra={"loop": name})
                    return
                log.exception("background loop %s failed; restarting it in %.1fs", name, delay,
                              extra={"loop": name})
            self._waiting.add(name)
            try:
                await asyncio.sleep(delay)
            finally:
                self._waiting.discard(name)
            failures += 1
            self.restarts[name] += 1
            if self.metrics is not None:
                self.metrics.loop_restarts.labels(name).inc()
            log.info("background loop %s restarted", name, extra={"loop": name})

    async def finish(self, name: str) -> None:
        """Wait for loop `name`, told to stop by its own means, to return (a claim in flight lands first); one
        waiting out its backoff after a failure is not restarted, so this never waits for a backoff."""
        task = self._tasks.get(name)
        if task is None or task.done():
            return
        self._finishing.add(name)
        if name in self._waiting:
            task.cancel()
        await asyncio.wait([task])  # its outcome is the guard's: logged there, never raised here

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
