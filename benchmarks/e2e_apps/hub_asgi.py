"""A ``HubConsumer`` on ``InMemoryHubLayer``, wrapped in ``HubApplication``.

Serve with ``daphne e2e_apps.hub_asgi:application`` or
``uvicorn e2e_apps.hub_asgi:application --lifespan on`` (``benchmarks/`` and the
repository root on ``PYTHONPATH``).
``DJANGO_SETTINGS_MODULE=e2e_apps.settings_hub_redis`` puts the same app on
``RedisHubLayer`` (``e2e_apps.settings_hub_nats``: on ``NatsHubLayer``); processes
sharing its ``E2E_PREFIX`` form one cluster, and
``count`` then answers with this node's members of the room only.
"""

from __future__ import annotations

import os

import django

from . import BENCH_PATH, CONTROL_PATH, ROOM, mark, parse_go, run_go

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "e2e_apps.settings_hub")
django.setup()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from wshub_channels import HubConsumer, Message, get_hub  # noqa: E402
from wshub_channels.asgi import HubApplication  # noqa: E402


class BenchConsumer(HubConsumer):
    """A member: joins the room, says ``ready``, then only receives."""

    async def on_connect(self) -> None:
        await self.join_room(ROOM)
        await self.send_text("ready")

    async def on_message(self, msg: Message) -> None:
        pass


class ControlConsumer(HubConsumer):
    """The trigger: ``count`` and ``go <k> <size> [<pace ms>]``."""

    async def on_message(self, msg: Message) -> None:
        text = msg.text()
        hub = get_hub()
        if text == "count":
            await self.send_text(f"count {hub.room_count(ROOM)}")
            return
        if text.startswith("mark"):
            await self.send_text(mark(text))
            return
        go = parse_go(text)
        if go is None:
            await self.send_text(f"error unknown command {text[:40]!r}")
            return
        await self.send_text(await run_go(go, lambda text: hub.broadcast_to_room(ROOM, text)))


application = HubApplication(
    ProtocolTypeRouter(
        {
            "websocket": URLRouter(
                [
                    path(BENCH_PATH, BenchConsumer.as_asgi()),
                    path(CONTROL_PATH, ControlConsumer.as_asgi()),
                ]
            )
        }
    )
)
