"""Metrics: the ``MetricsCollector`` protocol and two built-in collectors.

The method names are the Go library's, in snake_case. ``WSHUB["METRICS"]`` names
a collector class (instantiated with no arguments); the default is
:class:`NoopMetrics`. Collectors are called on hot paths from the hub's event
loop and must not block.

Methods added after the first release (:data:`OPTIONAL`) have defaults: a
collector that lacks one is wrapped by :func:`load_metrics`, and the default
either does nothing or calls the older method it refines
(``increment_messages_dropped_for(policy)`` calls ``increment_messages_dropped()``).
A collector whose ``sample_interval`` is a number also gets
:meth:`observe_hub` every that many seconds, with a :class:`HubSample`
(queue depths, bus counters, presence) taken on the hub's loop.
``wshub_channels.metrics.prometheus.PrometheusMetrics`` exports to Prometheus.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, cast, runtime_checkable

from django.utils.module_loading import import_string

__all__ = [
    "OPTIONAL",
    "DebugMetrics",
    "HubSample",
    "MetricsCollector",
    "NoopMetrics",
    "active_collector",
    "counts_bytes",
    "load_metrics",
    "set_active_collector",
]


@dataclass(frozen=True, slots=True)
class HubSample:
    """What the hub measures every ``sample_interval`` seconds for a collector.

    ``queue_depths`` holds each local client's outbound queue length;
    ``bus`` how much each of the layer's counters (``LayerStats``) grew
    since the previous sample;
    ``bus_connected`` is None on a bus nobody else shares; ``nodes`` and
    ``cluster_clients`` come from the presence table (None when it cannot
    be trusted, see :mod:`wshub_channels.hub.cluster`).
    """

    queue_depths: list[int] = field(default_factory=list)
    bus: dict[str, int] = field(default_factory=dict)
    bus_connected: bool | None = None
    nodes: int | None = None
    cluster_clients: int | None = None


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

    # Optional (see the module doc): load_metrics fills in what a collector lacks.
    def increment_handshakes_refused(self, reason: str) -> None: ...
    def increment_messages_dropped_for(self, policy: str) -> None: ...
    def record_bytes_sent(self, size: int) -> None: ...
    def increment_history(self, event: str) -> None: ...
    def observe_hub(self, sample: HubSample) -> None: ...

    sample_interval: float | None


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

    def increment_handshakes_refused(self, reason: str) -> None:
        pass

    def increment_messages_dropped_for(self, policy: str) -> None:
        pass

    def record_bytes_sent(self, size: int) -> None:
        pass

    def increment_history(self, event: str) -> None:
        pass

    def observe_hub(self, sample: HubSample) -> None:
        pass

    sample_interval: float | None = None


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

    def increment_handshakes_refused(self, reason: str) -> None:
        self._inc("handshakes_refused")
        self._inc(f"refused_{reason}")

    def increment_messages_dropped_for(self, policy: str) -> None:
        self._inc("messages_dropped")
        self._inc(f"dropped_{policy}")

    def record_bytes_sent(self, size: int) -> None:
        self._inc("bytes_sent", size)

    def increment_history(self, event: str) -> None:
        self._inc(f"history_{event}")

    def observe_hub(self, sample: HubSample) -> None:
        pass

    sample_interval: float | None = None

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


def _noop(*args: Any) -> None:
    pass


#: The methods added after the first release, and the default a collector without them gets.
OPTIONAL: dict[str, Callable[[Any], Callable[..., None]]] = {
    "increment_handshakes_refused": lambda inner: _noop,
    "increment_messages_dropped_for": lambda inner: (
        lambda policy: inner.increment_messages_dropped()
    ),
    "record_bytes_sent": lambda inner: _noop,
    "increment_history": lambda inner: _noop,
    "observe_hub": lambda inner: _noop,
}


_METHODS = [
    name for name in vars(NoopMetrics) if not name.startswith("_") and name != "sample_interval"
]


class _Completed:
    """A user's collector with defaults for the optional methods it lacks.

    Every method is bound once here, so a call costs what it costs on the
    collector itself; other attributes are read from the collector.
    """

    sample_interval: float | None = None

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.sample_interval = getattr(inner, "sample_interval", None)
        for name in _METHODS:
            if name in OPTIONAL and not hasattr(inner, name):
                setattr(self, name, OPTIONAL[name](inner))
            elif hasattr(inner, name):
                setattr(self, name, getattr(inner, name))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def counts_bytes(collector: MetricsCollector) -> bool:
    """False when ``record_bytes_sent`` does nothing, so senders need not measure."""
    method = getattr(collector, "record_bytes_sent", None)
    return getattr(method, "__func__", method) not in (None, NoopMetrics.record_bytes_sent, _noop)


def load_metrics(path: str | None) -> MetricsCollector:
    """Return the collector named by ``WSHUB["METRICS"]`` (a class is instantiated).

    A collector lacking an optional method is wrapped so that it has them all.
    """
    if path is None:
        return NoopMetrics()
    found = import_string(path)
    collector: Any = found() if isinstance(found, type) else found
    if all(hasattr(collector, name) for name in (*OPTIONAL, "sample_interval")):
        return cast(MetricsCollector, collector)
    return _Completed(collector)


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
