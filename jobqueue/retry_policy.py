"""When a failed attempt is tried again, and after how long."""

from __future__ import annotations

import email.utils
import time
from dataclasses import dataclass

from jobqueue.backoff import delay as backoff_delay

# Scrapy's list plus 429: statuses that say "try later", not "never".
RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504, 522, 524})


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter, capped, honouring Retry-After within a cap."""

    max_attempts: int = 3
    base_delay: float = 1.0
    max_delay: float = 60.0
    max_retry_after: float = 120.0

    def may_retry(self, attempts: int) -> bool:
        """Is there an attempt left after `attempts` were made?"""
        return attempts < self.max_attempts

    def backoff(self, attempts: int) -> float:
        """Seconds to wait after the `attempts`-th failure: base * 2^(n-1), jittered by ±50%."""
        return backoff_delay(max(attempts - 1, 0), self.base_delay, self.max_delay, jitter=0.5)

    def retry_after(self, header: str | None, now: float | None = None) -> float | None:
        """Seconds a Retry-After header asks for (delta or HTTP date), capped; None if absent or bad."""
        if not header:
            return None
        header = header.strip()
        if header.isascii() and header.isdigit():
            return min(float(header), self.max_retry_after)
        try:
            when = email.utils.parsedate_to_datetime(header)
        except (TypeError, ValueError):
            return None
        if when is None:
            return None
        wait = when.timestamp() - (time.time() if now is None else now)
        return min(max(wait, 0.0), self.max_retry_after)
