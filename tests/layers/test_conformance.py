"""The conformance suite, run against every hub layer available here."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from channels.layers import BaseChannelLayer

from tests.layers.dictbus import DictHubLayer, DictNet
from tests.rig.brokers import start_nats_server
from tests.rig.redis_cluster import RedisCluster
from wshub_channels.layers import InMemoryHubLayer, NatsHubLayer, RedisHubLayer
from wshub_channels.testing import ChannelLayerConformance, LayerBackend
from wshub_channels.testing.jetstream import delete_prefix_streams


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
class TestRedisHubLayerOnCluster(ChannelLayerConformance):
    """A Redis Cluster of 3 masters and 3 replicas: sharded pub/sub, hash-tagged keys."""

    @pytest.fixture
    def layer_backend(self, redis_cluster: RedisCluster) -> LayerBackend:
        prefix = f"confc{uuid.uuid4().hex[:8]}"

        def factory(**config: Any) -> BaseChannelLayer:
            return RedisHubLayer(hosts=[redis_cluster.url], prefix=prefix, **config)

        return LayerBackend("RedisHubLayer (Redis Cluster)", factory, shared_broker=True)


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


def _debian_nats_server() -> str | None:
    """The nats-server of the system's package (Debian's is 2.9.10), if installed."""
    for path in ("/usr/sbin/nats-server", "/usr/bin/nats-server"):
        if os.access(path, os.X_OK):
            return path
    return None


@pytest.fixture(scope="module")
def debian_nats_url() -> Iterator[str]:
    binary = _debian_nats_server()
    if binary is None:
        pytest.skip("no system nats-server package installed (Debian's is nats-server 2.9.10)")
    handle = start_nats_server(binary=binary)  # JetStream and an 8 MB max_payload
    try:
        yield handle.url
    finally:
        handle.stop()


@pytest.mark.integration
class TestNatsHubLayerOnDebianServer(ChannelLayerConformance):
    """The whole suite again on the system's nats-server package (Debian ships 2.9.10),
    started with an 8 MB max_payload: the oldest server the NATS backend is run on."""

    @pytest.fixture
    async def layer_backend(self, debian_nats_url: str) -> AsyncIterator[LayerBackend]:
        prefix = f"deb{uuid.uuid4().hex[:8]}"

        def factory(**config: Any) -> BaseChannelLayer:
            return NatsHubLayer(servers=[debian_nats_url], prefix=prefix, **config)

        yield LayerBackend("NatsHubLayer (system nats-server)", factory, shared_broker=True)
        await delete_prefix_streams(debian_nats_url, prefix)


class TestDictBusBackend(ChannelLayerConformance):
    """A second in-memory backend written as a test fixture (tests/layers/dictbus.py)
    against the public Bus and BrokerStore contracts: the whole suite passes on it."""

    @pytest.fixture
    def layer_backend(self) -> LayerBackend:
        net = DictNet()

        def factory(**config: Any) -> BaseChannelLayer:
            return DictHubLayer(net, **config)

        return LayerBackend("DictHubLayer", factory, shared_broker=True)
