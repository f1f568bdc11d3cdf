"""The room-history conformance suite, run against every layer that keeps history."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from channels.layers import BaseChannelLayer

from wshub_channels.layers import InMemoryHubLayer, RedisHubLayer
from wshub_channels.testing import HistoryConformance, LayerBackend


class TestInMemoryHistory(HistoryConformance):
    """Instances on one named in-memory bus share each room's history."""

    @pytest.fixture
    def layer_backend(self) -> LayerBackend:
        bus = f"history-{uuid.uuid4().hex}"

        def factory(**config: Any) -> BaseChannelLayer:
            return InMemoryHubLayer(bus=bus, **config)

        return LayerBackend("InMemoryHubLayer(bus=...)", factory, shared_broker=True)


@pytest.mark.integration
class TestRedisHistory(HistoryConformance):
    """Real Redis; each test gets its own key prefix so runs never see each other."""

    @pytest.fixture
    def layer_backend(self, redis_url: str) -> LayerBackend:
        prefix = f"hist{uuid.uuid4().hex[:8]}"

        def factory(**config: Any) -> BaseChannelLayer:
            return RedisHubLayer(hosts=[redis_url], prefix=prefix, **config)

        return LayerBackend("RedisHubLayer", factory, shared_broker=True)
