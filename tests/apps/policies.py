"""Hooks, middleware, signal receivers and an echo consumer for the policy tests.

Everything records into ``EVENTS`` (per server process); the consumer's
``events`` command returns the list, ``stats`` returns the metrics snapshot.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs

from wshub_channels import (
    AuthenticationFailed,
    HubConsumer,
    Message,
    Unauthorized,
    get_hub,
    signals,
)
from wshub_channels.hooks import Hooks
from wshub_channels.metrics import DebugMetrics
from wshub_channels.middleware import Handler, Middleware

EVENTS: list[str] = []


def _query(client: HubConsumer) -> dict[str, list[str]]:
    return parse_qs(client.scope.get("query_string", b"").decode())


class RecordingHooks(Hooks):
    """Hub-wide hooks that reject and transform on cue, and record every call."""

    async def before_connect(self, client: HubConsumer) -> None:
        EVENTS.append("hook:before_connect")
        if "deny" in _query(client):
            raise AuthenticationFailed("denied by the hub-wide hook")

    async def on_connect(self, client: HubConsumer) -> None:
        EVENTS.append("hook:on_connect")

    async def before_message(self, client: HubConsumer, msg: Message) -> Message:
        text = msg.text()
        if text == "forbidden":
            raise Unauthorized("forbidden message")
        if text.startswith("shout:"):
            return Message(text.upper(), msg.client_id, msg.received_at)
        return msg

    async def on_message(self, client: HubConsumer, msg: Message) -> None:
        EVENTS.append("hook:on_message")

    async def on_close(self, client: HubConsumer, code: int) -> None:
        EVENTS.append(f"hook:on_close:{code}")

    async def on_error(self, client: HubConsumer, error: Exception) -> None:
        EVENTS.append(f"hook:on_error:{type(error).__name__}")

    async def before_room_join(self, client: HubConsumer, room: str) -> None:
        if room == "vip":
            raise Unauthorized("vip only")

    async def on_room_join(self, client: HubConsumer, room: str) -> None:
        EVENTS.append(f"hook:on_room_join:{room}")

    async def before_room_leave(self, client: HubConsumer, room: str) -> None:
        if room == "sticky":
            raise Unauthorized("you cannot leave")

    async def on_room_leave(self, client: HubConsumer, room: str) -> None:
        EVENTS.append(f"hook:on_room_leave:{room}")


def _tagging(name: str) -> Middleware:
    def middleware(next_handler: Handler) -> Handler:
        async def handler(client: HubConsumer, msg: Message) -> None:
            EVENTS.append(f"mw:{name}:before")
            await next_handler(client, msg)
            EVENTS.append(f"mw:{name}:after")

        return handler

    return middleware


def outer() -> Middleware:
    return _tagging("outer")


def inner() -> Middleware:
    return _tagging("inner")


def trusted_header_only(scope: Mapping[str, Any]) -> bool:
    """A custom origin check: allow only handshakes carrying ``x-trusted: yes``."""
    return (b"x-trusted", b"yes") in list(scope.get("headers", []))


class PolicyEcho(HubConsumer):
    """Echoes text; ``join:R``/``leave:R`` manage rooms; ``events``/``stats`` report."""

    async def before_connect(self) -> None:
        EVENTS.append("consumer:before_connect")

    async def on_connect(self) -> None:
        EVENTS.append("consumer:on_connect")
        if "user" in _query(self):
            await self.set_user_id(_query(self)["user"][0])
        await self.send_text("ready")

    async def on_error(self, error: Exception) -> None:
        await self.send_text(f"error:{type(error).__name__}")

    async def on_message(self, msg: Message) -> None:
        EVENTS.append("handler")
        text = msg.text()
        if text.startswith(("join:", "leave:")):
            action, room = text.split(":", 1)
            await (self.join_room(room) if action == "join" else self.leave_room(room))
            await self.send_text(f"{'joined' if action == 'join' else 'left'}:{room}")
        elif text == "events":
            await self.send_text(json.dumps(EVENTS))
        elif text == "stats":
            hub = get_hub()
            metrics = hub.metrics.stats() if isinstance(hub.metrics, DebugMetrics) else {}
            signal_errors = metrics.get("errors", {}).get("signal_receiver", 0)
            hub_counts = {"signal_errors": signal_errors}
            await self.send_text(json.dumps({"metrics": metrics, "hub": hub_counts}))
        elif text == "boom":
            raise RuntimeError("handler failure on purpose")
        else:
            await self.send_text(f"echo:{text}")


def _sync_receiver(name: str) -> Any:
    def receiver(sender: Any, **kwargs: Any) -> None:
        EVENTS.append(f"signal:{name}:sync")

    return receiver


def _async_receiver(name: str) -> Any:
    async def receiver(sender: Any, **kwargs: Any) -> None:
        EVENTS.append(f"signal:{name}:async")

    return receiver


def _raising_receiver(sender: Any, room: str = "", **kwargs: Any) -> None:
    if room == "boom-room":
        raise RuntimeError("receiver failure on purpose")


_RECEIVERS: list[Any] = []
for _name in (
    "client_connected",
    "client_disconnected",
    "message_received",
    "room_joined",
    "room_left",
    "send_dropped",
    "hub_error",
    "hub_state_changed",
    "node_joined",
    "node_left",
):
    if os.environ.get("WSHUB_TEST_RECORD_SIGNALS") == "0":
        break  # a long run (the soak): EVENTS would grow with every signal
    for _receiver in (_sync_receiver(_name), _async_receiver(_name)):
        _RECEIVERS.append(_receiver)  # keep a strong reference
        getattr(signals, _name).connect(_receiver)
signals.room_joined.connect(_raising_receiver)
