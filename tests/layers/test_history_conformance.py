"""The room-history conformance suite, run against every layer that keeps history."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from channels.layers import BaseChannelLayer

from tests.rig.brokers import start_nats_server
from tests.rig.redis_cluster import RedisCluster
from wshub_channels.core.history import HistoryRule, Position
from wshub_channels.layers import InMemoryHubLayer, NatsHubLayer, RedisHubLayer
from wshub_channels.layers.redis.history import room_tag
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
class TestRedisClusterHistory(HistoryConformance):
    """A Redis Cluster of 3 masters: each room's two keys share its hash tag (one slot)."""

    @pytest.fixture
    def layer_backend(self, redis_cluster: RedisCluster) -> LayerBackend:
        prefix = f"histc{uuid.uuid4().hex[:8]}"

        def factory(**config: Any) -> BaseChannelLayer:
            return RedisHubLayer(hosts=[redis_cluster.url], prefix=prefix, **config)

        return LayerBackend("RedisHubLayer (Redis Cluster)", factory, shared_broker=True)


@pytest.mark.integration
class TestRedisHistory(HistoryConformance):
    """Real Redis; each test gets its own key prefix so runs never see each other."""

    @pytest.fixture
    def layer_backend(self, redis_url: str) -> LayerBackend:
        prefix = f"hist{uuid.uuid4().hex[:8]}"

        def factory(**config: Any) -> BaseChannelLayer:
            return RedisHubLayer(hosts=[redis_url], prefix=prefix, **config)

        return LayerBackend("RedisHubLayer", factory, shared_broker=True)

    async def test_one_hash_tag_per_room_and_the_expiries(
        self, make_layer: Callable[..., Any], redis_url: str
    ) -> None:
        """A stream and a meta hash, both under the room's hash tag (one Cluster slot)."""
        layer = make_layer()
        room = f"k\u00f6ln {uuid.uuid4().hex[:6]}"
        await layer.history_append(room, b"a", HistoryRule(size=5, ttl=30))
        top = await layer.history_append(room, b"b", HistoryRule(size=5, ttl=30))
        client = aioredis.Redis.from_url(redis_url)
        try:
            keys = sorted([k.decode() async for k in client.scan_iter(match=f"{layer.prefix}:*")])
            tag = room_tag(room)
            assert keys == [f"{layer.prefix}:rh:{{{tag}}}", f"{layer.prefix}:rhm:{{{tag}}}"]
            stream, meta = keys
            assert await client.type(stream) == b"stream" and await client.type(meta) == b"hash"
            assert 0 < await client.pttl(stream) <= 30_000
            assert 30_000 < await client.pttl(meta) <= 86_400_000
            assert await client.hgetall(meta) == {
                b"epoch": top.epoch.encode(),
                b"top": b"2",
                b"ttl": b"30000",
            }
            assert [entry_id for entry_id, _ in await client.xrange(stream)] == [b"1-0", b"2-0"]
        finally:
            await client.aclose()

    async def test_numbers_beyond_any_room_are_answered(
        self, make_layer: Callable[..., Any], room: str
    ) -> None:
        """A reader's huge offset or limit, a rule's huge size or ttl: answers, not errors."""
        layer = make_layer()
        huge = HistoryRule(size=10**30, ttl=1e300)
        first = await layer.history_append(room, b"a", huge)
        top = await layer.history_append(room, b"b", huge)
        ahead = await layer.history_read(room, Position(10**30, first.epoch), 10**30)
        assert ahead.entries == [] and not ahead.complete and ahead.position == top
        page = await layer.history_read(room, Position(0, ""), 10**30)
        assert [e.payload for e in page.entries] == [b"a", b"b"] and page.complete
        newest = await layer.history_read(room, None, 10**30)
        assert [e.offset for e in newest.entries] == [1, 2] and newest.complete


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
