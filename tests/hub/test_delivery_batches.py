"""Delivery in batches: a broadcast beyond ``broadcast_batch_size`` is awaited to its end,
counted once, and a later broadcast never overtakes it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests.hub.kit import FakeClient, FakeQueue, make_parts, settings
from wshub_channels.core.wire import Kind
from wshub_channels.hub.delivery import Delivery
from wshub_channels.layers import InMemoryHubLayer

pytestmark = pytest.mark.unit


@pytest.fixture
async def layer() -> AsyncIterator[InMemoryHubLayer]:
    made = InMemoryHubLayer()
    yield made
    await made.close()


async def test_a_batched_broadcast_is_delivered_whole_in_order_and_counted_once(layer) -> None:
    parts = make_parts(layer, settings(CONFIG={"broadcast_batch_size": 3}))
    delivery = Delivery(*parts.args())
    queues = []
    for i in range(10):
        queue = FakeQueue()
        parts.registry.add(FakeClient(f"c!{i:02}", layer), queue)
        queues.append(queue)
    first = asyncio.ensure_future(delivery.send(Kind.BROADCAST, "", "s", "one", (), None))
    for _ in range(100):  # until the first is being fanned out
        if not delivery.fanout.idle:
            break
        await asyncio.sleep(0)
    assert 0 < sum(len(q.messages) for q in queues) < 10
    second = asyncio.ensure_future(delivery.send(Kind.BROADCAST, "", "s", "two", (), None))
    await asyncio.gather(first, second)
    assert [[m["text"] for m in q.messages] for q in queues] == [["one", "two"]] * 10
    assert parts.policy.metrics.stats()["messages_sent"] == 20
    assert delivery.fanout.idle
