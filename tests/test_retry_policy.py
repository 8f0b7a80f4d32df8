"""When a failed attempt is tried again: Retry-After is read the way HTTP defines it."""

from __future__ import annotations

from jobqueue.retry_policy import RetryPolicy


def test_retry_after_counts_only_ascii_digits():
    policy = RetryPolicy()
    assert policy.retry_after("7") == 7.0
    assert policy.retry_after("\u00b2") is None and policy.retry_after("\u0663") is None
    assert policy.retry_after("100000") == policy.max_retry_after
