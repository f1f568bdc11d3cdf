"""Metrics: the ``MetricsCollector`` protocol and two built-in collectors.

The method names are the Go library's, in snake_case. ``WSHUB["METRICS"]`` names
a collector class (instantiated with no arguments); the default is
:class:`NoopMetrics`. Collectors are called on hot paths from the hub's event
loop and must not block.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any, Protocol, runtime_checkable

from django.utils.module_loading import import_string

__all__ = [
    "DebugMetrics",
    "MetricsCollector",
    "NoopMetrics",
    "active_collector",
    "load_metrics",
    "set_active_collector",
]


@runtime_checkable
class MetricsCollector(Protocol):
    """What the hub reports. Durations are in seconds, sizes in bytes."""

    def increment_connections(self) -> None: ...
    def decrement_connections(self) -> None: ...
    def increment_messages_received(self) -> None: ...
    def increment_messages_sent(self, count: int) -> None: ...
    def increment_messages_dropped(self) -> None: ...
    def record_message_size(self, size: int) -> None: ...
    def record_latency(self, seconds: float) -> None: ...
    def record_broadcast_duration(self, seconds: float) -> None: ...
    def increment_room_joins(self) -> None: ...
    def increment_room_leaves(self) -> None: ...
    def increment_rooms(self) -> None: ...
    def decrement_rooms(self) -> None: ...
    def increment_errors(self, error_type: str) -> None: ...


class NoopMetrics:
    """Discards everything (the default)."""

    def increment_connections(self) -> None:
        pass

    def decrement_connections(self) -> None:
        pass

    def increment_messages_received(self) -> None:
        pass

    def increment_messages_sent(self, count: int) -> None:
        pass

    def increment_messages_dropped(self) -> None:
        pass

    def record_message_size(self, size: int) -> None:
        pass

    def record_latency(self, seconds: float) -> None:
        pass

    def record_broadcast_duration(self, seconds: float) -> None:
        pass

    def increment_room_joins(self) -> None:
        pass

    def increment_room_leaves(self) -> None:
        pass

    def increment_rooms(self) -> None:
        pass

    def decrement_rooms(self) -> None:
        pass

    def increment_errors(self, error_type: str) -> None:
        pass


class DebugMetrics:
    """Keeps counts in memory; :meth:`stats` returns a snapshot. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._counts: Counter[str] = Counter()
            self._errors: Counter[str] = Counter()
            self._gauges: Counter[str] = Counter()
            self._sums: dict[str, float] = {}
            self._max: dict[str, float] = {}

    def _inc(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] += n

    def _gauge(self, name: str, delta: int) -> None:
        with self._lock:
            self._gauges[name] += delta

    def _observe(self, name: str, value: float) -> None:
        with self._lock:
            self._counts[name + "_count"] += 1
            self._sums[name] = self._sums.get(name, 0.0) + value
            self._max[name] = max(self._max.get(name, value), value)

    def increment_connections(self) -> None:
        self._inc("connections_total")
        self._gauge("connections_active", 1)

    def decrement_connections(self) -> None:
        self._gauge("connections_active", -1)

    def increment_messages_received(self) -> None:
        self._inc("messages_received")

    def increment_messages_sent(self, count: int) -> None:
        self._inc("messages_sent", count)

    def increment_messages_dropped(self) -> None:
        self._inc("messages_dropped")

    def record_message_size(self, size: int) -> None:
        self._observe("message_bytes", size)

    def record_latency(self, seconds: float) -> None:
        self._observe("latency_seconds", seconds)

    def record_broadcast_duration(self, seconds: float) -> None:
        self._observe("broadcast_seconds", seconds)

    def increment_room_joins(self) -> None:
        self._inc("room_joins")

    def increment_room_leaves(self) -> None:
        self._inc("room_leaves")

    def increment_rooms(self) -> None:
        self._gauge("rooms_active", 1)

    def decrement_rooms(self) -> None:
        self._gauge("rooms_active", -1)

    def increment_errors(self, error_type: str) -> None:
        with self._lock:
            self._errors[error_type] += 1

    def stats(self) -> dict[str, Any]:
        """Return a snapshot: counters, gauges, sums, maxima and errors by type."""
        with self._lock:
            return {
                **dict(self._counts),
                **dict(self._gauges),
                "sums": dict(self._sums),
                "max": dict(self._max),
                "errors": dict(self._errors),
            }


def load_metrics(path: str | None) -> MetricsCollector:
    """Return the collector named by ``WSHUB["METRICS"]`` (a class is instantiated)."""
    if path is None:
        return NoopMetrics()
    found = import_string(path)
    collector: MetricsCollector = found() if isinstance(found, type) else found
    return collector


_active: MetricsCollector = NoopMetrics()


def set_active_collector(collector: MetricsCollector) -> None:
    """Make ``collector`` the process's hub collector (the hub calls this when configured)."""
    global _active
    _active = collector


def active_collector() -> MetricsCollector:
    """The collector of the most recently configured hub, for code that has no hub at hand.

    ``metrics_middleware()`` with no argument records into it.
    """
    return _active
