"""The token-auth test server: login views that hand out tokens, and tokened consumers.

HTTP (a cookie session, as the app's own login would keep it):
``POST /login/?user=<name>[&max_age=<s>]`` makes the user if needed, logs in and
answers ``{"token", "expires"}`` (a token bound to the session);
``POST /logout/`` logs out; ``POST /password/`` changes the password.
WebSocket: ``/ws/token/`` (``TokenAuth()``: subprotocol or first message) and
``/ws/header/`` (subprotocol only). Once admitted a client gets
``{"hello": id, "user": user_id, "name": username}``; a frame ``stats`` is
answered with the hub's client count and its DebugMetrics counters.
"""

from __future__ import annotations

import json
import os
from typing import Any

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.auth_settings")
django_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.contrib.auth import get_user_model, login, logout  # noqa: E402
from django.http import HttpRequest, JsonResponse  # noqa: E402
from django.urls import path  # noqa: E402

from wshub_channels import HubConsumer, Message, get_hub  # noqa: E402
from wshub_channels.asgi import HubApplication  # noqa: E402
from wshub_channels.auth import TokenAuth, make_token, read_token  # noqa: E402


def login_view(request: HttpRequest) -> JsonResponse:
    name = request.GET["user"]
    user, _ = get_user_model().objects.get_or_create(username=name)
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    max_age = int(request.GET.get("max_age", 300))
    token = make_token(user, session=request.session, max_age=max_age)
    return JsonResponse({"token": token, "expires": read_token(token).expires})


def logout_view(request: HttpRequest) -> JsonResponse:
    logout(request)
    return JsonResponse({"ok": True})


def password_view(request: HttpRequest) -> JsonResponse:
    user = get_user_model().objects.get(username=request.GET["user"])
    user.set_password(os.urandom(8).hex())
    user.save()
    return JsonResponse({"ok": True})


urlpatterns = [
    path("login/", login_view),
    path("logout/", logout_view),
    path("password/", password_view),
]


class Tokened(HubConsumer):
    token_auth = TokenAuth(timeout=5.0)

    async def on_connect(self) -> None:
        name = self.scope["user"].username
        await self.send_json({"hello": self.id, "user": self.user_id, "name": name})

    async def on_message(self, msg: Message) -> None:
        if msg.data == "stats":
            hub = get_hub()
            stats: dict[str, Any] = hub.metrics.stats()  # type: ignore[attr-defined]
            await self.send_text(json.dumps({"clients": hub.client_count(), **stats}))
        else:
            await self.send_text(f"{self.user_id}:{msg.text()}")


class HeaderOnly(Tokened):
    token_auth = TokenAuth(first_message=False)


application = HubApplication(
    ProtocolTypeRouter(
        {
            "http": django_app,
            "websocket": URLRouter(
                [
                    path("ws/token/", Tokened.as_asgi()),  # type: ignore[arg-type]
                    path("ws/header/", HeaderOnly.as_asgi()),  # type: ignore[arg-type]
                ]
            ),
        }
    )
)
