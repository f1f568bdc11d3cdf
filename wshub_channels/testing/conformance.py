"""A channel-layer conformance suite, written once and run against every layer.

Subclass :class:`ChannelLayerConformance` and provide a ``layer_backend``
fixture returning a :class:`LayerBackend`. Layers made through the
``make_layer`` fixture are flushed and closed after each test. Cases that
need two instances sharing a broker (worker queues, cross-instance groups,
direct sends and forwarded ``group_add``) skip, with a reason, for backends
whose instances do not share one.

The suite needs pytest with an asyncio plugin in auto mode (pytest-asyncio)
and Django settings configured.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.exceptions import ChannelFull
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import BaseChannelLayer, channel_layers
from channels.testing import WebsocketCommunicator

from .timing import async_wait_until, scaled

__all__ = ["ChannelLayerConformance", "LayerBackend"]

LayerFactory = Callable[..., BaseChannelLayer]


@dataclass(frozen=True)
class LayerBackend:
    """How to build one layer under test.

    ``factory(**config)`` returns a new layer instance; ``shared_broker`` says
    whether two instances made by it reach each other, as processes do.
    """

    name: str
    factory: LayerFactory
    shared_broker: bool


async def _nothing(layer: BaseChannelLayer, channel: str, wait: float = 0.2) -> bool:
    """Return True if nothing arrives on ``channel`` within ``wait`` units."""
    try:
        await asyncio.wait_for(layer.receive(channel), scaled(wait))
    except TimeoutError:
        return True
    return False


async def _still_waiting(task: asyncio.Future[Any], wait: float = 0.05) -> bool:
    """Return True if ``task`` is still running after ``wait`` units (it found nothing yet)."""
    done, _ = await asyncio.wait({task}, timeout=scaled(wait))
    return not done


async def _recv(layer: BaseChannelLayer, channel: str, wait: float = 2) -> dict[str, Any]:
    message: dict[str, Any] = await asyncio.wait_for(layer.receive(channel), scaled(wait))
    return message


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


class ChannelLayerConformance:
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
        assert [(await _recv(layer, channel))["n"] for _ in range(3)] == [0, 1, 2]

    async def test_normal_channel_send_receive(self, layer: BaseChannelLayer) -> None:
        """A normal (non-``!``) channel is a queue too."""
        await layer.send("conformance.work", {"type": "job", "value": 42})
        assert await _recv(layer, "conformance.work") == {"type": "job", "value": 42}

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
        assert await _still_waiting(waiter)
        await layer.send(channel, {"type": "late"})
        assert await asyncio.wait_for(waiter, scaled(2)) == {"type": "late"}

    async def test_cancelled_receive_loses_nothing(self, layer: BaseChannelLayer) -> None:
        """Cancelling a receive, then sending, keeps the message for the next receive."""
        channel = await layer.new_channel()
        waiter = asyncio.ensure_future(layer.receive(channel))
        assert await _still_waiting(waiter)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        await layer.send(channel, {"type": "after.cancel"})
        assert await _recv(layer, channel) == {"type": "after.cancel"}

    async def test_capacity_raises_channel_full(self, layer: BaseChannelLayer) -> None:
        """A send to a channel at capacity raises ChannelFull; draining makes room."""
        channel = await layer.new_channel()
        for n in range(3):
            await layer.send(channel, {"type": "fill", "n": n})
        with pytest.raises(ChannelFull):
            await layer.send(channel, {"type": "overflow"})
        await _recv(layer, channel)
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
        assert await _recv(layer, neighbour) == {"type": "still.fine"}

    async def test_one_megabyte_message(self, layer: BaseChannelLayer) -> None:
        """A message of 1 MB goes through intact."""
        channel = await layer.new_channel()
        payload = "x" * (1024 * 1024)
        await layer.send(channel, {"type": "big", "text": payload, "bytes": b"\x00\xff" * 1000})
        message = await _recv(layer, channel, wait=5)
        assert message["text"] == payload and message["bytes"] == b"\x00\xff" * 1000

    async def test_message_types_round_trip(self, layer: BaseChannelLayer) -> None:
        """Every spec type survives; tuples become lists."""
        channel = await layer.new_channel()
        sent = {"type": "t", "s": "é", "b": b"\x01", "i": -(2**63), "f": 1.5, "t": True}
        sent |= {"n": None, "l": [1, [2]], "d": {"k": {"j": 1}}, "tu": (1, 2)}
        await layer.send(channel, sent)
        got = await _recv(layer, channel)
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
        assert await _recv(layer, channel) == {"type": "still.usable"}
        assert await _nothing(layer, channel)

    # -- expiry ----------------------------------------------------------------------

    async def test_unread_messages_expire(self, make_layer: LayerFactory) -> None:
        """A message not read within ``expiry`` is dropped; later ones arrive."""
        layer = make_layer(expiry=scaled(0.2))
        channel = await layer.new_channel()
        await layer.send(channel, {"type": "old"})
        await asyncio.sleep(scaled(0.3))  # past the expiry: "old" must not arrive
        await layer.send(channel, {"type": "new"})
        assert await _recv(layer, channel) == {"type": "new"}

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
        assert await _recv(layer, channel) == {"type": "fits"}

    # -- groups -----------------------------------------------------------------------

    async def test_group_send_reaches_members_only(self, layer: BaseChannelLayer) -> None:
        """group_send reaches current members once, and not discarded channels."""
        one, two, three = [await layer.new_channel() for _ in range(3)]
        for channel in (one, two, three):
            await layer.group_add("conformance.group", channel)
        await layer.group_discard("conformance.group", two)
        await layer.group_send("conformance.group", {"type": "hello"})
        assert await _recv(layer, one) == {"type": "hello"}
        assert await _recv(layer, three) == {"type": "hello"}
        assert await _nothing(layer, two)
        assert await _nothing(layer, one)

    async def test_group_add_twice_delivers_once(self, layer: BaseChannelLayer) -> None:
        """Adding a channel twice does not duplicate deliveries."""
        channel = await layer.new_channel()
        await layer.group_add("twice", channel)
        await layer.group_add("twice", channel)
        await layer.group_send("twice", {"type": "once"})
        assert await _recv(layer, channel) == {"type": "once"}
        assert await _nothing(layer, channel)

    async def test_group_discard_unknown_is_harmless(self, layer: BaseChannelLayer) -> None:
        """Discarding a channel that is not a member, or from an unknown group, is a no-op."""
        channel, member = await layer.new_channel(), await layer.new_channel()
        await layer.group_discard("never.added", channel)
        await layer.group_send("never.added", {"type": "nobody"})
        assert await _nothing(layer, channel)
        await layer.group_add("known", member)
        await layer.group_discard("known", channel)
        await layer.group_send("known", {"type": "still.member"})
        assert await _recv(layer, member) == {"type": "still.member"}
        assert await _nothing(layer, channel)
        await layer.send(channel, {"type": "still.usable"})
        assert await _recv(layer, channel) == {"type": "still.usable"}

    async def test_group_send_skips_full_members(self, layer: BaseChannelLayer) -> None:
        """group_send never raises ChannelFull; full members miss it, others get it."""
        full, ok = await layer.new_channel(), await layer.new_channel()
        await layer.group_add("conformance.full", full)
        await layer.group_add("conformance.full", ok)
        for n in range(3):
            await layer.send(full, {"type": "fill", "n": n})
        await layer.group_send("conformance.full", {"type": "broadcast"})
        assert await _recv(layer, ok) == {"type": "broadcast"}
        assert [(await _recv(layer, full))["type"] for _ in range(3)] == ["fill"] * 3
        assert await _nothing(layer, full)

    async def test_group_membership_expires(self, make_layer: LayerFactory) -> None:
        """Membership lapses ``group_expiry`` after the last group_add."""
        layer = make_layer(group_expiry=scaled(0.2))
        channel = await layer.new_channel()
        await layer.group_add("lapsing", channel)
        await asyncio.sleep(scaled(0.4))  # past the group expiry: nothing may arrive
        await layer.group_send("lapsing", {"type": "too.late"})
        assert await _nothing(layer, channel)

    async def test_group_with_normal_channel_member(self, layer: BaseChannelLayer) -> None:
        """A normal channel can be a group member (a worker queue subscribed to a group)."""
        await layer.group_add("conformance.workers", "conformance.worker-queue")
        await layer.group_send("conformance.workers", {"type": "job"})
        assert await _recv(layer, "conformance.worker-queue") == {"type": "job"}

    async def test_flush_empties_queues_and_groups(self, layer: BaseChannelLayer) -> None:
        """flush drops queued messages and group memberships."""
        channel = await layer.new_channel()
        await layer.group_add("flushed", channel)
        await layer.send(channel, {"type": "queued"})
        await layer.send("conformance.flushed", {"type": "queued"})
        await layer.flush()
        await layer.group_send("flushed", {"type": "after.flush"})
        assert await _nothing(layer, channel)
        assert await _nothing(layer, "conformance.flushed")

    async def test_send_from_another_thread_and_loop(self, layer: BaseChannelLayer) -> None:
        """async_to_sync from a worker thread (a new event loop) reaches a reader here."""
        channel = await layer.new_channel()
        await layer.group_add("from.thread", channel)
        waiter = asyncio.ensure_future(layer.receive(channel))
        assert await _still_waiting(waiter)

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

    # -- across instances (shared broker only) -------------------------------------------

    @pytest.mark.usefixtures("shared")
    async def test_worker_queue_across_instances(self, make_layer: LayerFactory) -> None:
        """A normal channel sent to before any reader exists is read once, elsewhere."""
        sender, reader_a, reader_b = make_layer(), make_layer(), make_layer()
        await sender.send("conformance.jobs", {"type": "job", "id": 1})
        first = asyncio.ensure_future(reader_a.receive("conformance.jobs"))
        second = asyncio.ensure_future(reader_b.receive("conformance.jobs"))
        done, pending = await asyncio.wait(
            {first, second}, timeout=scaled(2), return_when=asyncio.FIRST_COMPLETED
        )
        assert [task.result() for task in done] == [{"type": "job", "id": 1}]
        await asyncio.sleep(scaled(0.2))  # the other reader must not get a second copy
        assert all(not task.done() for task in pending)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    @pytest.mark.usefixtures("shared")
    async def test_group_send_across_instances_exactly_once(self, make_layer: LayerFactory) -> None:
        """Members on two instances each get one copy of one group_send."""
        node_a, node_b = make_layer(), make_layer()
        on_a = [await node_a.new_channel() for _ in range(2)]
        on_b = [await node_b.new_channel() for _ in range(2)]
        for channel in on_a:
            await node_a.group_add("across", channel)
        for channel in on_b:
            await node_b.group_add("across", channel)
        await node_a.group_send("across", {"type": "once"})
        for node, channels in ((node_a, on_a), (node_b, on_b)):
            for channel in channels:
                assert await _recv(node, channel) == {"type": "once"}
                assert await _nothing(node, channel)

    @pytest.mark.usefixtures("shared")
    async def test_direct_send_to_other_instance(self, make_layer: LayerFactory) -> None:
        """A send to a ``!`` channel owned by another instance reaches it."""
        node_a, node_b = make_layer(), make_layer()
        channel = await node_b.new_channel()
        waiter = asyncio.ensure_future(node_b.receive(channel))
        assert await _still_waiting(waiter)
        await node_a.send(channel, {"type": "direct"})
        assert await asyncio.wait_for(waiter, scaled(2)) == {"type": "direct"}

    @pytest.mark.usefixtures("shared")
    async def test_group_add_for_channel_of_other_instance(self, make_layer: LayerFactory) -> None:
        """group_add on one instance for another's channel is forwarded and takes effect."""
        node_a, node_b = make_layer(), make_layer()
        channel = await node_b.new_channel()
        await node_a.group_add("forwarded", channel)
        await node_a.group_send("forwarded", {"type": "via.a"})
        assert await _recv(node_b, channel) == {"type": "via.a"}
        await node_a.group_discard("forwarded", channel)
        await node_b.group_send("forwarded", {"type": "after.discard"})
        assert await _nothing(node_b, channel)
