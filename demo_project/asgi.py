"""ASGI entry point of the demo: Django's pages and the chat WebSocket, wrapped in the hub.

Served by ``manage.py runserver`` (daphne's), ``daphne demo_project.asgi:application``
and ``uvicorn demo_project.asgi:application``. With ``DEBUG`` on, static files
(the chat's script, the admin's styles) are served here too, under every server.
"""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo_project.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402
from django.urls import path  # noqa: E402

from demo_project.chat.consumers import ChatConsumer  # noqa: E402
from wshub_channels.asgi import HubApplication  # noqa: E402

http_app = ASGIStaticFilesHandler(django_asgi_app) if settings.DEBUG else django_asgi_app

application = HubApplication(
    ProtocolTypeRouter(
        {
            "http": http_app,
            # Sessions (the nickname) and users (the members room) reach the consumer's scope.
            "websocket": AuthMiddlewareStack(URLRouter([path("ws/chat/", ChatConsumer.as_asgi())])),
        }
    )
)
