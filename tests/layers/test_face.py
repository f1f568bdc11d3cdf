"""The layers' face: every hub layer is a HubBus, and the face's own members work."""

from __future__ import annotations

import pytest

from tests.layers.dictbus import DictHubLayer, DictNet
from wshub_channels.layers import HubBus, HubLayer, InMemoryHubLayer, NatsHubLayer, RedisHubLayer

pytestmark = pytest.mark.unit


def _as_face(layer: HubLayer) -> HubBus:
    bus: HubBus = layer  # mypy checks the protocol here, member by member
    return bus


@pytest.mark.parametrize(
    "layer",
    [
        InMemoryHubLayer(),
        RedisHubLayer(hosts=["redis://127.0.0.1:1"]),
        NatsHubLayer(servers=["nats://127.0.0.1:1"]),
        DictHubLayer(DictNet()),
    ],
    ids=["memory", "redis", "nats", "dict"],
)
def test_every_hub_layer_is_a_hub_bus(layer: HubLayer) -> None:
    assert isinstance(_as_face(layer), HubBus)


def test_an_object_missing_a_member_is_not_a_hub_bus() -> None:
    assert not isinstance(object(), HubBus)


async def test_the_face_names_what_the_hub_reached_through() -> None:
    """max_payload, count_bad_envelope and stats_snapshot replace layer.transport.max_payload
    and layer.stats.bad_envelopes += 1; the old attribute still works meanwhile."""
    layer = InMemoryHubLayer()
    assert layer.max_payload is None and layer.transport.max_payload is None
    layer.count_bad_envelope()
    snapshot = layer.stats_snapshot()
    assert snapshot["bad_envelopes"] == 1 == layer.stats.bad_envelopes
    snapshot["bad_envelopes"] = 5
    assert layer.stats_snapshot()["bad_envelopes"] == 1  # a copy
