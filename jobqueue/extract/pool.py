"""Extraction off the IOLoop: a bounded process pool, a time limit per page, and hostile pages stopped.

Pages waiting for a worker go to it together, up to a few at a time (BATCH_PAGES, BATCH_BYTES): one hand-over
instead of one each, and the jobs completing with them reach the writer as one group instead of one by one.

Each hand-over gets two limits. In the worker, SIGALRM stops Python code (trafilatura, the link loop) cleanly,
and the worker lives on: the first page of a hand-over has `timeout`, and the others what is left of it (one
that finds too little left is sent back and runs again alone, with the whole limit). If the worker is stuck in
C code (a parser on a pathological page) and the answer is not back by `timeout + grace`, its pool's processes
are killed and a fresh pool serves the next pages: a page alone is then out of time, pages handed over with
others, or running beside it on the killed pool, run again once, alone. (Which page of a hand-over is stuck is
not known, so its companions lose one hard limit; only pages that fit in BATCH_BYTES together share one, and
the pages known to stick in C are megabytes.)
"""

from __future__ import annotations

import asyncio
import functools
import multiprocessing
import os
import select
import signal
import threading
import time
import weakref
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from types import FrameType

from jobqueue.extract.core import EXTRACTORS, extract
from jobqueue.extract.views import ExtractionFailed, ExtractionTimeout, NotHtml, Views, views_from_document

DEFAULT_TIMEOUT = 10.0
_GRACE = 2.0  # after the soft limit, how long a worker may take to notice it before it is killed
# hand-overs (1-8 pages each); then the worker is replaced, so memory kept by parsers' caches cannot grow for ever
# (a fresh worker's first pages cost more: at 250, one-page hand-overs cost about 1 ms a page more)
_TASKS_PER_WORKER = 1000
BATCH_PAGES = 8  # pages handed to a worker at once, at most
BATCH_BYTES = 512 * 1024  # their bodies together, at most (a larger page goes alone)
_MIN_LEFT = 0.5  # a page handed over with others runs only with this much of the hand-over's limit left


# pools whose workers run: multiprocessing's helpers serve them all, so they are stopped when none is left
_running: weakref.WeakSet[ExtractPool] = weakref.WeakSet()


class _Alarm(BaseException):
    """Raised in a worker by SIGALRM; a BaseException so no `except Exception` in a library swallows it."""


def _on_alarm(_signum: int, _frame: FrameType | None) -> None:
    raise _Alarm


def _run(body: bytes, content_type: str | None, charset: str | None, final_url: str, main_content: bool,
         timeout: float) -> str:
    """Run one extraction in a worker under its soft time limit; every failure crosses back as our own errors.
    The views cross as their JSON document, made here: one string to unpickle, and nothing to serialize on the
    IOLoop (a page of 100,000 links took 150 ms there)."""
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        return extract(body, content_type, charset, final_url, main_content=main_content).to_document()
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


Args = tuple[bytes, str | None, str | None, str, bool]  # body, content type, charset, final URL, main content


def _run_many(pages: list[Args], timeout: float) -> list[str | Exception | None]:
    """Run a hand-over's pages in a worker within one `timeout` in all: each page's views document or error, or
    None for a page sent back to run again alone (too little time was left for it, or it ran out of it)."""
    deadline = time.monotonic() + timeout
    outcomes: list[str | Exception | None] = []
    for index, page in enumerate(pages):
        left = timeout if index == 0 else deadline - time.monotonic()
        if index and left < min(_MIN_LEFT, timeout):
            outcomes.append(None)
            continue
        try:
            outcomes.append(_run(*page, left))
        except (ExtractionTimeout, _Alarm):  # (an alarm that fired just as _run returned: its page's time was up)
            timed_out = ExtractionTimeout(f"extraction took longer than {timeout:g} s")
            outcomes.append(timed_out if index == 0 else None)
        except (NotHtml, ExtractionFailed) as exc:
            outcomes.append(exc)
    return outcomes


@dataclass
class _Page:
    """A page waiting for its views; `alone` once it must run in a hand-over of its own."""

    args: Args
    future: asyncio.Future[Views]
    alone: bool = False
    retried: bool = False  # ran again after a pool broke or was killed for another page's sake
    size: int = field(init=False)

    def __post_init__(self) -> None:
        self.size = len(self.args[0])


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
        self.handovers = 0  # hand-overs to a worker (pages go several at a time when they wait)
        self._executor: ProcessPoolExecutor | None = None
        self._killed: weakref.WeakSet[ProcessPoolExecutor] = weakref.WeakSet()  # killed on purpose: their other
        # pages are retried (the objects, not their ids: a new pool may get a dead one's id)
        self._waiting: deque[_Page] = deque()
        self._busy = 0  # hand-overs in the workers: at most one per worker, so a limit counts from its start
        self._runs: set[asyncio.Task[None]] = set()
        self._closed = False

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

    def _kill(self, executor: ProcessPoolExecutor, stuck: bool = True) -> None:
        """Stop every process of a pool whose page is stuck (or that broke); the next page gets a new pool."""
        if self._executor is executor:
            self._executor = None
        self._killed.add(executor)
        if stuck:
            self.killed += 1
        # Python 3.14 has terminate_workers(); before it, the processes are only reachable here
        for process in list(getattr(executor, "_processes", {}).values()):
            process.kill()
        executor.shutdown(wait=False, cancel_futures=True)

    async def extract(self, body: bytes, content_type: str | None, charset: str | None, final_url: str, *,
                      main_content: bool = True) -> Views:
        """The views of one body computed in a worker, within the time limit (ExtractionTimeout past it)."""
        if self._closed:
            raise ExtractionFailed("the extraction pool is closed")
        page = _Page((body, content_type, charset, final_url, main_content),
                     asyncio.get_running_loop().create_future())
        self._waiting.append(page)
        self._hand_over()
        return await page.future  # cancelled with its caller: a page not yet handed over is then skipped

    def _hand_over(self) -> None:
        """Give waiting pages to free workers, several to a worker when they fit."""
        while self._busy < self.workers and self._waiting:
            batch: list[_Page] = []
            size = 0
            while self._waiting and len(batch) < BATCH_PAGES:
                page = self._waiting[0]
                if page.future.done():
                    self._waiting.popleft()
                    continue
                if batch and (page.alone or size + page.size > BATCH_BYTES):
                    break
                batch.append(self._waiting.popleft())
                size += page.size
                if page.alone:
                    break
            if not batch:
                return
            self._busy += 1
            run = asyncio.ensure_future(self._run(batch))
            self._runs.add(run)
            run.add_done_callback(self._ran)

    def _ran(self, run: asyncio.Task[None]) -> None:
        self._runs.discard(run)
        self._busy -= 1
        self._hand_over()

    def _again(self, pages: list[_Page]) -> None:
        """Pages to run again, each alone and in their order, ahead of the others waiting."""
        for page in reversed(pages):
            page.alone = True
            self._waiting.appendleft(page)

    def _again_once(self, pages: list[_Page], failure: str) -> None:
        """Pages to run again, unless they already were for the same reason: then they fail with `failure`."""
        for page in pages:
            if page.retried:
                self._settle(page, ExtractionFailed(failure))
        again = [page for page in pages if not page.retried]
        for page in again:
            page.retried = True
        self._again(again)

    async def _run(self, batch: list[_Page]) -> None:
        try:
            await self._run_batch(batch)
        except BaseException as exc:
            for page in batch:
                if not page.future.done():
                    page.future.set_exception(ExtractionFailed(f"the extraction pool failed: {exc!r}"))
            if not isinstance(exc, Exception):
                raise

    async def _run_batch(self, batch: list[_Page]) -> None:
        if self._closed:
            raise ExtractionFailed("the extraction pool is closed")
        executor = self._pool()
        work = functools.partial(_run_many, [page.args for page in batch], self.timeout)
        future: Future[list[str | Exception | None]]
        try:
            if getattr(executor, "_processes", None):
                future = executor.submit(work)
            else:  # its first page starts the forkserver and the processes: 0.3 s the IOLoop must not wait
                future = await asyncio.to_thread(executor.submit, work)
        except BrokenProcessPool:  # it broke while idle (a worker killed from outside): a new pool takes the pages
            self._kill(executor, stuck=False)
            self._again_once(batch, "the extraction pool broke and could not be started again")
            return
        self.handovers += 1
        try:
            outcomes = await asyncio.wait_for(asyncio.wrap_future(future), self.timeout + _GRACE)
        except TimeoutError:
            self._kill(executor)
            if len(batch) > 1:  # which page is stuck is not known: each runs again alone
                self._again(batch)
                return
            self._settle(batch[0], ExtractionTimeout(f"extraction took longer than {self.timeout:g} s; "
                                                     "its worker was stopped"))
            return
        except BrokenProcessPool:
            stopped_for_another = executor in self._killed
            if not stopped_for_another:
                self._kill(executor, stuck=False)
            if len(batch) > 1:  # which page broke it is not known: each runs again alone
                self._again(batch)
            elif stopped_for_another:  # this page deserves its own run
                self._again_once(batch, "the extraction worker died on this page")
            else:
                self._settle(batch[0], ExtractionFailed("the extraction worker died on this page"))
            return
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if future.cancelled() and current is not None and not current.cancelling():
                self._again_once(batch, "the extraction pool was stopped")  # a kill for another page took it
                return
            raise
        self._again([page for page, outcome in zip(batch, outcomes, strict=True) if outcome is None])
        for page, outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, str):
                self._settle(page, views_from_document(outcome))
            elif outcome is not None:
                self._settle(page, outcome)

    @staticmethod
    def _settle(page: _Page, outcome: Views | Exception) -> None:
        if page.future.done():  # its caller gave up
            return
        if isinstance(outcome, Exception):
            page.future.set_exception(outcome)
        else:
            page.future.set_result(outcome)

    def close(self) -> None:
        """Stop the workers (at shutdown)."""
        self._closed = True
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
