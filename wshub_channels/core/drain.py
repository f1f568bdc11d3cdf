"""Drain batches (pure): how a draining node lets its clients go.

Clients still connected when ``DRAIN_TIMEOUT`` has passed are closed in
batches of ``WSHUB["DRAIN_BATCH"]``, one batch every :data:`DRAIN_INTERVAL`
seconds, so that they do not all reconnect to the other nodes at the same
moment. :func:`batches` cuts the list and :func:`closing_time` says how long
the batches take. Who may start a drain is :mod:`wshub_channels.core.access`.

No I/O, no Django, no asyncio.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypeVar

__all__ = ["DRAIN_INTERVAL", "batches", "closing_time"]

T = TypeVar("T")

#: Seconds between two batches of closes at the end of a drain.
DRAIN_INTERVAL = 0.2


def batches(items: Sequence[T], size: int) -> list[Sequence[T]]:
    """Cut ``items`` into consecutive batches of ``size`` (the last may be shorter)."""
    if size < 1:
        raise ValueError(f"batch size must be at least 1, not {size}")
    return [items[start : start + size] for start in range(0, len(items), size)]


def closing_time(clients: int, size: int, interval: float = DRAIN_INTERVAL) -> float:
    """Seconds from the first batch of closes to the last, for ``clients`` clients."""
    if clients <= 0:
        return 0.0
    return (math.ceil(clients / size) - 1) * interval
