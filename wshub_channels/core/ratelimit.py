"""A token bucket (pure: the caller passes the time), and the clock rate limits use.

Every rate limit of the hub (the per-connection limits of ``Limits`` and
``rate_limit_middleware``) and the idle timeout read time from :func:`clock`,
so their figures are comparable.
"""

from __future__ import annotations

import time

__all__ = ["TokenBucket", "clock"]

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
