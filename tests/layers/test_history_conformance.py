"""The room-history conformance suite, run against every layer that keeps history."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from channels.layers import BaseChannelLayer

from tests.rig.brokers import start_nats_server
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


@pytest.fixture(scope="module")
def debian_nats_url() -> Iterator[str]:
    paths = ("/usr/sbin/nats-server", "/usr/bin/nats-server")
    binary = next((path for path in paths if os.access(path, os.X_OK)), None)
    if binary is None:
        pytest.skip("no system nats-server package installed (Debian's is nats-server 2.9.10)")
    handle = start_nats_server(binary=binary)
    try:
        yield handle.url
    finally:
        handle.stop()


@pytest.mark.integration
class TestNatsHistoryOnDebianServer(HistoryConformance):
    """The suite again on the system's nats-server package (Debian ships 2.9.10), the
    oldest server the NATS backend is run on, whatever server ``nats_url`` found."""

    @pytest.fixture
    async def layer_backend(self, debian_nats_url: str) -> AsyncIterator[LayerBackend]:
        prefix = f"hdeb{uuid.uuid4().hex[:8]}"

        def factory(**config: Any) -> BaseChannelLayer:
            return NatsHubLayer(servers=[debian_nats_url], prefix=prefix, **config)

        yield LayerBackend("NatsHubLayer (system nats-server)", factory, shared_broker=True)
        await delete_prefix_streams(debian_nats_url, prefix)
