"""One time unit for the whole test rig.

Every timeout, deadline and grace period in the rig is expressed in *units* and converted
to seconds with :func:`t`. ``UNIT`` is 1.0 second by default; set the environment variable
``WSHUB_TEST_TIME_UNIT`` (for example ``WSHUB_TEST_TIME_UNIT=3``) to stretch every deadline
on a slow or loaded machine. Nothing in the rig sleeps for a fixed second: waits poll a
condition at a short interval until it holds or the deadline passes.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from wshub_channels.testing.timing import (
    TIME_UNIT_ENV,
    UNIT,
    async_wait_until,
    parse_time_unit,
    scaled,
)

__all__ = [
    "POLL_INTERVAL",
    "TIME_UNIT_ENV",
    "UNIT",
    "Deadline",
    "async_wait_until",
    "parse_time_unit",
    "t",
    "wait_until",
]

#: How often waits re-check their condition (seconds). Deliberately not scaled: a slow
#: machine needs longer deadlines, not coarser polling.
POLL_INTERVAL = 0.02

#: ``t(n)`` is ``n`` time units in seconds (the unit is shared with the public helpers).
t = scaled


class Deadline:
    """A point in (monotonic) time ``timeout`` seconds from now."""

    __slots__ = ("_end", "timeout")

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._end = time.monotonic() + timeout

    def remaining(self) -> float:
        """Seconds left, never negative."""
        return max(0.0, self._end - time.monotonic())

    def expired(self) -> bool:
        return time.monotonic() >= self._end

    def sleep_interval(self, interval: float = POLL_INTERVAL) -> float:
        """How long the next poll may sleep without overshooting the deadline."""
        return min(interval, self.remaining())


def wait_until(
    predicate: Callable[[], bool],
    within: float,
    *,
    interval: float = POLL_INTERVAL,
    what: str = "condition",
) -> None:
    """Poll ``predicate`` every ``interval`` seconds until it is true.

    ``within`` is in seconds (build it with :func:`t`). Raises :class:`TimeoutError`
    naming ``what`` if the deadline passes first. The predicate is always tried at least
    once, and once more right at the deadline.
    """
    deadline = Deadline(within)
    while True:
        if predicate():
            return
        if deadline.expired():
            raise TimeoutError(f"timed out after {within:.2f}s waiting for {what}")
        time.sleep(deadline.sleep_interval(interval))
