"""A tiny ASGI application for rig tests: a stock Channels consumer echoing text.

Serve it with ``tests.rig.echo_asgi:application``; the WebSocket route is ``ws/echo/`` and
every text frame ``X`` is answered with ``echo:X`` (binary frames with ``b"echo:" + X``).
"""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

from django.core.asgi import get_asgi_application

# Set Django up (apps, settings) before anything imports models or consumers.
django_asgi_app = get_asgi_application()

from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

__all__ = ["EchoConsumer", "application"]


class EchoConsumer(AsyncWebsocketConsumer):
    """Echo every frame back, prefixed with ``echo:``."""

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if text_data is not None:
            await self.send(text_data="echo:" + text_data)
        elif bytes_data is not None:
            await self.send(bytes_data=b"echo:" + bytes_data)


application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        # django-stubs types path() for views and types-channels wants its own pattern
        # class, so the documented Channels idiom needs an ignore under strict mypy.
        "websocket": URLRouter(
            [path("ws/echo/", EchoConsumer.as_asgi())]  # type: ignore[list-item, arg-type]
        ),
    }
)
