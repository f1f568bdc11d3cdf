"""Public test helpers: ``HubCommunicator``, the layer conformance suite, the time unit
and a bounded poll.

Test a ``HubConsumer`` with :class:`HubCommunicator`, a ``WebsocketCommunicator``
that starts the hub and exposes the connected client::

    from wshub_channels.testing import HubCommunicator

    async def test_chat():
        communicator = HubCommunicator(Chat.as_asgi(), "/ws/chat/lobby/")
        connected, _ = await communicator.connect()
        assert connected and communicator.client.in_room("lobby")
        await communicator.send_to(text_data="hi")
        assert await communicator.receive_from() == "echo hi"
        await communicator.disconnect()

Third-party layers can reuse the conformance suite::

    from wshub_channels.testing import ChannelLayerConformance, LayerBackend

    class TestMyLayer(ChannelLayerConformance):
        @pytest.fixture
        def layer_backend(self):
            return LayerBackend("mine", lambda **cfg: MyLayer(**cfg), shared_broker=True)
"""

from __future__ import annotations

from .communicator import HubCommunicator
from .conformance import ChannelLayerConformance, LayerBackend
from .conformance.history import HistoryConformance
from .timing import UNIT, async_wait_until, scaled

__all__ = [
    "UNIT",
    "ChannelLayerConformance",
    "HistoryConformance",
    "HubCommunicator",
    "LayerBackend",
    "async_wait_until",
    "scaled",
]
