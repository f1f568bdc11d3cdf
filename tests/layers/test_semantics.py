"""Channels semantics the peers' own suites check, beyond the public conformance cases."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from wshub_channels.errors import ForeignChannel, HubError, LayerClosed
from wshub_channels.layers import HubLayer, InMemoryHubLayer, RedisHubLayer
from wshub_channels.testing import scaled

#: ``make(bus)``: a layer; layers made with one ``bus`` name share a broker.
Make = Callable[..., HubLayer]


@pytest.fixture(params=["memory", pytest.param("redis-cluster", marks=pytest.mark.integration)])
def make(request: pytest.FixtureRequest) -> Make:
    """The in-memory layer, and RedisHubLayer on a Redis Cluster (3 masters)."""
    if request.param == "memory":
        return lambda bus=None: InMemoryHubLayer(bus=bus) if bus else InMemoryHubLayer()
    cluster: Any = request.getfixturevalue("redis_cluster")
    prefix = f"sem{uuid.uuid4().hex[:8]}"
    return lambda bus=None: RedisHubLayer(hosts=[cluster.url], prefix=prefix)


async def test_foreign_channel_names_the_channel_and_its_node(make: Make) -> None:
    """ForeignChannel is a HubError and a ValueError naming the channel and its owner."""
    mine, theirs = make(), make()
    channel = await theirs.new_channel()
    with pytest.raises(ForeignChannel) as caught:
        await mine.receive(channel)
    assert isinstance(caught.value, HubError) and isinstance(caught.value, ValueError)
    assert channel in str(caught.value) and theirs.node_id in str(caught.value)
    await mine.close()
    await theirs.close()


async def test_reserved_key_is_refused_before_anything_is_published(make: Make) -> None:
    """group_send with __asgi_channel__ raises before the bus sees a publish."""
    layer = make("semantics-reserved")
    peer = make("semantics-reserved")
    channel = await peer.new_channel()
    await peer.group_add("g", channel)
    with pytest.raises(ValueError, match="__asgi_channel__"):
        await layer.group_send("g", {"type": "x", "__asgi_channel__": "y"})
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(peer.receive(channel), scaled(0.2))
    await layer.close()
    await peer.close()


async def test_a_caller_cancelling_its_receive_still_sees_cancelled_error(make: Make) -> None:
    """Only close() turns a wait into LayerClosed; the caller's own cancel stays a cancel."""
    layer = make()
    for channel in (await layer.new_channel(), "semantics.normal"):
        waiter = asyncio.ensure_future(layer.receive(channel))
        await asyncio.sleep(0)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
    await layer.close()


async def test_close_from_another_thread_ends_a_receive_here(make: Make) -> None:
    """A close() made on another thread's loop ends receives waiting on this loop."""
    layer = make()
    channel = await layer.new_channel()
    waiters = [
        asyncio.ensure_future(layer.receive(channel)),
        asyncio.ensure_future(layer.receive("semantics.other-thread")),
    ]
    await asyncio.sleep(0)
    thread = threading.Thread(target=asyncio.run, args=(layer.close(),))
    thread.start()
    await asyncio.get_running_loop().run_in_executor(None, thread.join)
    for waiter in waiters:
        with pytest.raises(LayerClosed):
            await asyncio.wait_for(waiter, scaled(2))
