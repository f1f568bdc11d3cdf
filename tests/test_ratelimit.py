"""The token bucket and the one clock of rate limits."""

from __future__ import annotations

import time

import pytest

from wshub_channels.ratelimit import TokenBucket, clock

pytestmark = pytest.mark.unit


def test_token_bucket_allows_burst_then_rate() -> None:
    """A bucket allows its capacity at once, then refills at its rate."""
    bucket = TokenBucket(rate=2, capacity=3, now=0)
    assert [bucket.take(1, 0) for _ in range(4)] == [True, True, True, False]
    assert bucket.take(1, 0.5) and not bucket.take(1, 0.5)
    assert not bucket.take(10, 100)  # cost above capacity never passes
    with pytest.raises(ValueError):
        TokenBucket(rate=0, capacity=1, now=0)


def test_rate_limits_share_the_monotonic_clock() -> None:
    """Rate limits and idle timeouts read one monotonic clock."""
    before = time.monotonic()
    assert before <= clock() <= time.monotonic()
