"""Who may use the API and how much: bearer tokens and per-client token buckets."""

from __future__ import annotations

import hmac
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

FULL = "full"
READ = "read"


class TokenSet:
    """The accepted API tokens; checks compare in constant time against every one of them.

    Read-only tokens (`--read-only-token`) may read everything and open the websocket, nothing more.
    """

    def __init__(self, tokens: Iterable[str], read_only: Iterable[str] = ()) -> None:
        self._tokens = [t.encode() for t in tokens]
        self._read_only = [t.encode() for t in read_only]

    @property
    def required(self) -> bool:
        """Is a token needed at all?"""
        return bool(self._tokens)

    def accepts(self, offered: str | None) -> bool:
        """True when `offered` is one of the tokens (or none are configured)."""
        if not self._tokens:
            return True
        if not offered:
            return False
        return self.access(offered) is not None

    def access(self, offered: str | None) -> str | None:
        """FULL or READ for a known token (FULL for anyone when no token is configured), None otherwise."""
        if not self._tokens:
            return FULL
        if not offered:
            return None
        candidate = offered.encode()
        full = read = False
        for token in self._tokens:
            full |= hmac.compare_digest(candidate, token)
        for token in self._read_only:
            read |= hmac.compare_digest(candidate, token)
        return FULL if full else READ if read else None


def bearer(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer TOKEN` header, or None."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


@dataclass
class _Bucket:
    level: float
    at: float


class RateLimiter:
    """A token bucket per client, refilled at `rate` per second up to `burst`; memory is bounded."""

    def __init__(self, rate: float, burst: int, max_clients: int = 10000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self.max_clients = max_clients
        self.clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def take(self, client: str, cost: int) -> float | None:
        """Spend `cost`; None when allowed, else the seconds to wait before it would be."""
        if self.rate <= 0:
            return None
        now = self.clock()
        bucket = self._buckets.get(client)
        if bucket is None:
            bucket = _Bucket(float(self.burst), now)
            self._buckets[client] = bucket
            if len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(client)
            bucket.level = min(float(self.burst), bucket.level + (now - bucket.at) * self.rate)
            bucket.at = now
        if cost > self.burst:  # a batch larger than the burst: allowed from a full bucket, paid as debt
            if bucket.level < self.burst:
                return (self.burst - bucket.level) / self.rate
            bucket.level -= cost
            return None
        if bucket.level >= cost:
            bucket.level -= cost
            return None
        return (cost - bucket.level) / self.rate

    def refund(self, client: str, cost: int) -> None:
        """Give back what `take` charged for a submission that was not stored after all."""
        bucket = self._buckets.get(client)
        if self.rate > 0 and bucket is not None:
            bucket.level = min(float(self.burst), bucket.level + cost)
