"""The conformance suite, run against every hub layer available here."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from channels.layers import BaseChannelLayer

from tests.rig.jetstream import delete_prefix_streams
from wshub_channels.layers import InMemoryHubLayer, NatsHubLayer, RedisHubLayer
from wshub_channels.testing import ChannelLayerConformance, LayerBackend


def _memory_shared() -> LayerBackend:
    bus = f"conformance-{uuid.uuid4().hex}"

    def factory(**config: Any) -> BaseChannelLayer:
        return InMemoryHubLayer(bus=bus, **config)

    return LayerBackend("InMemoryHubLayer(bus=...)", factory, shared_broker=True)


class TestInMemoryHubLayer(ChannelLayerConformance):
    """The embedded default: private bus per instance, like stock InMemoryChannelLayer."""

    @pytest.fixture
    def layer_backend(self) -> LayerBackend:
        return LayerBackend("InMemoryHubLayer", InMemoryHubLayer, shared_broker=False)


class TestInMemoryHubLayerSharedBus(ChannelLayerConformance):
    """Instances on one named bus behave as nodes of a cluster."""

    @pytest.fixture
    def layer_backend(self) -> LayerBackend:
        return _memory_shared()


@pytest.mark.integration
class TestRedisHubLayer(ChannelLayerConformance):
    """Real Redis; each test gets its own key prefix so runs never see each other."""

    @pytest.fixture
    def layer_backend(self, redis_url: str) -> LayerBackend:
        prefix = f"conf{uuid.uuid4().hex[:8]}"

        def factory(**config: Any) -> BaseChannelLayer:
            return RedisHubLayer(hosts=[redis_url], prefix=prefix, **config)

        return LayerBackend("RedisHubLayer", factory, shared_broker=True)


@pytest.mark.integration
class TestNatsHubLayer(ChannelLayerConformance):
    """Real NATS with JetStream; each test gets its own prefix (subjects, streams, bucket),
    whose streams are deleted afterwards."""

    @pytest.fixture
    async def layer_backend(self, nats_url: str) -> AsyncIterator[LayerBackend]:
        prefix = f"conf{uuid.uuid4().hex[:8]}"

        def factory(**config: Any) -> BaseChannelLayer:
            return NatsHubLayer(servers=[nats_url], prefix=prefix, **config)

        yield LayerBackend("NatsHubLayer", factory, shared_broker=True)
        await delete_prefix_streams(nats_url, prefix)
