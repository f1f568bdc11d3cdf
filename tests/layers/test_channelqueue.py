"""One channel's bounded queue: capacity, expiry and hand-off."""

from __future__ import annotations

import asyncio

import pytest

from wshub_channels.layers.channelqueue import ChannelQueue

pytestmark = pytest.mark.unit


async def test_channel_queue_capacity_expiry_and_handoff() -> None:
    """A queue refuses past capacity, drops expired heads, and hands off to a waiter."""
    queue = ChannelQueue("q", capacity=2, expiry=10)
    assert queue.put("a", now=0) and queue.put("b", now=0) and not queue.put("c", now=0)
    assert queue.put("d", now=11)  # both expired at t=10, so room again
    assert queue.expired == 2
    assert queue.get_nowait(now=11) == (True, "d")
    waiter = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    assert queue.put("direct", now=12) and not queue.items
    assert await waiter == "direct"
