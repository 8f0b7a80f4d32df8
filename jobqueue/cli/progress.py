"""Progress of `submit --wait` and `crawl --wait`: a live rich bar on a terminal, plain lines (every few seconds)
otherwise."""

from __future__ import annotations

import asyncio
import sys
import time
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


class Tally:
    """The jobs of one or more batches followed together: done/total, failures, rate and ETA; or a crawl's pages,
    whose total grows as they are found (no ETA then, and `detail` says what else there is to know)."""

    def __init__(self, total: int, growing: bool = False) -> None:
        self.total = total
        self.growing = growing
        self.detail = ""
        self.done = 0
        self.failed = 0
        self.started = time.monotonic()
        self._first_done: int | None = None  # done when following began: jobs finished before do not count for the rate

    def update(self, done: int, failed: int, total: int | None = None, detail: str | None = None) -> None:
        """Record the newest sums over the batches (or the crawl's pages found so far, and its detail)."""
        if self._first_done is None:
            self._first_done = done
        self.done, self.failed = done, failed
        if total is not None:
            self.total = total
        if detail is not None:
            self.detail = detail

    @property
    def rate(self) -> float:
        """Jobs finished per second since following began."""
        elapsed = time.monotonic() - self.started
        return (self.done - (self._first_done or 0)) / elapsed if elapsed > 0 else 0.0

    @property
    def eta(self) -> float | None:
        """Seconds left at the current rate (None while unknown)."""
        rate = self.rate
        return (self.total - self.done) / rate if rate > 0 else None


def seconds(value: float | None) -> str:
    """12s, 3m05s, 1h02m; '?' while unknown."""
    if value is None:
        return "?"
    whole = round(value)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


class PlainProgress:
    """A line like `jobqueue: 500/1000 done, 3 failed, 41.7/s, ETA 12s` at most every `every` seconds (a crawl's
    line has its detail where the ETA would be)."""

    def __init__(self, tally: Tally, stream: TextIO | None = None, every: float = 2.0) -> None:
        self.tally = tally
        self.stream = stream or sys.stderr
        self.every = every
        self._last = 0.0
        self._shown: tuple[int, int, int, str] | None = None

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.show(force=True)

    def show(self, force: bool = False) -> None:
        """Print the tally if it changed and the last line is old enough (or if forced)."""
        now = time.monotonic()
        tally = self.tally
        state = (tally.done, tally.failed, tally.total, tally.detail)
        if state == self._shown or (not force and now - self._last < self.every):
            return
        self._last, self._shown = now, state
        after = tally.detail if tally.growing else f"ETA {seconds(tally.eta) if tally.done < tally.total else '0s'}"
        print(f"jobqueue: {tally.done}/{tally.total} done, {tally.failed} failed, {tally.rate:.1f}/s, {after}",
              file=self.stream, flush=True)


class BarProgress:
    """A rich progress bar on the terminal: done/total, rate, ETA and failures so far (a crawl's: pages done of
    those found so far, rate, failures and its detail)."""

    def __init__(self, tally: Tally, stream: TextIO | None = None) -> None:
        self.tally = tally
        failed = TextColumn("[red]{task.fields[failed]} failed")
        ending = ((failed, TextColumn("{task.fields[detail]}")) if tally.growing
                  else (TextColumn("ETA"), TimeRemainingColumn(), failed))
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}/s"), *ending,
            console=Console(file=stream or sys.stderr), transient=False,
        )
        self.task = self.progress.add_task("crawling" if tally.growing else "fetching", total=tally.total,
                                           rate="0.0", failed=0, detail=tally.detail)

    def __enter__(self) -> BarProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.show()
        self.progress.stop()

    def show(self, force: bool = False) -> None:
        """Move the bar to the tally."""
        self.progress.update(self.task, completed=self.tally.done, total=self.tally.total,
                             rate=f"{self.tally.rate:.1f}", failed=self.tally.failed, detail=self.tally.detail)


def progress_for(tally: Tally, stream: TextIO | None = None) -> PlainProgress | BarProgress:
    """The bar on a terminal, plain lines when stderr is a file or a pipe."""
    out = stream or sys.stderr
    return BarProgress(tally, out) if out.isatty() else PlainProgress(tally, out)


async def tick(display: PlainProgress | BarProgress) -> None:
    """Refresh the display once a second, so the rate moves while no message comes (cancel it when done)."""
    while True:
        await asyncio.sleep(1.0)
        display.show()
