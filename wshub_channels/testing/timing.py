"""One time unit for every timeout in tests, scaled by ``WSHUB_TEST_TIME_UNIT``, and a bounded poll.

Set ``WSHUB_TEST_TIME_UNIT=3`` on a slow machine to triple every timeout.
:func:`async_wait_until` waits for an eventual state by polling it until a
deadline, instead of sleeping for a guessed settle time. It runs on the
caller's event loop.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import time
from collections.abc import Awaitable, Callable

__all__ = ["TIME_UNIT_ENV", "UNIT", "async_wait_until", "parse_time_unit", "scaled"]

TIME_UNIT_ENV = "WSHUB_TEST_TIME_UNIT"
#: How often :func:`async_wait_until` checks again (seconds; not scaled: a slow
#: machine needs longer deadlines, not coarser polling).
POLL_INTERVAL = 0.02


def parse_time_unit(raw: str | None) -> float:
    """Turn the value of ``WSHUB_TEST_TIME_UNIT`` into a positive number of seconds."""
    if raw is None or not raw.strip():
        return 1.0
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{TIME_UNIT_ENV} must be a positive number, got {raw!r}") from None
    if not value > 0 or value == float("inf"):
        raise ValueError(f"{TIME_UNIT_ENV} must be a positive finite number, got {raw!r}")
    return value


#: Seconds in one time unit.
UNIT: float = parse_time_unit(os.environ.get(TIME_UNIT_ENV))


def scaled(n: float) -> float:
    """Return ``n`` time units in seconds."""
    return n * UNIT


async def async_wait_until(
    predicate: Callable[[], bool | Awaitable[bool]],
    within: float,
    *,
    interval: float = POLL_INTERVAL,
    what: str = "condition",
) -> None:
    """Poll ``predicate`` (plain or async) until it is true, for at most ``within`` seconds.

    Build ``within`` with :func:`scaled`. The predicate is tried at least once,
    and once more at the deadline; then :class:`TimeoutError` names ``what``.
    """
    end = time.monotonic() + within
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        left = end - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"timed out after {within:.2f}s waiting for {what}")
        await asyncio.sleep(min(interval, left))
