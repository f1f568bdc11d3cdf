"""Conformance cases for capacity and expiry."""

from __future__ import annotations

import asyncio

import pytest
from channels.exceptions import ChannelFull
from channels.layers import BaseChannelLayer

from ..timing import async_wait_until, scaled
from .io import LayerFactory, recv

__all__ = ["CapacityCases"]


class CapacityCases:
    """Per-channel capacity (with patterns) and message expiry."""

    async def test_capacity_raises_channel_full(self, layer: BaseChannelLayer) -> None:
        """A send to a channel at capacity raises ChannelFull; draining makes room."""
        channel = await layer.new_channel()
        for n in range(3):
            await layer.send(channel, {"type": "fill", "n": n})
        with pytest.raises(ChannelFull):
            await layer.send(channel, {"type": "overflow"})
        await recv(layer, channel)
        await layer.send(channel, {"type": "fits.again"})

    async def test_normal_channel_capacity(self, layer: BaseChannelLayer) -> None:
        """Capacity applies to normal channels too."""
        for n in range(3):
            await layer.send("conformance.full", {"type": "fill", "n": n})
        with pytest.raises(ChannelFull):
            await layer.send("conformance.full", {"type": "overflow"})

    async def test_capacity_patterns_glob_and_regex(self, layer: BaseChannelLayer) -> None:
        """channel_capacity globs and compiled regexes set per-channel capacity."""
        await layer.send("tiny.one", {"type": "a"})
        with pytest.raises(ChannelFull):
            await layer.send("tiny.one", {"type": "b"})
        await layer.send("re.two", {"type": "a"})
        await layer.send("re.two", {"type": "b"})
        with pytest.raises(ChannelFull):
            await layer.send("re.two", {"type": "c"})

    async def test_capacity_is_per_process_local_channel(self, layer: BaseChannelLayer) -> None:
        """One full ``!`` channel does not block its neighbours in the same process."""
        full, neighbour = await layer.new_channel(), await layer.new_channel()
        for n in range(3):
            await layer.send(full, {"type": "fill", "n": n})
        with pytest.raises(ChannelFull):
            await layer.send(full, {"type": "overflow"})
        await layer.send(neighbour, {"type": "still.fine"})
        assert await recv(layer, neighbour) == {"type": "still.fine"}

    async def test_unread_messages_expire(self, make_layer: LayerFactory) -> None:
        """A message not read within ``expiry`` is dropped; later ones arrive."""
        layer = make_layer(expiry=scaled(0.2))
        channel = await layer.new_channel()
        await layer.send(channel, {"type": "old"})
        await asyncio.sleep(scaled(0.3))  # past the expiry: "old" must not arrive
        await layer.send(channel, {"type": "new"})
        assert await recv(layer, channel) == {"type": "new"}

    async def test_expired_messages_free_capacity(self, make_layer: LayerFactory) -> None:
        """Expired messages no longer count against capacity."""
        layer = make_layer(expiry=scaled(0.2), capacity=1)
        channel = await layer.new_channel()
        await layer.send(channel, {"type": "old"})

        async def fits() -> bool:
            try:
                await layer.send(channel, {"type": "fits"})
            except ChannelFull:
                return False
            return True

        await async_wait_until(fits, scaled(2), what="the expired message to free its slot")
        assert await recv(layer, channel) == {"type": "fits"}
