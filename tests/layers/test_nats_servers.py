"""NatsHubLayer on private nats-servers set up otherwise: no JetStream, the 1 MB default
max_payload, and a server that is not there yet."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from channels.exceptions import MessageTooLarge
from django.core.exceptions import ImproperlyConfigured

from tests.rig.brokers import ServerHandle, start_nats_server
from tests.rig.servers import free_port
from tests.rig.timing import async_wait_until
from wshub_channels.conf import get_settings
from wshub_channels.core.wire import Envelope, Kind
from wshub_channels.hub.hub import Hub
from wshub_channels.layers import NatsHubLayer
from wshub_channels.testing import scaled
from wshub_channels.testing.jetstream import delete_prefix_streams

pytestmark = pytest.mark.integration

Make = Callable[..., NatsHubLayer]
MEGABYTE = {"type": "big", "text": "x" * (1024 * 1024)}


@pytest.fixture(scope="module")
def no_jetstream_server() -> Iterator[ServerHandle]:
    handle = start_nats_server(jetstream=False)
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def default_payload_server() -> Iterator[ServerHandle]:
    handle = start_nats_server(config="")  # every server default: max_payload is 1 MB
    yield handle
    handle.stop()


def _maker(url: str, made: list[NatsHubLayer]) -> Make:
    prefix = f"ns{uuid.uuid4().hex[:8]}"

    def make(**config: Any) -> NatsHubLayer:
        layer = NatsHubLayer(servers=[url], prefix=prefix, **config)
        made.append(layer)
        return layer

    return make


async def _close(made: list[NatsHubLayer]) -> None:
    for layer in made:
        await layer.flush()
        await layer.close()


async def test_without_jetstream_only_normal_channels_need_it(
    no_jetstream_server: ServerHandle,
) -> None:
    """Groups, ``!`` channels and hub sends work; normal channels say how to enable JetStream."""
    made: list[NatsHubLayer] = []
    make = _maker(no_jetstream_server.url, made)
    try:
        node_a, node_b = make(), make()
        channel = await node_b.new_channel()
        await node_a.group_add("no.js", channel)  # forwarded to node_b
        await node_a.group_send("no.js", {"type": "group"})
        assert await asyncio.wait_for(node_b.receive(channel), scaled(2)) == {"type": "group"}
        await node_a.send(channel, {"type": "direct"})
        assert await asyncio.wait_for(node_b.receive(channel), scaled(2)) == {"type": "direct"}

        got: list[Envelope] = []
        node_b.set_hub_sink(got.append)
        await node_b.add_interest("r", "lobby", "client-1")

        async def nothing_local() -> None:
            return None

        room = node_a.subject("r", "lobby")
        await node_a.publish_and_deliver(room, Kind.ROOM, "lobby", b"hi", nothing_local)
        await async_wait_until(lambda: bool(got), scaled(2), what="the room message")

        for attempt in (
            node_a.send("worker.queue", {"type": "job"}),
            node_a.receive("worker.queue"),
            node_a.group_add("no.js", "worker.queue"),
        ):
            with pytest.raises(ImproperlyConfigured, match="-js") as raised:
                await asyncio.wait_for(attempt, scaled(2))
            assert "jetstream {}" in str(raised.value)
        assert node_a.bus_status().connected
    finally:
        await _close(made)


async def test_over_max_payload_is_message_too_large(default_payload_server: ServerHandle) -> None:
    """At the 1 MB default, a 1 MB message plus its envelope is refused at send and
    group_send, naming max_payload; the connection stays up for smaller ones."""
    made: list[NatsHubLayer] = []
    make = _maker(default_payload_server.url, made)
    try:
        node_a, node_b = make(), make()
        remote = await node_b.new_channel()
        await node_a.group_add("big", remote)
        for attempt in (
            node_a.send("big.queue", MEGABYTE),
            node_a.send(remote, MEGABYTE),
            node_a.group_send("big", MEGABYTE),
        ):
            with pytest.raises(MessageTooLarge, match="max_payload") as raised:
                await attempt
            assert "1 MB" in str(raised.value)
        assert node_a.bus_status().connected and node_a.stats.publish_errors == 0
        await node_a.group_send("big", {"type": "small"})
        assert await asyncio.wait_for(node_b.receive(remote), scaled(2)) == {"type": "small"}
    finally:
        await _close(made)
        await delete_prefix_streams(default_payload_server.url, made[0].prefix)


async def test_one_megabyte_crosses_an_8mb_server(nats_url: str) -> None:
    """With max_payload at 8 MB, 1 MB messages go through queues, direct sends and groups."""
    made: list[NatsHubLayer] = []
    make = _maker(nats_url, made)
    try:
        node_a, node_b = make(), make()
        remote = await node_b.new_channel()
        await node_a.group_add("big", remote)
        await node_a.send("big.queue", MEGABYTE)
        assert await asyncio.wait_for(node_b.receive("big.queue"), scaled(5)) == MEGABYTE
        await node_a.send(remote, MEGABYTE)
        await node_a.group_send("big", MEGABYTE)
        for _ in range(2):
            assert await asyncio.wait_for(node_b.receive(remote), scaled(5)) == MEGABYTE
    finally:
        await _close(made)
        await delete_prefix_streams(nats_url, made[0].prefix)


@pytest.fixture
async def late_server() -> AsyncIterator[list[ServerHandle]]:
    started: list[ServerHandle] = []
    yield started
    for handle in started:
        await asyncio.to_thread(handle.stop)


async def test_down_until_the_server_comes_then_delivering(
    late_server: list[ServerHandle],
) -> None:
    """Pointed at a closed port, health says the bus is down with an error that carries no
    secret; once a server starts on that port, delivery starts within a bounded wait."""
    port = free_port()
    secret = "pa55-s3cret"
    layer = NatsHubLayer(
        servers=[f"nats://wshub:{secret}@127.0.0.1:{port}"],
        token="t0ken-s3cret",
        connect_timeout=scaled(0.5),
        prefix=f"late{uuid.uuid4().hex[:8]}",
    )
    hub = Hub(layer, get_settings())
    try:
        await hub.start()
        health = hub.health()
        assert not health.ready and not health.bus.connected
        assert health.bus.last_error and "Connect" in health.bus.last_error
        assert secret not in health.bus.last_error and "t0ken" not in health.bus.last_error
        channel = await layer.new_channel()
        await layer.group_add("late", channel)
        started = time.monotonic()
        with pytest.raises(ConnectionError):  # BusUnavailable: the bus is not there
            await layer.group_send("late", {"type": "local.only"})
        assert time.monotonic() - started < scaled(1)
        # Local delivery never waits for the bus.
        assert await asyncio.wait_for(layer.receive(channel), scaled(1)) == {"type": "local.only"}

        late_server.append(await asyncio.to_thread(start_nats_server, port=port))
        up_at = time.monotonic()
        await async_wait_until(lambda: layer.bus_status().connected, scaled(5), what="the bus")
        print(f"\nbus up {1000 * (time.monotonic() - up_at):.0f} ms after the server answered")
        assert hub.health().ready and hub.health().bus.last_error is None
        sender = NatsHubLayer(servers=[late_server[0].url], prefix=layer.prefix)
        try:
            await sender.group_send("late", {"type": "on.time"})
            got = await asyncio.wait_for(layer.receive(channel), scaled(2))
            assert got == {"type": "on.time"}
        finally:
            await sender.close()
    finally:
        await hub.shutdown()
