"""A broker restart that loses the history: the hub reports it, never a silent gap.

Two hubs in this process on a Redis this test owns (it keeps nothing on
disk). A member joins a history room, sees some messages, leaves; the broker
restarts empty; messages are sent again (a new epoch, from offset 1); the
member comes back with its old position and is told ``recovered=False``
with the new epoch, then gets live messages.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from channels.layers import channel_layers
from django.test import override_settings

from tests.rig.brokers import ServerHandle, start_redis_server
from tests.rig.timing import async_wait_until
from wshub_channels import HubConsumer, Position, get_hub
from wshub_channels.errors import BusUnavailable
from wshub_channels.hub.hub import Hub
from wshub_channels.layers import RedisHubLayer
from wshub_channels.testing import HubCommunicator, scaled

pytestmark = pytest.mark.integration

A, B = "wshub-restart-a", "wshub-restart-b"
WAIT = scaled(5)
ROOM = "chat.restart"


class Member(HubConsumer):
    channel_layer_alias = B


@pytest.fixture
def private_redis() -> Iterator[ServerHandle]:
    handle = start_redis_server()
    yield handle
    handle.stop()


@pytest.fixture
async def hubs(private_redis: ServerHandle) -> AsyncIterator[tuple[Hub, Hub]]:
    prefix = f"hb{uuid.uuid4().hex[:8]}"
    layers = {alias: RedisHubLayer(hosts=[private_redis.url], prefix=prefix) for alias in (A, B)}
    previous = {alias: channel_layers.set(alias, layer) for alias, layer in layers.items()}
    with override_settings(WSHUB={"HISTORY": {"chat.*": {"size": 100}}}):
        made = (get_hub(A), get_hub(B))
        for hub in made:
            await hub.start()
        yield made
        for layer in layers.values():
            await layer.close()
    for alias, layer in previous.items():
        if layer is None:
            channel_layers.backends.pop(alias, None)
        else:
            channel_layers.set(alias, layer)


async def member() -> tuple[HubCommunicator, Any]:
    comm = HubCommunicator(Member.as_asgi(), "/ws/")
    connected, _ = await comm.connect(timeout=WAIT)
    assert connected and comm.client is not None
    return comm, comm.client


async def sent_again(hub: Hub, text: str) -> None:
    """Send once the bus is back (a send during the restart is refused, never lost)."""

    async def accepted() -> bool:
        try:
            await hub.broadcast_to_room(ROOM, text)
        except BusUnavailable:
            return False
        return True

    await async_wait_until(accepted, scaled(15), interval=scaled(0.2), what="a send accepted")


async def test_a_restart_empty_is_reported_with_a_new_epoch(
    private_redis: ServerHandle, hubs: tuple[Hub, Hub]
) -> None:
    a, _ = hubs
    comm, client = await member()
    await client.join_room(ROOM)
    for n in range(3):
        await a.broadcast_to_room(ROOM, f"m{n}")
    assert [await comm.receive_from(timeout=WAIT) for _ in range(3)] == ["m0", "m1", "m2"]
    seen = (await a.history(ROOM, limit=0)).position
    assert seen.offset == 3
    await comm.disconnect(timeout=WAIT)

    private_redis.restart()
    await sent_again(a, "after")
    now = (await a.history(ROOM, limit=0)).position
    assert now.epoch != seen.epoch and now.offset == 1

    comm, client = await member()
    recovery = await client.join_room(ROOM, since=seen)
    assert recovery.recovered is False and recovery.replayed == 0
    assert recovery.position == now
    assert await comm.receive_nothing(timeout=scaled(0.3))  # nothing replayed
    await a.broadcast_to_room(ROOM, "live")
    assert await comm.receive_from(timeout=WAIT) == "live"
    again = await client.join_room("chat.other", since=Position(0, ""))
    assert again.recovered is True and again.replayed == 0
    await asyncio.wait_for(comm.disconnect(timeout=WAIT), WAIT * 2)
