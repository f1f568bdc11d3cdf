"""The client protocol test server: consumers with ``HubProtocolMixin`` behind daphne or uvicorn.

Runs with ``tests.auth_settings`` (the token views of ``tests.apps.auth_app``
answer HTTP). WebSocket:

- ``/ws/proto/``: a ``ProtocolHubConsumer`` that pings every
  ``WSHUB_TEST_PING`` seconds (default 0.5) and gives a client the same long
  to answer; rooms named ``p.*`` announce presence. Its own frames (without
  ``"t"``): ``kick:<room>`` takes the client out of a room from the server
  side, ``publish:<room>:<text>`` broadcasts to a room, ``broadcast:<text>``
  to everyone; anything else comes back as ``app:<text>``.
- ``/ws/proto-token/``: the same with ``TokenAuth`` (subprotocol or first frame).
"""

from __future__ import annotations

import os

from channels.routing import ProtocolTypeRouter, URLRouter
from django.urls import path

from tests.apps.auth_app import Tokened, django_app
from wshub_channels import HubProtocolMixin, Message, ProtocolHubConsumer, get_hub
from wshub_channels.asgi import HubApplication

PING = float(os.environ.get("WSHUB_TEST_PING", "0.5"))


class Proto(ProtocolHubConsumer):
    protocol_ping = PING
    protocol_ping_timeout = PING

    def room_presence(self, room: str) -> bool:
        return room.startswith("p.")

    async def on_message(self, msg: Message) -> None:
        text = msg.text()
        hub = get_hub()
        if text.startswith("kick:"):
            await hub.leave_room(self, text[len("kick:") :])
        elif text.startswith("publish:"):
            room, _, data = text[len("publish:") :].partition(":")
            await hub.broadcast_to_room(room, data)
        elif text.startswith("broadcast:"):
            await hub.broadcast(text[len("broadcast:") :])
        else:
            await self.send_text("app:" + text)


class ProtoTokened(HubProtocolMixin, Tokened):  # type: ignore[misc]
    protocol_ping = PING
    protocol_ping_timeout = PING


application = HubApplication(
    ProtocolTypeRouter(
        {
            "http": django_app,
            "websocket": URLRouter(
                [
                    path("ws/proto/", Proto.as_asgi()),  # type: ignore[arg-type]
                    path("ws/proto-token/", ProtoTokened.as_asgi()),  # type: ignore[arg-type]
                ]
            ),
        }
    )
)
