"""The token bucket and the one clock of rate limits."""

from __future__ import annotations

import time

import pytest

from wshub_channels.core.ratelimit import TokenBucket, clock

pytestmark = pytest.mark.unit


def test_token_bucket_allows_burst_then_rate() -> None:
    """A bucket allows its capacity at once, then refills at its rate."""
    bucket = TokenBucket(rate=2, capacity=3, now=0)
    assert [bucket.take(1, 0) for _ in range(4)] == [True, True, True, False]
    assert bucket.take(1, 0.5) and not bucket.take(1, 0.5)
    with pytest.raises(ValueError):
        TokenBucket(rate=0, capacity=1, now=0)


def test_a_cost_above_capacity_passes_once_from_a_full_bucket_into_debt() -> None:
    """A frame larger than the bucket is not refused forever: a full bucket lets it
    through and goes negative; nothing passes until the debt is paid back."""
    bucket = TokenBucket(rate=10, capacity=5, now=0)
    assert bucket.take(25, 0) and bucket.tokens == -20
    assert not bucket.take(1, 0) and not bucket.take(25, 0)
    assert not bucket.take(1, 2.0)  # refilled to 0: still short of one token
    assert bucket.take(1, 2.1) and not bucket.take(25, 2.1)  # not full: no second debt
    assert bucket.take(25, 100)  # full again: one more


def test_a_partly_full_bucket_still_refuses_what_it_cannot_cover() -> None:
    """Only a full bucket runs into debt; otherwise cost above tokens is refused."""
    bucket = TokenBucket(rate=1, capacity=5, now=0)
    assert bucket.take(1, 0) and not bucket.take(5, 0) and bucket.tokens == 4


def test_rate_limits_share_the_monotonic_clock() -> None:
    """Rate limits and idle timeouts read one monotonic clock."""
    before = time.monotonic()
    assert before <= clock() <= time.monotonic()


def test_a_message_with_a_lone_surrogate_has_a_size() -> None:
    """Message size counts a lone surrogate 3 bytes, as frame_size does, instead of raising."""
    from wshub_channels.message import Message
    from wshub_channels.utf8 import frame_size

    text = "a\ud800é"
    assert len(Message(text, "c")) == frame_size(text) == 6


def test_the_rate_limiter_asks_the_message_bucket_then_the_byte_bucket() -> None:
    """RateLimiter: messages per second and bytes per second, in bursts of ``burst`` seconds."""
    from wshub_channels.core.ratelimit import RateLimiter

    limiter = RateLimiter(2, 10, 1.0, now=0.0)
    assert limiter.allow(4, 0.0) and limiter.allow(4, 0.0)
    assert not limiter.allow(1, 0.0)  # a third message in the first second
    assert limiter.allow(1, 1.0)
    assert not RateLimiter(now=0.0)  # no limit configured
