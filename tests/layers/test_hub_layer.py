"""Behaviour of the shared hub-layer core beyond the Channels spec."""

from __future__ import annotations

import asyncio
from typing import Any

import msgpack
import pytest
from channels.exceptions import ChannelFull
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import channel_layers
from channels.testing import WebsocketCommunicator

from tests.rig.timing import async_wait_until
from wshub_channels.core.names import channel_node
from wshub_channels.core.wire import Kind, encode_envelope
from wshub_channels.layers import InMemoryHubLayer
from wshub_channels.testing import scaled


class _Member(AsyncWebsocketConsumer):  # type: ignore[misc]
    channel_layer_alias = "churn"
    groups = ["churn.room", "churn.all"]


async def test_channel_names_carry_the_node_id() -> None:
    """new_channel names look like <prefix>.<node_id>!<random> and name their node."""
    layer = InMemoryHubLayer(node_id="web")
    name = await layer.new_channel()
    assert name.startswith("specific.web") and len(layer.node_id) == 12
    assert channel_node(name) == layer.node_id
    assert channel_node(await layer.new_channel("custom")) == layer.node_id


async def test_connect_disconnect_10000_times_leaves_nothing_behind() -> None:
    """10,000 stock consumers joining two groups and leaving leave every table empty."""
    layer = InMemoryHubLayer(release_grace=0.0)
    channel_layers.set("churn", layer)
    try:
        for _ in range(100):
            batch = [WebsocketCommunicator(_Member.as_asgi(), "/ws/") for _ in range(100)]
            results = await asyncio.gather(*(c.connect(timeout=scaled(5)) for c in batch))
            assert all(ok for ok, _ in results)
            assert layer.sizes()["memberships"] == 200
            await asyncio.gather(*(c.disconnect() for c in batch))
            await asyncio.sleep(0)
        await async_wait_until(
            lambda: not any(layer.sizes().values()), scaled(2), what="every table to empty"
        )
        assert layer.sizes() == dict.fromkeys(layer.sizes(), 0)
    finally:
        channel_layers.backends.pop("churn", None)


async def test_release_waits_for_grace_and_cancels_on_new_receive() -> None:
    """A cancelled receive frees the channel only if no new receive starts within the grace."""
    layer = InMemoryHubLayer(release_grace=scaled(0.1))
    kept, freed = await layer.new_channel(), await layer.new_channel()
    for channel in (kept, freed):
        await layer.group_add("grace", channel)
        reader = asyncio.ensure_future(layer.receive(channel))
        await asyncio.sleep(0)
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
    again = asyncio.ensure_future(layer.receive(kept))
    # Both releases were due at the same time, kept's first: once freed is gone,
    # kept would be gone too had the new receive not cancelled its release.
    await async_wait_until(
        lambda: freed not in (layer.local_members("g", "grace") or {}),
        scaled(2),
        what="the release of the channel nobody reads",
    )
    assert list(layer.local_members("g", "grace") or ()) == [kept]
    await layer.group_send("grace", {"type": "still.member"})
    assert await asyncio.wait_for(again, scaled(1)) == {"type": "still.member"}


async def test_unknown_envelope_version_is_ignored_and_counted() -> None:
    """An envelope from a newer major version is dropped, counted, and harms nothing."""
    layer = InMemoryHubLayer(bus="version-test")
    other = InMemoryHubLayer(bus="version-test")
    channel = await layer.new_channel()
    await layer.group_add("versions", channel)
    future = msgpack.packb([99, 0, Kind.GROUP, other.node_id, "versions", b"", None])
    await other.start()
    await other.bus.publish(layer.subject("g", "versions"), future)
    await other.bus.publish(layer.subject("g", "versions"), b"\xc1garbage")
    assert layer.stats.unknown_version == 1 and layer.stats.bad_envelopes == 1
    await other.group_send("versions", {"type": "fine"})
    assert await asyncio.wait_for(layer.receive(channel), scaled(1)) == {"type": "fine"}


async def test_own_echo_is_suppressed() -> None:
    """A node ignores envelopes carrying its own node id: it delivered those already."""
    layer = InMemoryHubLayer(bus="echo-test")
    channel = await layer.new_channel()
    await layer.group_add("echo", channel)
    payload = msgpack.packb({"type": "echo"})
    envelope = encode_envelope(Kind.GROUP, layer.node_id, "echo", payload)
    await layer.bus.publish(layer.subject("g", "echo"), envelope)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(layer.receive(channel), scaled(0.1))


async def test_group_send_is_one_publish_whatever_the_members() -> None:
    """group_send to 500 members on two nodes publishes once on the bus."""
    node_a = InMemoryHubLayer(bus="publish-count")
    node_b = InMemoryHubLayer(bus="publish-count")
    published: list[str] = []
    original = node_a.bus.publish

    async def counting(subject: str, data: bytes) -> None:
        published.append(subject)
        await original(subject, data)

    node_a.bus.publish = counting  # type: ignore[method-assign]
    channels = []
    for node in (node_a, node_b):
        for _ in range(250):
            channel = await node.new_channel()
            await node.group_add("wide", channel)
            channels.append((node, channel))
    await node_a.group_send("wide", {"type": "wide"})
    assert published == [node_a.subject("g", "wide")]
    for node, channel in channels:
        message: dict[str, Any] = await asyncio.wait_for(node.receive(channel), scaled(1))
        assert message == {"type": "wide"}


async def test_interest_follows_local_members() -> None:
    """A node subscribes to a group's subject only while it has a local member."""
    layer = InMemoryHubLayer(bus="interest-test")
    subject = layer.subject("g", "interest")
    channel = await layer.new_channel()
    assert layer.broker.subscriptions.get(subject) is None
    await layer.group_add("interest", channel)
    assert layer.bus in layer.broker.subscriptions[subject]
    await layer.group_discard("interest", channel)
    assert subject not in layer.broker.subscriptions


async def test_direct_send_to_full_remote_channel_is_counted() -> None:
    """The owning node applies capacity to remote sends and counts the drop."""
    sender = InMemoryHubLayer(bus="remote-full")
    owner = InMemoryHubLayer(bus="remote-full", capacity=1)
    channel = await owner.new_channel()
    await sender.send(channel, {"type": "fits"})
    await sender.send(channel, {"type": "dropped"})
    assert owner.stats.full_drops == 1
    assert await asyncio.wait_for(owner.receive(channel), scaled(1)) == {"type": "fits"}


async def test_forwarded_group_add_to_gone_node_is_a_no_op() -> None:
    """group_add for a channel whose node nobody serves any more does nothing, like stock layers."""
    layer = InMemoryHubLayer(bus="vanished", request_timeout=scaled(0.1))
    await layer.group_add("g", "specific.zzzzzzzzzzzz!abc")
    assert layer.local_members("g", "g") is None
    assert layer.sizes() == dict.fromkeys(layer.sizes(), 0)
    await layer.group_discard("g", "specific.zzzzzzzzzzzz!abc")
    assert layer.sizes()["interest_subscriptions"] == 0


async def test_forwarded_group_add_to_silent_node_times_out() -> None:
    """A node that is there but never answers makes the forwarded group_add raise HubTimeout."""
    from wshub_channels.errors import HubTimeout

    layer = InMemoryHubLayer(bus="silent", request_timeout=scaled(0.1))
    mute = InMemoryHubLayer(bus="silent")
    channel = await mute.new_channel()

    async def never(subject: str, data: bytes) -> bytes | None:
        await asyncio.sleep(3600)
        return None

    mute.bus.set_request_handler(never)
    with pytest.raises(HubTimeout):
        await layer.group_add("g", channel)


async def test_expired_local_message_is_counted() -> None:
    """A message on a local ! channel that expires unread shows in stats.expired."""
    layer = InMemoryHubLayer(expiry=scaled(0.05), capacity=1)
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "old"})
    assert layer.stats.expired == 0

    async def fits() -> bool:
        try:
            await layer.send(channel, {"type": "new"})
        except ChannelFull:
            return False
        return True

    await async_wait_until(fits, scaled(2), what="the old message to expire")
    assert layer.stats.expired == 1
    assert await asyncio.wait_for(layer.receive(channel), scaled(1)) == {"type": "new"}
