"""ASGI entry point of the demo: HTTP pages plus the chat WebSocket, wrapped in the hub."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo_project.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from demo_project.chat.consumers import ChatConsumer  # noqa: E402
from wshub_channels.asgi import HubApplication  # noqa: E402

application = HubApplication(
    ProtocolTypeRouter(
        {
            "http": django_asgi_app,
            "websocket": URLRouter([path("ws/chat/<str:room>/", ChatConsumer.as_asgi())]),
        }
    )
)
