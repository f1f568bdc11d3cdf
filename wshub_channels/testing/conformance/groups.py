"""Conformance cases for groups, and a stock consumer that uses them."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from asgiref.sync import async_to_sync
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import BaseChannelLayer, channel_layers
from channels.testing import WebsocketCommunicator

from ..timing import scaled
from .io import LayerFactory, nothing, recv, still_waiting

__all__ = ["GroupCases"]


class _GroupChat(AsyncWebsocketConsumer):
    """A stock Channels group chat, as users write it."""

    channel_layer_alias = "wshub-conformance"
    groups = ["conformance-chat"]

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        await self.channel_layer.group_send(
            "conformance-chat", {"type": "chat.message", "text": text_data}
        )

    async def chat_message(self, event: dict[str, Any]) -> None:
        await self.send(text_data=event["text"])


class GroupCases:
    """Groups across one or more instances, and a stock consumer using them."""

    # -- groups -----------------------------------------------------------------------

    async def test_group_send_reaches_members_only(self, layer: BaseChannelLayer) -> None:
        """group_send reaches current members once, and not discarded channels."""
        one, two, three = [await layer.new_channel() for _ in range(3)]
        for channel in (one, two, three):
            await layer.group_add("conformance.group", channel)
        await layer.group_discard("conformance.group", two)
        await layer.group_send("conformance.group", {"type": "hello"})
        assert await recv(layer, one) == {"type": "hello"}
        assert await recv(layer, three) == {"type": "hello"}
        assert await nothing(layer, two)
        assert await nothing(layer, one)

    async def test_group_add_twice_delivers_once(self, layer: BaseChannelLayer) -> None:
        """Adding a channel twice does not duplicate deliveries."""
        channel = await layer.new_channel()
        await layer.group_add("twice", channel)
        await layer.group_add("twice", channel)
        await layer.group_send("twice", {"type": "once"})
        assert await recv(layer, channel) == {"type": "once"}
        assert await nothing(layer, channel)

    async def test_group_discard_unknown_is_harmless(self, layer: BaseChannelLayer) -> None:
        """Discarding a channel that is not a member, or from an unknown group, is a no-op."""
        channel, member = await layer.new_channel(), await layer.new_channel()
        await layer.group_discard("never.added", channel)
        await layer.group_send("never.added", {"type": "nobody"})
        assert await nothing(layer, channel)
        await layer.group_add("known", member)
        await layer.group_discard("known", channel)
        await layer.group_send("known", {"type": "still.member"})
        assert await recv(layer, member) == {"type": "still.member"}
        assert await nothing(layer, channel)
        await layer.send(channel, {"type": "still.usable"})
        assert await recv(layer, channel) == {"type": "still.usable"}

    async def test_group_send_skips_full_members(self, layer: BaseChannelLayer) -> None:
        """group_send never raises ChannelFull; full members miss it, others get it."""
        full, ok = await layer.new_channel(), await layer.new_channel()
        await layer.group_add("conformance.full", full)
        await layer.group_add("conformance.full", ok)
        for n in range(3):
            await layer.send(full, {"type": "fill", "n": n})
        await layer.group_send("conformance.full", {"type": "broadcast"})
        assert await recv(layer, ok) == {"type": "broadcast"}
        assert [(await recv(layer, full))["type"] for _ in range(3)] == ["fill"] * 3
        assert await nothing(layer, full)

    async def test_group_membership_expires(self, make_layer: LayerFactory) -> None:
        """Membership lapses ``group_expiry`` after the last group_add."""
        layer = make_layer(group_expiry=scaled(0.2))
        channel = await layer.new_channel()
        await layer.group_add("lapsing", channel)
        await asyncio.sleep(scaled(0.4))  # past the group expiry: nothing may arrive
        await layer.group_send("lapsing", {"type": "too.late"})
        assert await nothing(layer, channel)

    async def test_group_with_normal_channel_member(self, layer: BaseChannelLayer) -> None:
        """A normal channel can be a group member (a worker queue subscribed to a group)."""
        await layer.group_add("conformance.workers", "conformance.worker-queue")
        await layer.group_send("conformance.workers", {"type": "job"})
        assert await recv(layer, "conformance.worker-queue") == {"type": "job"}

    async def test_flush_empties_queues_and_groups(self, layer: BaseChannelLayer) -> None:
        """flush drops queued messages and group memberships."""
        channel = await layer.new_channel()
        await layer.group_add("flushed", channel)
        await layer.send(channel, {"type": "queued"})
        await layer.send("conformance.flushed", {"type": "queued"})
        await layer.flush()
        await layer.group_send("flushed", {"type": "after.flush"})
        assert await nothing(layer, channel)
        assert await nothing(layer, "conformance.flushed")

    async def test_send_from_another_thread_and_loop(self, layer: BaseChannelLayer) -> None:
        """async_to_sync from a worker thread (a new event loop) reaches a reader here."""
        channel = await layer.new_channel()
        await layer.group_add("from.thread", channel)
        waiter = asyncio.ensure_future(layer.receive(channel))
        assert await still_waiting(waiter)

        def worker() -> None:
            async_to_sync(layer.group_send)("from.thread", {"type": "threaded"})

        thread = threading.Thread(target=worker)
        thread.start()
        await asyncio.get_running_loop().run_in_executor(None, thread.join)
        assert await asyncio.wait_for(waiter, scaled(2)) == {"type": "threaded"}

    # -- a stock consumer --------------------------------------------------------------

    async def test_stock_consumer_group_chat(self, layer: BaseChannelLayer) -> None:
        """A stock AsyncWebsocketConsumer group chat works with 3 clients."""
        previous = channel_layers.set(_GroupChat.channel_layer_alias, layer)
        clients = [WebsocketCommunicator(_GroupChat.as_asgi(), "/ws/chat/") for _ in range(3)]
        try:
            for client in clients:
                connected, _ = await client.connect(timeout=scaled(2))
                assert connected
            await clients[0].send_to(text_data="hello from 0")
            await clients[2].send_to(text_data="hello from 2")
            for client in clients:
                got = [await client.receive_from(timeout=scaled(2)) for _ in range(2)]
                assert sorted(got) == ["hello from 0", "hello from 2"]
                assert await client.receive_nothing(timeout=scaled(0.1))
        finally:
            for client in clients:
                await client.disconnect()
            if previous is None:
                channel_layers.backends.pop(_GroupChat.channel_layer_alias, None)
            else:
                channel_layers.set(_GroupChat.channel_layer_alias, previous)
