"""A channel-layer conformance suite, written once and run against every layer.

Subclass :class:`ChannelLayerConformance` and provide a ``layer_backend``
fixture returning a :class:`LayerBackend`. Layers made through the
``make_layer`` fixture are flushed and closed after each test. Cases that
need two instances sharing a broker (worker queues, cross-instance groups,
direct sends and forwarded ``group_add``) skip, with a reason, for backends
whose instances do not share one.

The cases live in this module (channels, bad input, expiry) and in
:mod:`.group_cases` (groups, a stock consumer, several instances). The suite
needs pytest with an asyncio plugin in auto mode (pytest-asyncio)
and Django settings configured.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from channels.exceptions import ChannelFull
from channels.layers import BaseChannelLayer

from .group_cases import GroupCases
from .layer_io import LayerFactory, nothing, recv, still_waiting
from .timing import async_wait_until, scaled

__all__ = ["ChannelLayerConformance", "LayerBackend"]


@dataclass(frozen=True)
class LayerBackend:
    """How to build one layer under test.

    ``factory(**config)`` returns a new layer instance; ``shared_broker`` says
    whether two instances made by it reach each other, as processes do.
    """

    name: str
    factory: LayerFactory
    shared_broker: bool


class ChannelLayerConformance(GroupCases):
    """The Channels layer spec, as tests. Subclasses provide ``layer_backend``."""

    @pytest.fixture
    def layer_backend(self) -> LayerBackend:
        raise NotImplementedError("provide a layer_backend fixture returning a LayerBackend")

    @pytest.fixture
    async def make_layer(self, layer_backend: LayerBackend) -> AsyncIterator[LayerFactory]:
        made: list[BaseChannelLayer] = []

        def make(**config: Any) -> BaseChannelLayer:
            layer = layer_backend.factory(**config)
            made.append(layer)
            return layer

        yield make
        for layer in made:
            await layer.flush()
            close = getattr(layer, "close", None)
            if close is not None:
                await close()

    @pytest.fixture
    def layer(self, make_layer: LayerFactory) -> BaseChannelLayer:
        return make_layer(capacity=3, channel_capacity={"tiny*": 1, re.compile(r"^re\."): 2})

    @pytest.fixture
    def shared(self, layer_backend: LayerBackend) -> None:
        if not layer_backend.shared_broker:
            pytest.skip(f"{layer_backend.name} instances do not share a broker")

    # -- channels --------------------------------------------------------------

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

    async def test_cancelled_receive_losesnothing(self, layer: BaseChannelLayer) -> None:
        """Cancelling a receive, then sending, keeps the message for the next receive."""
        channel = await layer.new_channel()
        waiter = asyncio.ensure_future(layer.receive(channel))
        assert await still_waiting(waiter)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        await layer.send(channel, {"type": "after.cancel"})
        assert await recv(layer, channel) == {"type": "after.cancel"}

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

    async def test_one_megabyte_message(self, layer: BaseChannelLayer) -> None:
        """A message of 1 MB goes through intact."""
        channel = await layer.new_channel()
        payload = "x" * (1024 * 1024)
        await layer.send(channel, {"type": "big", "text": payload, "bytes": b"\x00\xff" * 1000})
        message = await recv(layer, channel, wait=5)
        assert message["text"] == payload and message["bytes"] == b"\x00\xff" * 1000

    async def test_message_types_round_trip(self, layer: BaseChannelLayer) -> None:
        """Every spec type survives; tuples become lists."""
        channel = await layer.new_channel()
        sent = {"type": "t", "s": "é", "b": b"\x01", "i": -(2**63), "f": 1.5, "t": True}
        sent |= {"n": None, "l": [1, [2]], "d": {"k": {"j": 1}}, "tu": (1, 2)}
        await layer.send(channel, sent)
        got = await recv(layer, channel)
        assert got == {**sent, "tu": [1, 2]}

    # -- bad input ------------------------------------------------------------------

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

    @pytest.mark.parametrize("name", ["", "with!bang", "a" * 100, "sp ace", 7])
    async def test_invalid_group_names_raise_type_error(
        self, layer: BaseChannelLayer, name: Any
    ) -> None:
        """group_add, group_discard and group_send reject invalid group names."""
        channel = await layer.new_channel()
        with pytest.raises(TypeError):
            await layer.group_add(name, channel)
        with pytest.raises(TypeError):
            await layer.group_discard(name, channel)
        with pytest.raises(TypeError):
            await layer.group_send(name, {"type": "x"})

    @pytest.mark.parametrize(
        ("message", "fragment"),
        [
            ({"type": "x", "when": object()}, "when"),
            ({"type": "x", "nested": {"list": [1, {2, 3}]}}, "nested.list[1]"),
            ({"type": "x", 1: "int key"}, "key 1"),
            ({"type": "x", "big": 2**70}, "big"),
            (["not", "a", "dict"], "dict"),
        ],
    )
    async def test_unserializable_message_rejected_at_send(
        self, layer: BaseChannelLayer, message: Any, fragment: str
    ) -> None:
        """A message msgpack cannot round-trip fails at send, naming the path."""
        channel = await layer.new_channel()
        await layer.group_add("bad.input", channel)
        with pytest.raises(TypeError, match=re.escape(fragment)):
            await layer.send(channel, message)
        with pytest.raises(TypeError, match=re.escape(fragment)):
            await layer.group_send("bad.input", message)
        await layer.send(channel, {"type": "still.usable"})
        assert await recv(layer, channel) == {"type": "still.usable"}
        assert await nothing(layer, channel)

    # -- expiry ----------------------------------------------------------------------

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
