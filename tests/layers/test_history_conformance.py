"""The room-history conformance suite, run against every layer that keeps history."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from channels.layers import BaseChannelLayer

from wshub_channels.layers import InMemoryHubLayer, NatsHubLayer
from wshub_channels.testing import HistoryConformance, LayerBackend
from wshub_channels.testing.jetstream import delete_prefix_streams


class TestInMemoryHistory(HistoryConformance):
    """Instances on one named in-memory bus share each room's history."""

    @pytest.fixture
    def layer_backend(self) -> LayerBackend:
        bus = f"history-{uuid.uuid4().hex}"

        def factory(**config: Any) -> BaseChannelLayer:
            return InMemoryHubLayer(bus=bus, **config)

        return LayerBackend("InMemoryHubLayer(bus=...)", factory, shared_broker=True)


@pytest.mark.integration
class TestNatsHistory(HistoryConformance):
    """Real NATS with JetStream; each test gets its own prefix, whose streams (room
    entries and room records among them) are deleted afterwards."""

    @pytest.fixture
    async def layer_backend(self, nats_url: str) -> AsyncIterator[LayerBackend]:
        prefix = f"hist{uuid.uuid4().hex[:8]}"

        def factory(**config: Any) -> BaseChannelLayer:
            return NatsHubLayer(servers=[nats_url], prefix=prefix, **config)

        yield LayerBackend("NatsHubLayer", factory, shared_broker=True)
        await delete_prefix_streams(nats_url, prefix)
