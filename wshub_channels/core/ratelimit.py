"""Token buckets and the rate limiter built on them (pure: the caller passes the time).

Every rate limit of the hub (the per-connection limits of ``Limits`` and
``rate_limit_middleware``) is a :class:`RateLimiter`, and it and the idle
timeout read time from :func:`clock`, so their figures are comparable.
"""

from __future__ import annotations

import time

__all__ = ["RateLimiter", "TokenBucket", "clock"]

#: Seconds on a monotonic clock; the one clock of rate limits and idle timeouts.
clock = time.monotonic


class TokenBucket:
    """Allows ``rate`` units per second on average and bursts of up to ``capacity``.

    ``take(cost, now)`` returns True and spends ``cost`` tokens when enough are
    available; otherwise it spends nothing and returns False. A cost larger
    than ``capacity`` could never be covered: it passes when the bucket is
    full and leaves it in debt (``tokens`` below zero), so nothing more passes
    until the debt is paid back at ``rate``. Not thread-safe.
    """

    __slots__ = ("capacity", "rate", "tokens", "updated")

    def __init__(self, rate: float, capacity: float, now: float) -> None:
        if rate <= 0 or capacity <= 0:
            raise ValueError("rate and capacity must be positive")
        self.rate = float(rate)
        self.capacity = float(capacity)
        self.tokens = float(capacity)
        self.updated = now

    def take(self, cost: float, now: float) -> bool:
        elapsed = now - self.updated
        if elapsed > 0:
            self.tokens = min(self.capacity, self.tokens + elapsed * self.rate)
            self.updated = now
        if cost > self.tokens and self.tokens < self.capacity:
            return False
        self.tokens -= cost
        return True


class RateLimiter:
    """One client's limits: messages per second and bytes per second, each a bucket.

    ``burst`` is in seconds' worth of the rate (default one); a message
    bucket holds at least one message. Not thread-safe.
    """

    __slots__ = ("_bytes", "_messages")

    def __init__(
        self, messages: float = 0.0, bytes_: float = 0.0, burst: float = 1.0, *, now: float
    ) -> None:
        burst = burst or 1.0
        self._messages = (
            TokenBucket(messages, max(1.0, messages * burst), now) if messages else None
        )
        self._bytes = TokenBucket(bytes_, bytes_ * burst, now) if bytes_ else None

    @classmethod
    def per_message(cls, rate: float, capacity: float, now: float) -> RateLimiter:
        """A limiter of ``rate`` messages per second in bursts of ``capacity``."""
        limiter = cls(now=now)
        limiter._messages = TokenBucket(rate, capacity, now)
        return limiter

    def __bool__(self) -> bool:
        return self._messages is not None or self._bytes is not None

    def allow(self, size: int, now: float) -> bool:
        """True when a message of ``size`` bytes is within every limit.

        The message bucket is asked first, then the byte bucket: a message
        the byte bucket refuses has spent its message token.
        """
        messages, bytes_ = self._messages, self._bytes
        if messages is not None and not messages.take(1, now):
            return False
        return bytes_ is None or bytes_.take(size, now)
