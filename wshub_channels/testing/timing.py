"""One time unit for every timeout in tests, scaled by ``WSHUB_TEST_TIME_UNIT``.

Set ``WSHUB_TEST_TIME_UNIT=3`` on a slow machine to triple every timeout.
"""

from __future__ import annotations

import os

__all__ = ["TIME_UNIT_ENV", "UNIT", "parse_time_unit", "scaled"]

TIME_UNIT_ENV = "WSHUB_TEST_TIME_UNIT"


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
