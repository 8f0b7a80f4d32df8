"""Extraction off the IOLoop: a bounded process pool, a time limit per page, and hostile pages stopped.

Each page gets two limits. In the worker, SIGALRM at `timeout` stops Python code (trafilatura, the link loop)
cleanly, and the worker lives on. If the worker is stuck in C code (a parser on a pathological page) and the
result is not back by `timeout + grace`, its pool's processes are killed and a fresh pool serves the next pages;
pages that were running beside it on the killed pool are retried once.
"""

from __future__ import annotations

import asyncio
import functools
import multiprocessing
import os
import select
import signal
import threading
import weakref
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from types import FrameType

from jobqueue.extract.core import EXTRACTORS, extract
from jobqueue.extract.views import ExtractionFailed, ExtractionTimeout, NotHtml, Views

DEFAULT_TIMEOUT = 10.0
_GRACE = 2.0  # after the soft limit, how long a worker may take to notice it before it is killed
_TASKS_PER_WORKER = 1000  # then the worker is replaced, so memory kept by parsers' caches cannot grow for ever


# pools whose workers run: multiprocessing's helpers serve them all, so they are stopped when none is left
_running: weakref.WeakSet[ExtractPool] = weakref.WeakSet()


class _Alarm(BaseException):
    """Raised in a worker by SIGALRM; a BaseException so no `except Exception` in a library swallows it."""


def _on_alarm(_signum: int, _frame: FrameType | None) -> None:
    raise _Alarm


def _run(body: bytes, content_type: str | None, charset: str | None, final_url: str, main_content: bool,
         timeout: float) -> Views:
    """Run one extraction in a worker under its soft time limit; every failure crosses back as our own errors."""
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        return extract(body, content_type, charset, final_url, main_content=main_content)
    except _Alarm:
        raise ExtractionTimeout(f"extraction took longer than {timeout:g} s") from None
    except NotHtml:
        raise
    except RecursionError:
        raise ExtractionFailed("the page is nested too deeply to extract") from None
    except Exception as exc:  # a library's own exception may not unpickle in the parent: send its words
        raise ExtractionFailed(f"{type(exc).__name__}: {exc}") from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _exit_with(owner: int) -> None:
    """A worker's initializer: it exits when the process that owns its pool is gone (killed with -9, say).
    Its parent is the forkserver, which lives as long as any worker does: without this, a killed service
    would leave its workers and helpers running for ever."""
    try:
        watched = os.pidfd_open(owner)
    except ProcessLookupError:
        os._exit(0)
    except (AttributeError, OSError):  # no pidfd (not Linux 5.3+): the worker is stopped by its pool only
        return

    def watch() -> None:
        select.select([watched], [], [])  # readable once the owner has exited
        os._exit(0)

    threading.Thread(target=watch, name="pool-owner", daemon=True).start()


class ExtractPool:
    """A bounded pool of extraction processes; `await pool.extract(...)` never blocks the IOLoop."""

    def __init__(self, workers: int = 1, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.workers = max(1, workers)
        self.timeout = timeout
        self.killed = 0  # pools killed for a stuck page: a metric for the service to show
        self._executor: ProcessPoolExecutor | None = None
        self._killed: set[int] = set()  # ids of executors killed on purpose: their other pages are retried
        self._slots: asyncio.Semaphore | None = None

    def _pool(self) -> ProcessPoolExecutor:
        if self._executor is None:
            # forkserver: the service's threads are not forked; the libraries are imported once, in the server
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(["jobqueue.extract.core", *EXTRACTORS])
            self._executor = ProcessPoolExecutor(self.workers, mp_context=context,
                                                 max_tasks_per_child=_TASKS_PER_WORKER,
                                                 initializer=_exit_with, initargs=(os.getpid(),))
            _running.add(self)
        return self._executor

    def _kill(self, executor: ProcessPoolExecutor) -> None:
        """Stop every process of a pool whose page is stuck; the next page gets a new pool."""
        if self._executor is executor:
            self._executor = None
        self._killed.add(id(executor))
        self.killed += 1
        # Python 3.14 has terminate_workers(); before it, the processes are only reachable here
        for process in list(getattr(executor, "_processes", {}).values()):
            process.kill()
        executor.shutdown(wait=False, cancel_futures=True)

    async def extract(self, body: bytes, content_type: str | None, charset: str | None, final_url: str, *,
                      main_content: bool = True) -> Views:
        """The views of one body computed in a worker, within the time limit (ExtractionTimeout past it)."""
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.workers)
        async with self._slots:  # at most one page per worker in flight, so the limit counts from its start
            for attempt in range(2):
                executor = self._pool()
                work = functools.partial(_run, body, content_type, charset, final_url, main_content, self.timeout)
                if getattr(executor, "_processes", None):
                    future = executor.submit(work)
                else:  # its first page starts the forkserver and the processes: 0.3 s the IOLoop must not wait
                    future = await asyncio.to_thread(executor.submit, work)
                try:
                    return await asyncio.wait_for(asyncio.wrap_future(future), self.timeout + _GRACE)
                except ExtractionTimeout:  # the worker stopped itself in time and lives on
                    raise
                except TimeoutError:  # (ExtractionTimeout is one too: caught above)
                    self._kill(executor)
                    raise ExtractionTimeout(f"extraction took longer than {self.timeout:g} s; "
                                            "its worker was stopped") from None
                except BrokenProcessPool:
                    if id(executor) in self._killed and attempt == 0:
                        continue  # stopped for another page's sake: this one deserves its own run
                    self._kill(executor)
                    raise ExtractionFailed("the extraction worker died on this page") from None
            raise ExtractionFailed("the extraction worker died on this page")

    def close(self) -> None:
        """Stop the workers (at shutdown)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
        _running.discard(self)


def stop_helpers() -> None:
    """Stop multiprocessing's forkserver and resource tracker, which otherwise live until this process exits
    (at the service's shutdown, and after tests, whose session checks that no process is left running), unless
    another pool of this process still has workers: they came from that forkserver, which waits for them, so
    stopping one service must not stop the helpers of another in the same process (as tests run two)."""
    from multiprocessing import forkserver, resource_tracker

    if any(pool._executor is not None for pool in list(_running)):
        return
    forkserver._forkserver._stop()  # type: ignore[attr-defined]
    resource_tracker._resource_tracker._stop()  # type: ignore[attr-defined]


async def extract_in_pool(pool: ExtractPool, body: bytes, content_type: str | None, charset: str | None,
                          final_url: str, *, main_content: bool = True) -> Views:
    """Extract one body off the IOLoop in `pool`, bounded by its time limit."""
    return await pool.extract(body, content_type, charset, final_url, main_content=main_content)
