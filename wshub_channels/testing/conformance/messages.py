"""Conformance cases for messages: size, types, bad input, the reserved key, independence."""

from __future__ import annotations

import re
from typing import Any

import pytest
from channels.layers import BaseChannelLayer

from .io import nothing, recv

__all__ = ["MessageCases"]


class MessageCases:
    """What a message may hold, what is refused at send, and who owns a delivered copy."""

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

    async def test_reserved_key_is_refused(self, layer: BaseChannelLayer) -> None:
        """A message carrying ``__asgi_channel__`` is refused at send and group_send."""
        channel = await layer.new_channel()
        await layer.group_add("reserved", channel)
        message = {"type": "x", "__asgi_channel__": channel}
        with pytest.raises(ValueError, match="__asgi_channel__"):
            await layer.send(channel, message)
        with pytest.raises(ValueError, match="__asgi_channel__"):
            await layer.group_send("reserved", message)
        assert await nothing(layer, channel)

    async def test_group_members_get_independent_messages(self, layer: BaseChannelLayer) -> None:
        """Each group member owns its message: changing one, nested values included,
        changes no other member's, nor what the sender still holds."""
        members = [await layer.new_channel() for _ in range(3)]
        for channel in members:
            await layer.group_add("independent", channel)
        sent: dict[str, Any] = {
            "type": "x",
            "items": [1, [2]],
            "meta": {"k": {"j": 1}},
            "flat": "s",
        }
        await layer.group_send("independent", sent)
        sent["items"].append("sender changed it")
        first = await recv(layer, members[0])
        first["items"].append(3)
        first["items"][1].append(4)
        first["meta"]["k"]["j"] = 2
        first["flat"] = "changed"
        expected = {"type": "x", "items": [1, [2]], "meta": {"k": {"j": 1}}, "flat": "s"}
        for channel in members[1:]:
            assert await recv(layer, channel) == expected
