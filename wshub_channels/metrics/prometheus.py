"""``PrometheusMetrics``: the hub's metrics as ``wshub_*`` Prometheus series.

Set ``WSHUB["METRICS"] = "wshub_channels.metrics.prometheus.PrometheusMetrics"``
and serve django-prometheus's ``/metrics`` (``path("", include("django_prometheus.urls"))``).
The series use ``prometheus_client`` types on the default registry, or on
the one given to the constructor. Labels stay low-cardinality: a refusal
reason, a drop policy, an error type; never a client, user or room id.

Under django-prometheus's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``),
counters and histograms add up over the processes; each gauge says how it
combines: this node's connections and rooms are summed over live processes,
the bus is connected only if every live process is, and the cluster-wide
figures (nodes, clients) are the most recent any live process saw, never a
sum.

Message handling latency comes from ``record_latency``, which
:func:`~wshub_channels.middleware.metrics_middleware` calls: add it to
``WSHUB["MIDDLEWARE"]`` to fill ``wshub_message_handling_seconds``.
Queue depths, bus counters and presence are sampled every
:attr:`sample_interval` seconds on the hub's loop.
"""

from __future__ import annotations

import threading
from typing import Literal

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from . import HubSample

__all__ = ["PrometheusMetrics"]

_Mode = Literal["livesum", "livemin", "livemostrecent"]
_SECONDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_BYTES = (64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304)
_DEPTHS = (0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
#: LayerStats counters and the counter each one feeds (their deltas between samples).
_BUS_COUNTERS = {
    "publishes": "bus_publishes",
    "publish_errors": "bus_publish_errors",
    "bus_down": "bus_reconnects",
    "slow_consumer": "bus_slow_consumer_drops",
    "subscriber_dropped": "bus_output_buffer_drops",
    "unknown_version": "bus_unknown_envelope_versions",
    "bad_envelopes": "bus_bad_envelopes",
    "full_drops": "bus_full_drops",
    "receive_put_back": "bus_receives_put_back",
    "receive_lost": "bus_receives_lost",
    "ack_timeouts": "bus_ack_timeouts",
}


class _Series:
    """Every ``wshub_*`` series of one registry (made once per registry and namespace)."""

    def __init__(self, registry: CollectorRegistry, ns: str) -> None:
        def counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
            return Counter(name, doc, labels, namespace=ns, registry=registry)

        def gauge(name: str, doc: str, mode: _Mode) -> Gauge:
            return Gauge(name, doc, namespace=ns, registry=registry, multiprocess_mode=mode)

        def histogram(name: str, doc: str, buckets: tuple[float, ...]) -> Histogram:
            return Histogram(name, doc, namespace=ns, registry=registry, buckets=buckets)

        self.connections = gauge("connections_active", "Open connections on this node", "livesum")
        self.connections_total = counter("connections", "Connections accepted")
        self.refused = counter("handshakes_refused", "Handshakes refused, by reason", ("reason",))
        self.received = counter("messages_received", "Frames received from clients")
        self.received_bytes = counter("received_bytes", "Bytes received from clients")
        self.sent = counter("messages_sent", "Messages accepted for sending to clients")
        self.sent_bytes = counter("sent_bytes", "Bytes accepted for sending to clients")
        self.dropped = counter("messages_dropped", "Outbound messages dropped", ("policy",))
        self.joins = counter("room_joins", "Room joins")
        self.leaves = counter("room_leaves", "Room leaves")
        self.rooms = gauge("rooms_active", "Rooms with members on this node", "livesum")
        self.sizes = histogram("message_size_bytes", "Size of received frames", _BYTES)
        self.latency = histogram("message_handling_seconds", "Time to handle one message", _SECONDS)
        self.broadcast = histogram(
            "broadcast_seconds", "Time to queue one send for its local recipients", _SECONDS
        )
        self.errors = counter("errors", "Errors, by type", ("type",))
        self.history = counter(
            "history_events",
            "Room history appends, reads, recoveries (by outcome) and gaps, by event",
            ("event",),
        )
        self.queue_depth = histogram(
            "outbound_queue_depth", "Outbound queue length of each client, sampled", _DEPTHS
        )
        self.bus_connected = gauge("bus_connected", "1 when the bus is connected", "livemin")
        self.nodes = gauge("cluster_nodes", "Nodes in the cluster", "livemostrecent")
        self.cluster_clients = gauge(
            "cluster_clients", "Clients on every node of the cluster", "livemostrecent"
        )
        self.bus: dict[str, Counter] = {
            name: counter(name, doc)
            for name, doc in (
                ("bus_publishes", "Envelopes published on the bus"),
                ("bus_publish_errors", "Publishes the bus failed"),
                ("bus_reconnects", "Times the bus connection was lost (and retried)"),
                ("bus_slow_consumer_drops", "Bus messages dropped as this node read slowly"),
                ("bus_output_buffer_drops", "Times the broker cut this node's subscriber off"),
                ("bus_unknown_envelope_versions", "Envelopes of an unknown major version"),
                ("bus_bad_envelopes", "Bus messages that failed to decode or type-check"),
                ("bus_full_drops", "Channel-layer messages skipped at a full channel"),
                ("bus_receives_put_back", "Messages a cancelled receive gave back to the broker"),
                ("bus_receives_lost", "Messages a cancelled receive took and could not give back"),
                ("bus_ack_timeouts", "Broker acks not confirmed in time (NATS; may redeliver)"),
            )
        }


_made: dict[tuple[int, str], _Series] = {}
_made_lock = threading.Lock()


def _series(registry: CollectorRegistry, namespace: str) -> _Series:
    key = (id(registry), namespace)
    with _made_lock:
        found = _made.get(key)
        if found is None:
            found = _made[key] = _Series(registry, namespace)
        return found


class PrometheusMetrics:
    """A :class:`~wshub_channels.metrics.MetricsCollector` writing ``wshub_*`` series.

    ``registry`` defaults to ``prometheus_client.REGISTRY`` (the one
    django-prometheus exports); hubs of one process share the series of a
    registry. ``sample_interval`` is how often queue depths, bus counters
    and presence are sampled.
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        namespace: str = "wshub",
        sample_interval: float = 5.0,
    ) -> None:
        self.s = _series(REGISTRY if registry is None else registry, namespace)
        self.sample_interval: float | None = sample_interval

    def increment_connections(self) -> None:
        self.s.connections.inc()
        self.s.connections_total.inc()

    def decrement_connections(self) -> None:
        self.s.connections.dec()

    def increment_messages_received(self) -> None:
        self.s.received.inc()

    def increment_messages_sent(self, count: int) -> None:
        if count:
            self.s.sent.inc(count)

    def increment_messages_dropped(self) -> None:
        self.s.dropped.labels("unknown").inc()

    def increment_messages_dropped_for(self, policy: str) -> None:
        self.s.dropped.labels(policy).inc()

    def record_message_size(self, size: int) -> None:
        self.s.sizes.observe(size)
        self.s.received_bytes.inc(size)

    def record_bytes_sent(self, size: int) -> None:
        self.s.sent_bytes.inc(size)

    def record_latency(self, seconds: float) -> None:
        self.s.latency.observe(seconds)

    def record_broadcast_duration(self, seconds: float) -> None:
        self.s.broadcast.observe(seconds)

    def increment_room_joins(self) -> None:
        self.s.joins.inc()

    def increment_room_leaves(self) -> None:
        self.s.leaves.inc()

    def increment_rooms(self) -> None:
        self.s.rooms.inc()

    def decrement_rooms(self) -> None:
        self.s.rooms.dec()

    def increment_errors(self, error_type: str) -> None:
        self.s.errors.labels(error_type).inc()

    def increment_handshakes_refused(self, reason: str) -> None:
        self.s.refused.labels(reason).inc()

    def increment_history(self, event: str) -> None:
        self.s.history.labels(event).inc()

    def observe_hub(self, sample: HubSample) -> None:
        """Take one sample: queue depths, bus counter deltas, bus state and presence."""
        s = self.s
        for depth in sample.queue_depths:
            s.queue_depth.observe(depth)
        for field, name in _BUS_COUNTERS.items():
            grown = sample.bus.get(field, 0)
            if grown > 0:
                s.bus[name].inc(grown)
        if sample.bus_connected is not None:
            s.bus_connected.set(1 if sample.bus_connected else 0)
        if sample.nodes is not None:
            s.nodes.set(sample.nodes)
        if sample.cluster_clients is not None:
            s.cluster_clients.set(sample.cluster_clients)

    def __repr__(self) -> str:
        return f"PrometheusMetrics(sample_interval={self.sample_interval!r})"
