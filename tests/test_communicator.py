"""HubCommunicator: the hub is started, the client exposed, coalesced frames split."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from django.test import override_settings

from tests.inprocess import WAIT, private_layer
from wshub_channels import HubConsumer, Message, get_hub
from wshub_channels.layers import InMemoryHubLayer
from wshub_channels.testing import HubCommunicator

pytestmark = pytest.mark.unit

ALIAS = "wshub-test-communicator"


class Echo(HubConsumer):
    channel_layer_alias = ALIAS

    async def on_connect(self) -> None:
        await self.join_room("lobby")

    async def on_message(self, msg: Message) -> None:
        for n in range(3):  # three sends in one loop turn: coalesced when enabled
            await self.send_text(f"{msg.text()} {n}")


@pytest.fixture
async def layer() -> AsyncIterator[InMemoryHubLayer]:
    async with private_layer(ALIAS) as layer:
        yield layer


@pytest.mark.usefixtures("layer")
async def test_connect_starts_the_hub_and_exposes_the_client() -> None:
    """After connect, .client is the registered consumer, reachable through the hub."""
    communicator = HubCommunicator(Echo.as_asgi(), "/ws/")
    connected, _ = await communicator.connect(timeout=WAIT)
    assert connected and communicator.client is not None
    hub = get_hub(ALIAS)
    assert hub.running and hub.get_client(communicator.client.id) is communicator.client
    assert communicator.client.in_room("lobby")
    await hub.broadcast_to_room("lobby", "to the room")
    assert await communicator.receive_from(timeout=WAIT) == "to the room"
    await communicator.disconnect()
    assert hub.client_count() == 0


@pytest.mark.usefixtures("layer")
async def test_coalesced_frames_read_back_one_message_at_a_time() -> None:
    """With coalescing on, three sends arrive as one frame but read as three messages."""
    with override_settings(WSHUB={"CONFIG": {"coalesce_writes": True}}):
        communicator = HubCommunicator(Echo.as_asgi(), "/ws/")
        assert (await communicator.connect(timeout=WAIT))[0]
        await communicator.send_to(text_data="hi")
        raw = await communicator.receive_output(timeout=WAIT)
        assert raw["text"] == "hi 0\nhi 1\nhi 2"  # one frame on the wire
        await communicator.send_to(text_data="yo")
        got = [await communicator.receive_from(timeout=WAIT) for _ in range(3)]
        assert got == ["yo 0", "yo 1", "yo 2"]
        assert await communicator.receive_nothing()
        await communicator.disconnect()


@pytest.mark.usefixtures("layer")
async def test_without_coalescing_newlines_are_kept() -> None:
    """With coalescing off, a text containing a newline is one message."""
    communicator = HubCommunicator(Echo.as_asgi(), "/ws/")
    assert (await communicator.connect(timeout=WAIT))[0]
    assert communicator.client is not None
    await communicator.client.send_text("a\nb")
    assert await communicator.receive_from(timeout=WAIT) == "a\nb"
    await communicator.disconnect()
