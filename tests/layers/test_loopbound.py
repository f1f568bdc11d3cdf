"""Loop-bound backends (Redis, NATS): an open and a close never overlap."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from wshub_channels.layers import HubLayer, NatsHubLayer, RedisHubLayer

pytestmark = pytest.mark.integration


@pytest.fixture(params=["redis", "nats"])
def layer(request: pytest.FixtureRequest) -> HubLayer:
    prefix = f"lb{uuid.uuid4().hex[:8]}"
    if request.param == "redis":
        return RedisHubLayer(hosts=[request.getfixturevalue("redis_url")], prefix=prefix)
    return NatsHubLayer(servers=[request.getfixturevalue("nats_url")], prefix=prefix)


async def test_close_during_an_open_closes_what_the_open_made(layer: HubLayer) -> None:
    """A close() that comes while the first connect is under way waits for it and then
    closes it: nothing stays connected behind the caller's back."""
    connecting = asyncio.ensure_future(layer.bus.connect())
    await asyncio.sleep(0)  # the open is under way
    await layer.close()
    await connecting
    assert not layer.bus_status().connected
    assert layer.bus.home.opened is False  # type: ignore[attr-defined]


async def test_the_layer_opens_again_after_a_close(layer: HubLayer) -> None:
    """Closed, the layer starts again on the next call and carries messages."""
    await layer.start()
    await layer.close()
    channel = await layer.new_channel()
    await layer.group_add("again", channel)
    await layer.group_send("again", {"type": "back"})
    assert await asyncio.wait_for(layer.receive(channel), 5) == {"type": "back"}
    await layer.close()
