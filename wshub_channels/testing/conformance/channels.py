"""Conformance cases for channels: sending, receiving, names, ownership and close."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from channels.layers import BaseChannelLayer

from ...errors import ForeignChannel, LayerClosed
from ..timing import scaled
from .io import LayerFactory, recv, still_waiting

__all__ = ["ChannelCases"]


class ChannelCases:
    """One channel at a time: order, waiting, cancellation, names and ownership."""

    async def test_send_then_receive_in_order(self, layer: BaseChannelLayer) -> None:
        """Messages on one channel arrive in the order they were sent."""
        channel = await layer.new_channel()
        for n in range(3):
            await layer.send(channel, {"type": "test.message", "n": n})
        assert [(await recv(layer, channel))["n"] for _ in range(3)] == [0, 1, 2]

    async def test_normal_channel_send_receive(self, layer: BaseChannelLayer) -> None:
        """A normal (non-``!``) channel is a queue too."""
        await layer.send("conformance.work", {"type": "job", "value": 42})
        assert await recv(layer, "conformance.work") == {"type": "job", "value": 42}

    async def test_new_channel_names_are_unique_and_valid(self, layer: BaseChannelLayer) -> None:
        """new_channel returns distinct process-local names under 100 characters."""
        names = {await layer.new_channel() for _ in range(50)}
        assert len(names) == 50
        for name in names:
            assert "!" in name and len(name) < 100
            layer.require_valid_channel_name(name)

    async def test_receive_waits_for_a_later_send(self, layer: BaseChannelLayer) -> None:
        """A waiting receive is woken by a send that comes after it."""
        channel = await layer.new_channel()
        waiter = asyncio.ensure_future(layer.receive(channel))
        assert await still_waiting(waiter)
        await layer.send(channel, {"type": "late"})
        assert await asyncio.wait_for(waiter, scaled(2)) == {"type": "late"}

    async def test_cancelled_receive_loses_nothing(self, layer: BaseChannelLayer) -> None:
        """Cancelling a receive, then sending, keeps the message for the next receive."""
        channel = await layer.new_channel()
        waiter = asyncio.ensure_future(layer.receive(channel))
        assert await still_waiting(waiter)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        await layer.send(channel, {"type": "after.cancel"})
        assert await recv(layer, channel) == {"type": "after.cancel"}

    async def test_receive_on_another_instances_channel_fails_at_once(
        self, make_layer: LayerFactory
    ) -> None:
        """receive() on a ``!`` channel another instance handed out raises ForeignChannel
        (a ValueError) at once."""
        layer, other = make_layer(), make_layer()
        foreign = await other.new_channel()
        with pytest.raises(ForeignChannel, match="another node"):
            await asyncio.wait_for(layer.receive(foreign), scaled(1))

    @pytest.mark.parametrize(
        "name", ["not-client-prefix!local_part", "conformance.plain!abc", "bare!", "a.b.c!"]
    )
    async def test_receive_on_a_channel_never_handed_out_fails_at_once(
        self, layer: BaseChannelLayer, name: str
    ) -> None:
        """receive() on a ``!`` channel that new_channel never returned raises
        ForeignChannel at once, whatever its prefix: nothing could ever fill it."""
        with pytest.raises(ForeignChannel):
            await asyncio.wait_for(layer.receive(name), scaled(1))

    async def test_receive_on_own_channels_works_after_a_release(
        self, make_layer: LayerFactory
    ) -> None:
        """A channel this instance handed out stays its own: after its reader was
        cancelled and the channel released, a new receive on it still works."""
        layer = make_layer(release_grace=0.01)
        channel = await layer.new_channel()
        waiter = asyncio.ensure_future(layer.receive(channel))
        assert await still_waiting(waiter)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        await asyncio.sleep(scaled(0.1))
        await layer.send(channel, {"type": "back"})
        assert await recv(layer, channel) == {"type": "back"}

    async def test_close_ends_waiting_receives(self, make_layer: LayerFactory) -> None:
        """close() ends receives waiting on ``!`` and normal channels with LayerClosed.

        The layer starts again on the next call.
        """
        layer = make_layer()
        channel = await layer.new_channel()
        waiters: list[asyncio.Future[Any]] = [
            asyncio.ensure_future(layer.receive(channel)),
            asyncio.ensure_future(layer.receive("conformance.closing")),
        ]
        for waiter in waiters:
            assert await still_waiting(waiter)
        await layer.close()  # type: ignore[attr-defined]
        for waiter in waiters:
            with pytest.raises(LayerClosed):
                await asyncio.wait_for(waiter, scaled(2))
        again = await layer.new_channel()
        await layer.send(again, {"type": "restarted"})
        assert await recv(layer, again) == {"type": "restarted"}
        await layer.send("conformance.closing", {"type": "restarted"})
        assert await recv(layer, "conformance.closing") == {"type": "restarted"}

    @pytest.mark.parametrize(
        "name", ["", "¯\\_(ツ)_/¯", "a" * 100, "has space", "bad*char", 42, None, b"bytes"]
    )
    async def test_invalid_channel_names_raise_type_error(
        self, layer: BaseChannelLayer, name: Any
    ) -> None:
        """send, receive and group_add reject invalid channel names with TypeError."""
        with pytest.raises(TypeError):
            await layer.send(name, {"type": "x"})
        with pytest.raises(TypeError):
            await layer.receive(name)
        with pytest.raises(TypeError):
            await layer.group_add("fine", name)
