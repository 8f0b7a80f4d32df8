"""Every retry loop's backoff goes through jobqueue.backoff: pinned against the formula each site used before."""

from __future__ import annotations

import asyncio
import random
from types import SimpleNamespace
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError, HTTPRequest, HTTPResponse
from tornado.httputil import HTTPHeaders

from jobqueue.backoff import delay
from jobqueue.client import stream
from jobqueue.client.http import Transport
from jobqueue.retry_policy import RetryPolicy
from jobqueue.store.sqlite.thread import BEGIN_RETRY_FIRST, BEGIN_RETRY_MAX

FAILURES = range(11)


def doubling(first: float, cap: float, count: int) -> list[float]:
    """The loops that doubled a running delay: wait `delay`, then delay = min(delay * 2, cap)."""
    waits, wait = [], first
    for _ in range(count):
        waits.append(wait)
        wait = min(wait * 2, cap)
    return waits


@pytest.mark.parametrize("base", [0.5, 0.01, 0.3])
def test_claim_loop_and_change_stream_keep_their_formula(base: float) -> None:
    # workers' claim loop: min(30.0, 0.5 * 2**failures); mongodb_watch: min(30.0, backoff * 2**failures)
    assert [delay(n, base, 30.0) for n in FAILURES] == [min(30.0, base * 2**n) for n in FAILURES]


@pytest.mark.parametrize(("first", "cap"), [(0.5, 30.0), (0.01, 30.0), (0.02, 0.08), (0.1, 0.3)])
def test_supervisor_keeps_its_doubling(first: float, cap: float) -> None:
    assert [delay(n, first, cap) for n in FAILURES] == doubling(first, cap, len(FAILURES))


def test_sqlite_lock_wait_keeps_its_doubling() -> None:
    assert [delay(n, BEGIN_RETRY_FIRST, BEGIN_RETRY_MAX) for n in FAILURES] == \
        doubling(BEGIN_RETRY_FIRST, BEGIN_RETRY_MAX, len(FAILURES))


@pytest.mark.parametrize("policy", [RetryPolicy(), RetryPolicy(base_delay=0.25, max_delay=5.0),
                                    RetryPolicy(base_delay=3.0, max_delay=7.0)])
def test_retry_policy_keeps_its_jittered_formula(policy: RetryPolicy) -> None:
    random.seed(1234)
    before = [min(policy.max_delay, policy.base_delay * (2 ** max(n - 1, 0))) * random.uniform(0.5, 1.5)
              for n in FAILURES]
    random.seed(1234)
    assert [policy.backoff(n) for n in FAILURES] == before


def test_no_jitter_draws_no_random_number() -> None:
    state = random.getstate()
    delay(3, 0.5, 30.0)
    assert random.getstate() == state


def test_a_count_too_large_for_a_float_waits_the_cap() -> None:
    assert delay(5000, 0.5, 30.0) == 30.0


class _Stop(Exception):
    pass


class _Socket:
    """A connection that says hello and closes."""

    def __init__(self) -> None:
        self.frames: list[str | None] = ['{"type": "hello"}', None]

    async def read_message(self) -> str | None:
        return self.frames.pop(0)

    async def write_message(self, message: str) -> None:
        pass

    def close(self) -> None:
        pass


def _stream_waits_before(outcomes: list[Any]) -> list[float]:
    """The client stream's former state machine: delay doubled to MAX_DELAY, raised by Retry-After, reset by hello."""
    waits, wait = [], stream.FIRST_DELAY
    for outcome in outcomes:
        if outcome == "hello":
            wait = stream.FIRST_DELAY
        elif isinstance(outcome, float):
            wait = max(wait, min(outcome, stream.MAX_DELAY))
        waits.append(wait)
        wait = min(wait * 2, stream.MAX_DELAY)
    return waits


@pytest.mark.parametrize("outcomes", [
    ["down"] * 11,
    ["down", 4.0, "down", "down", "hello", "down", 0.1, "down", 100.0, "down", "down"],
    [3.0, "hello", 0.7, 0.7, "down", 20.0, "hello", "down", "down", "down", "down", "down"],
])
def test_client_stream_keeps_its_waits(outcomes: list[Any], monkeypatch: pytest.MonkeyPatch) -> None:
    # "down": the connection fails; a float: a 503 with that Retry-After; "hello": connected, then closed
    pending = list(outcomes)
    waits: list[float] = []

    async def connect(request: HTTPRequest, **kwargs: Any) -> _Socket:
        if not pending:
            raise _Stop
        outcome = pending.pop(0)
        if outcome == "down":
            raise OSError("refused")
        if isinstance(outcome, float):
            headers = HTTPHeaders({"Retry-After": str(outcome)})
            raise HTTPClientError(503, response=HTTPResponse(request, 503, headers=headers))
        return _Socket()

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr(stream, "websocket_connect", connect)
    monkeypatch.setattr(stream, "asyncio", SimpleNamespace(sleep=sleep))

    async def run() -> None:
        with pytest.raises(_Stop):
            async for _ in stream.events(Transport("http://127.0.0.1:9", None, 1.0, 1.0)):
                pass

    asyncio.run(run())
    assert waits == _stream_waits_before(outcomes)
