"""A HubConsumer's stock send() and send_text()/send_binary() share one queue and one order."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from channels.layers import channel_layers
from channels.testing import WebsocketCommunicator

from wshub_channels import HubConsumer, Message
from wshub_channels.layers import InMemoryHubLayer
from wshub_channels.testing import scaled

pytestmark = pytest.mark.unit

ALIAS = "consumer-order"
Asgi = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


class Interleaving(HubConsumer):
    """On any message, interleaves stock send() with the hub's send_text/send_binary."""

    channel_layer_alias = ALIAS

    async def on_message(self, msg: Message) -> None:
        await self.send(text_data="a1")
        await self.send_text("b1")
        await self.send(text_data="a2")
        await self.send_binary(b"c")
        await self.send_text("b2")


def suspending_sends(app: Asgi) -> Asgi:
    """Wrap ``app`` so that every ASGI send suspends once, as a socket under backpressure."""

    async def wrapped(scope: dict[str, Any], receive: Any, send: Any) -> None:
        async def slow_send(message: dict[str, Any]) -> None:
            await asyncio.sleep(0)
            await send(message)

        await app(scope, receive, slow_send)

    return wrapped


@pytest.fixture
def hub_layer() -> Iterator[InMemoryHubLayer]:
    layer = InMemoryHubLayer()
    channel_layers.set(ALIAS, layer)
    try:
        yield layer
    finally:
        channel_layers.backends.pop(ALIAS, None)


@pytest.mark.parametrize("sends", ["immediate", "suspending"])
async def test_stock_send_and_send_text_arrive_in_call_order(
    sends: str, hub_layer: InMemoryHubLayer
) -> None:
    """a1, b1, a2, binary c, b2 reach the client in exactly the order they were sent."""
    app: Asgi = Interleaving.as_asgi()
    if sends == "suspending":
        app = suspending_sends(app)
    communicator = WebsocketCommunicator(app, "/ws/order/")
    connected, _ = await communicator.connect(timeout=scaled(5))
    assert connected
    await communicator.send_to(text_data="go")
    received = [await communicator.receive_output(timeout=scaled(2)) for _ in range(5)]
    assert [(m["type"], m.get("text"), m.get("bytes")) for m in received] == [
        ("websocket.send", "a1", None),
        ("websocket.send", "b1", None),
        ("websocket.send", "a2", None),
        ("websocket.send", None, b"c"),
        ("websocket.send", "b2", None),
    ]
    assert await communicator.receive_nothing(timeout=scaled(0.05))
    await communicator.disconnect()
