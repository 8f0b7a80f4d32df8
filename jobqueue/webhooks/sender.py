"""Sends the outbox's deliveries: signed POSTs through the fetcher's address guard, retried with backoff.

The sender has its own curl client, so webhooks never take fetch workers' connections, and it caps
the attempts in flight per endpoint, so one slow receiver cannot hold every connection. A delivery is
claimed under a lease before it is sent; a process that dies mid-send leaves it to be sent again when
the lease runs out (at least once; receivers drop repeats by `webhook-id`). Every attempt that ends, by
any error (a bug included), is recorded and retried or given up by the same policy: none is left to
its lease. An answer is judged by its status line; its body is read up to MAX_ANSWER_BYTES and the
rest is discarded, so a large 2xx answer is a delivery like any other.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jobqueue import __version__
from jobqueue.addresses import AddressPolicy
from jobqueue.backoff import delay as backoff_delay
from jobqueue.errors import FetchError, StoreError
from jobqueue.fetcher import Fetcher, FetchSettings
from jobqueue.metrics import Metrics
from jobqueue.spec import FetchOptions
from jobqueue.webhooks.delivery import DELIVERED, FAILED, PENDING, Delivery, DeliveryOutcome, endpoint_of
from jobqueue.webhooks.signing import WebhookSigner

log = logging.getLogger("jobqueue.webhooks")

DEFAULT_RETRY_DELAYS = (5.0, 30.0, 120.0, 600.0, 3600.0, 21600.0)
FINAL_CODES = frozenset({"blocked", "invalid_url", "unsupported_scheme", "invalid_header"})  # another try cannot help
MAX_ANSWER_BYTES = 64 * 1024  # what is read of a receiver's answer; the rest is cut off unread
EXCERPT_CHARS = 200  # of a non-2xx answer's body, kept in last_error for the deliveries view


@dataclass(frozen=True)
class SenderSettings:
    """How deliveries are sent; built once from the server's options."""

    retry_delays: tuple[float, ...] = DEFAULT_RETRY_DELAYS
    timeout: float = 10.0
    per_endpoint: int = 4
    max_in_flight: int = 32
    lease_seconds: float = 60.0
    poll_interval: float = 0.5
    jitter: float = 0.2  # each delay is stretched or shrunk by up to this fraction


class WebhookSender:
    """Claims due deliveries, sends them concurrently within limits, and records each outcome."""

    def __init__(self, store: Any, signer: WebhookSigner, policy: AddressPolicy, metrics: Metrics,
                 settings: SenderSettings = SenderSettings(), clock: Callable[[], float] = time.time,
                 rng: Callable[[], float] = random.random) -> None:
        self.store = store
        self.signer = signer
        self.metrics = metrics
        self.settings = settings
        self.clock = clock
        self.rng = rng
        self.fetcher = Fetcher(FetchSettings(
            connect_timeout=settings.timeout, total_timeout=settings.timeout, max_body_size=MAX_ANSWER_BYTES,
            max_redirects=0, user_agent=f"jobqueue-webhooks/{__version__}", max_clients=settings.max_in_flight,
            cut_long_bodies=True,
        ), policy)
        self.in_flight: Counter[str] = Counter()
        self._sending: dict[str, tuple[Delivery, asyncio.Task[None]]] = {}
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Look for due deliveries now rather than at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        """Forever: move outbox entries into deliveries, send what is due, wait when there is nothing; the
        database unavailable is waited out with backoff, anything else raises to the supervisor."""
        failures = 0
        while True:
            wait = self.settings.poll_interval
            try:
                await self.store.relay_outbox()
                started = await self.dispatch()
                failures = 0
            except StoreError as exc:
                wait = backoff_delay(failures, self.settings.poll_interval, 30.0)
                failures += 1
                started = 0
                log.warning("sending webhooks failed (%s); trying again in %.1fs", exc, wait)
            if not started:
                self._wake.clear()
                try:
                    async with asyncio.timeout(wait):  # wait_for may swallow a cancel
                        await self._wake.wait()
                except TimeoutError:
                    pass

    async def dispatch(self) -> int:
        """Claim as many due deliveries as the limits allow and start sending them; how many started."""
        settings = self.settings
        free = settings.max_in_flight - sum(self.in_flight.values())
        if free <= 0 or not await self.store.deliveries_due():
            return 0
        full = sorted(e for e, n in self.in_flight.items() if n >= settings.per_endpoint)
        claimed = await self.store.claim_deliveries(min(free, settings.per_endpoint), settings.lease_seconds, full)
        over = []
        for delivery in claimed:
            endpoint = endpoint_of(delivery.url)
            if self.in_flight[endpoint] >= settings.per_endpoint:
                over.append(delivery)
                continue
            self.in_flight[endpoint] += 1
            task = asyncio.get_running_loop().create_task(self._send(delivery, endpoint))
            self._sending[delivery.id] = (delivery, task)
        await self.store.release_deliveries(over)
        return len(claimed) - len(over)

    async def _send(self, delivery: Delivery, endpoint: str) -> None:
        try:
            outcome = await self._attempt_recorded(delivery)
            self.metrics.webhook_deliveries.labels(
                "retry" if outcome.status == PENDING else outcome.status).inc()
            if outcome.status == DELIVERED:
                self.metrics.webhook_latency.observe(max(0.0, self.clock() - delivery.created_at))
            if outcome.status != DELIVERED:
                log.info("webhook %s to %s: %s", delivery.id, endpoint, outcome.error,
                         extra={"delivery": delivery.id, "status": outcome.status})
            await self.store.finish_delivery(delivery, outcome)
        except StoreError as exc:
            log.warning("webhook %s: could not record the outcome (%s); it is sent again when its lease ends",
                        delivery.id, exc)
        except Exception:
            log.exception("webhook %s: could not record the outcome; it is sent again when its lease ends",
                          delivery.id)
        finally:
            self.in_flight[endpoint] -= 1
            if self.in_flight[endpoint] <= 0:
                del self.in_flight[endpoint]
            self._sending.pop(delivery.id, None)
            self._wake.set()

    async def _attempt_recorded(self, delivery: Delivery) -> DeliveryOutcome:
        """`attempt`, with a bug's exception turned into the attempt's outcome (`internal_error`, retried as any
        failure), so no delivery is left pending to be claimed again and again when its lease ends."""
        try:
            return await self.attempt(delivery)
        except Exception as exc:
            log.error("webhook %s: the attempt failed unexpectedly", delivery.id, exc_info=exc)
            return self._again(delivery, None, f"internal_error: the attempt failed unexpectedly "
                               f"({type(exc).__name__}: {str(exc)[:300]}); the server log has the details")

    async def attempt(self, delivery: Delivery) -> DeliveryOutcome:
        """POST the delivery once, signed for this attempt, and judge the answer."""
        timestamp = int(self.clock())
        headers = {**self.signer.headers(delivery.id, timestamp, delivery.payload),
                   "Content-Type": "application/json"}
        options = FetchOptions(method="POST", headers=tuple(headers.items()),
                               body=delivery.payload.decode("utf-8"), timeout=self.settings.timeout,
                               follow_redirects=False)
        started = time.monotonic()
        try:
            answer = await self.fetcher.fetch(delivery.url, options)
        except FetchError as exc:
            return self._again(delivery, None, f"{exc.code}: {exc.message}", final=exc.code in FINAL_CODES)
        finally:
            self.metrics.webhook_seconds.observe(time.monotonic() - started)
        status = answer.http_status
        if 200 <= status <= 299:
            return DeliveryOutcome(DELIVERED, status)
        if status == 410:
            return DeliveryOutcome(FAILED, status, "the receiver answered 410 Gone: no more attempts")
        return self._again(delivery, status, f"the receiver answered HTTP {status}{_excerpt(answer.body)}")

    def _again(self, delivery: Delivery, status: int | None, error: str, final: bool = False) -> DeliveryOutcome:
        """Pending again after the delay for this attempt, or failed once the delays are used up."""
        delays = self.settings.retry_delays
        if final or delivery.attempts > len(delays):
            return DeliveryOutcome(FAILED, status, error)
        delay = delays[delivery.attempts - 1] * (1 + self.settings.jitter * (2 * self.rng() - 1))
        return DeliveryOutcome(PENDING, status, error, self.clock() + delay)

    async def close(self) -> None:
        """Stop sending: interrupted deliveries go back to the outbox, due at once, attempt not counted."""
        sending = list(self._sending.values())
        for _, task in sending:
            task.cancel()
        await asyncio.gather(*(task for _, task in sending), return_exceptions=True)
        try:
            await self.store.release_deliveries([delivery for delivery, _ in sending])
        except StoreError:
            pass  # their leases run out and they are sent again
        self.fetcher.close()


def _excerpt(body: bytes) -> str:
    """The start of an answer's body, on one line, for last_error ("" when there is none)."""
    text = " ".join(body[:EXCERPT_CHARS * 4].decode("utf-8", "replace").split())
    if not text:
        return ""
    return f": {text[:EXCERPT_CHARS]}{'…' if len(text) > EXCERPT_CHARS else ''}"
