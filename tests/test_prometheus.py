"""PrometheusMetrics on a private registry, driven by real HubConsumers in process."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from prometheus_client import CollectorRegistry

from tests.inprocess import Clients, hub_clients
from tests.rig.timing import async_wait_until
from wshub_channels import HubConsumer
from wshub_channels.metrics import HubSample
from wshub_channels.metrics.prometheus import PrometheusMetrics
from wshub_channels.testing import scaled

pytestmark = pytest.mark.unit

ALIAS = "wshub-test-prometheus"
REGISTRY = CollectorRegistry()


class PrivateCollector(PrometheusMetrics):
    """What ``WSHUB["METRICS"]`` names: the private registry, sampled often."""

    def __init__(self) -> None:
        super().__init__(registry=REGISTRY, sample_interval=scaled(0.05))


class Echo(HubConsumer):
    channel_layer_alias = ALIAS

    async def on_connect(self) -> None:
        await self.join_room("lobby")
        await self.send_text(f"id:{self.id}")

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        await self.hub.broadcast_to_room("lobby", f"echo {text_data}")


def value(name: str, **labels: str) -> float:
    found = REGISTRY.get_sample_value(name, labels)
    return 0.0 if found is None else found


@pytest.fixture
async def clients() -> AsyncIterator[Clients]:
    settings = {
        "METRICS": "tests.test_prometheus.PrivateCollector",
        "LIMITS": {"max_connections": 2},
        "MIDDLEWARE": ["wshub_channels.middleware.metrics_middleware"],
    }
    async with hub_clients(ALIAS, settings) as made:
        yield made


async def test_a_workload_shows_in_the_wshub_series(clients: Clients) -> None:
    before = {
        name: value(name)
        for name in (
            "wshub_connections_total",
            "wshub_messages_received_total",
            "wshub_messages_sent_total",
            "wshub_sent_bytes_total",
            "wshub_received_bytes_total",
            "wshub_room_joins_total",
            "wshub_message_handling_seconds_count",
            "wshub_outbound_queue_depth_count",
        )
    }
    refused = value("wshub_handshakes_refused_total", reason="MaxConnectionsReached")
    a = await clients.connect(Echo)
    b = await clients.connect(Echo)
    third = clients.communicator(Echo)
    connected, _ = await third.connect(timeout=scaled(2))
    assert not connected  # max_connections is 2
    assert value("wshub_connections_active") == 2
    assert await a.ask("hi") == "echo hi"
    assert await b.next() == "echo hi"

    def grew(name: str) -> float:
        return value(name) - before[name]

    assert grew("wshub_connections_total") == 2
    assert grew("wshub_messages_received_total") == 1
    assert grew("wshub_received_bytes_total") == 2
    assert grew("wshub_messages_sent_total") == 4  # two ids, then the echo to both
    assert grew("wshub_sent_bytes_total") == len("id:" + a.id) * 2 + len("echo hi") * 2
    assert grew("wshub_room_joins_total") == 2
    assert grew("wshub_message_handling_seconds_count") == 1
    assert value("wshub_handshakes_refused_total", reason="MaxConnectionsReached") == refused + 1
    assert value("wshub_rooms_active") == 1
    await async_wait_until(
        lambda: grew("wshub_outbound_queue_depth_count") >= 2, scaled(2), interval=scaled(0.02)
    )
    await b.comm.disconnect()
    assert value("wshub_connections_active") == 1


def test_hub_samples_feed_bus_and_presence_series() -> None:
    """Bus counters grow by each sample's deltas; cluster figures are set, never summed."""
    metrics = PrivateCollector()
    publishes = value("wshub_bus_publishes_total")
    metrics.observe_hub(HubSample([0, 3], {"publishes": 5, "bus_down": 1}, True, 3, 40))
    metrics.observe_hub(HubSample([], {"publishes": 2}, False, 3, 41))
    assert value("wshub_bus_publishes_total") == publishes + 7
    assert value("wshub_bus_reconnects_total") >= 1
    assert value("wshub_bus_connected") == 0
    lost = {name: value(f"wshub_bus_{name}_total") for name in ("bad_envelopes", "receives_lost")}
    metrics.observe_hub(HubSample([], {"bad_envelopes": 2, "receive_lost": 1}, True, 3, 41))
    assert value("wshub_bus_bad_envelopes_total") == lost["bad_envelopes"] + 2
    assert value("wshub_bus_receives_lost_total") == lost["receives_lost"] + 1
    assert value("wshub_cluster_nodes") == 3 and value("wshub_cluster_clients") == 41
    assert value("wshub_outbound_queue_depth_bucket", le="2.0") >= 1
