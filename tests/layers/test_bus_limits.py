"""What the core does with a bus's limits and reports: ``max_payload`` and slow consumers."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from channels.exceptions import MessageTooLarge

from tests.rig.timing import async_wait_until
from wshub_channels import signals
from wshub_channels.conf import get_settings
from wshub_channels.errors import BusUnavailable
from wshub_channels.hub.hub import Hub
from wshub_channels.layers import Backend, InMemoryHubLayer
from wshub_channels.layers.memory import MemoryBus, MemoryStore
from wshub_channels.testing import scaled

pytestmark = pytest.mark.unit

LIMIT = 2000


class LimitedBus(MemoryBus):
    """A memory bus that, like NATS, takes at most ``LIMIT`` bytes per message."""

    payload_limit_hint = "raise the bus limit"

    @property
    def max_payload(self) -> int | None:
        return LIMIT


class LimitedLayer(InMemoryHubLayer):
    def make_backend(self) -> Backend:
        return Backend(LimitedBus(self.broker), MemoryStore(self.broker))


def _message(size: int) -> dict[str, Any]:
    return {"type": "x", "text": "y" * size}


async def test_over_the_bus_limit_is_refused_before_anything_is_sent() -> None:
    """group_send, a remote direct send and a queued send over max_payload raise
    MessageTooLarge naming the limit and the hint; no member gets anything."""
    node_a, node_b = LimitedLayer(bus="limits"), LimitedLayer(bus="limits")
    local, remote = await node_a.new_channel(), await node_b.new_channel()
    await node_a.group_add("g", local)
    await node_a.group_add("g", remote)
    for attempt in (
        node_a.group_send("g", _message(LIMIT)),
        node_a.send(remote, _message(LIMIT)),
        node_a.send("worker.queue", _message(LIMIT)),
    ):
        with pytest.raises(MessageTooLarge, match=f"at most {LIMIT}. raise the bus limit"):
            await attempt
    await node_a.group_send("g", _message(LIMIT // 2))
    for layer, channel in ((node_a, local), (node_b, remote)):
        got = await asyncio.wait_for(layer.receive(channel), scaled(1))
        assert got == _message(LIMIT // 2)
    # A local ``!`` channel never touches the bus: its sends are not limited by it.
    await node_a.send(local, _message(LIMIT))
    assert await asyncio.wait_for(node_a.receive(local), scaled(1)) == _message(LIMIT)
    assert node_a.stats.publish_errors == 0


async def test_slow_consumer_is_counted_and_signalled() -> None:
    """A "slow_consumer" report counts in LayerStats and reaches the hub_error signal."""
    layer = InMemoryHubLayer()
    hub = Hub(layer, get_settings())
    seen: list[Exception] = []

    async def on_hub_error(sender: Any, client: Any, error: Exception, **kwargs: Any) -> None:
        seen.append(error)

    signals.hub_error.connect(on_hub_error, weak=False)
    try:
        await hub.start()
        layer.transport.report("slow_consumer", RuntimeError("slow consumer, messages dropped"))
        assert layer.stats.slow_consumer == 1
        await async_wait_until(lambda: seen, scaled(1), what="the hub_error signal")
        assert isinstance(seen[0], BusUnavailable) and "slow_consumer" in str(seen[0])
    finally:
        signals.hub_error.disconnect(on_hub_error)
        await hub.shutdown()


async def test_a_remote_call_over_the_bus_limit_is_refused() -> None:
    """A call to another node whose arguments the bus cannot carry raises
    MessageTooLarge (not BusUnavailable), and counts no bus failure."""
    node_a, node_b = LimitedLayer(bus="limits-call"), LimitedLayer(bus="limits-call")
    await node_b.start()
    seen: list[int] = []

    async def echo(text: str) -> int:
        seen.append(len(text))
        return len(text)

    node_b.register_op("echo", echo)
    assert await node_a.remote_call(node_b.node_id, "echo", "small") == 5
    with pytest.raises(MessageTooLarge, match="raise the bus limit"):
        await node_a.remote_call(node_b.node_id, "echo", "y" * LIMIT)
    assert seen == [5] and node_a.stats.publish_errors == 0
    await node_a.close()
    await node_b.close()
