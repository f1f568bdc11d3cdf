"""Stock Channels: an ``AsyncWebsocketConsumer`` per member, ``group_send`` to fan out.

The layer comes from ``settings_stock`` (``E2E_LAYER``). Serve with
``daphne e2e_apps.stock_asgi:application`` (``benchmarks/`` on ``PYTHONPATH``).
"""

from __future__ import annotations

import os

import django

from . import BENCH_PATH, CONTROL_PATH, ROOM, mark, parse_go, run_go

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "e2e_apps.settings_stock")
django.setup()

from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402


class BenchConsumer(AsyncWebsocketConsumer):
    """A member: ``group_add`` on connect, then ``ready``; forwards each ``bench.msg``."""

    async def connect(self) -> None:
        await self.channel_layer.group_add(ROOM, self.channel_name)
        await self.accept()
        await self.send(text_data="ready")

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(ROOM, self.channel_name)

    async def bench_msg(self, event: dict[str, str]) -> None:
        await self.send(text_data=event["text"])


class ControlConsumer(AsyncWebsocketConsumer):
    """The trigger: ``count`` (unknown to a stock layer: -1) and ``go <k> <size> [<pace>]``."""

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        text = text_data or ""
        if text == "count":
            await self.send(text_data="count -1")
            return
        if text.startswith("mark"):
            await self.send(text_data=mark(text))
            return
        go = parse_go(text)
        if go is None:
            await self.send(text_data=f"error unknown command {text[:40]!r}")
            return
        reply = await run_go(
            go,
            lambda text: self.channel_layer.group_send(ROOM, {"type": "bench.msg", "text": text}),
        )
        await self.send(text_data=reply)


application = ProtocolTypeRouter(
    {
        "websocket": URLRouter(
            [
                path(BENCH_PATH, BenchConsumer.as_asgi()),
                path(CONTROL_PATH, ControlConsumer.as_asgi()),
            ]
        )
    }
)
