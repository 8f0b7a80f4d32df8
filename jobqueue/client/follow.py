"""Following a batch or a crawl to its end: the live stream for speed, REST for truth, never going backwards."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol, TypeVar

from .errors import JobQueueError, WaitTimeout
from .models import Event


class Progressing(Protocol):
    """What a followed thing tells: how many of its jobs are done, and whether it is over."""

    @property
    def done(self) -> int:
        """Jobs finished so far."""

    @property
    def finished(self) -> bool:
        """Whether it will not change again."""


P = TypeVar("P", bound=Progressing)
ProgressCallback = Callable[[P], Awaitable[None] | None]


async def follow(read: Callable[[], Awaitable[P]], stream: AsyncIterator[Event], pick: Callable[[Event], P | None],
                 late: Callable[[P], str], timeout: float | None = None,
                 on_progress: ProgressCallback[P] | None = None, poll: float = 5.0) -> P:
    """Wait until `read()` says it is finished, calling `on_progress` with each newer state.

    `pick` takes its newer states from the stream's messages; it is also read over REST after every
    (re)connection and every `poll` seconds, so a stream that is down or refused (too many streams) only makes
    the updates slower. WaitTimeout (its message from `late`) after `timeout` seconds.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    updates: asyncio.Queue[P | None] = asyncio.Queue()

    async def listen() -> None:
        async for event in stream:
            if event.type == "resync":
                updates.put_nowait(None)
            elif (state := pick(event)) is not None:
                updates.put_nowait(state)

    current = await read()
    await _call(on_progress, current)
    listener = asyncio.ensure_future(listen())
    try:
        while not current.finished:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise WaitTimeout("timeout", late(current))
            if listener.done() and not listener.cancelled() and (refused := listener.exception()) is not None:
                raise refused  # the stream refused the token
            try:
                async with asyncio.timeout(poll if left is None else min(poll, left)):
                    update = await updates.get()  # not wait_for: on 3.11 it can swallow a cancellation
            except TimeoutError:
                update = None
            newer = update if update is not None else await read()
            if update is not None and not newer.finished and newer.done < current.done:
                continue  # a stream message older than what REST said: never go backwards
            if newer != current:
                current = newer
                await _call(on_progress, current)
        return current
    finally:
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError, JobQueueError):
            await listener
        await _close(stream)


async def _close(stream: AsyncIterator[Event]) -> None:
    closer = getattr(stream, "aclose", None)
    if closer is not None:
        with contextlib.suppress(Exception):
            await closer()


async def _call(callback: ProgressCallback[P] | None, state: P) -> None:
    if callback is not None:
        outcome = callback(state)
        if outcome is not None:
            await outcome
