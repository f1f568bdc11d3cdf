"""An ASGI app for the server tests: a HubConsumer driven by JSON commands.

Query string: ``user=<id>`` sets the user id, ``rooms=a,b`` joins rooms.
A command ``{"op": ..., "ref": n, ...}`` runs one hub call and is answered with
``{"reply": n, "result": ...}`` or ``{"reply": n, "error": "<ErrorClass>"}``.
Anything else the server sends is a delivery under test.
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from dataclasses import asdict
from typing import Any
from urllib.parse import parse_qs

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
django_app = get_asgi_application()

from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from tests.apps.policies import EVENTS, PolicyEcho  # noqa: E402
from wshub_channels import JsonHubConsumer, Position, RoomEvent, get_hub, signals  # noqa: E402
from wshub_channels.asgi import HubApplication  # noqa: E402
from wshub_channels.connection.consumer import dump_json  # noqa: E402
from wshub_channels.metrics import DebugMetrics, MetricsCollector  # noqa: E402


def _metric(metrics: MetricsCollector, name: str) -> int:
    """A counter of the hub's DebugMetrics (0 under any other collector)."""
    return int(metrics.stats().get(name, 0)) if isinstance(metrics, DebugMetrics) else 0


NODE_EVENTS: list[list[str]] = []  # [["joined" | "left", node_id], ...] seen by this process


def _record_node(event: str) -> Any:
    def receiver(sender: Any, node: Any, **kwargs: Any) -> None:
        NODE_EVENTS.append([event, node.node_id])

    return receiver


HUB_ERRORS: list[str] = []  # hub-wide errors (sender Hub), by class name


def _record_hub_error(sender: Any, error: Exception, **kwargs: Any) -> None:
    if kwargs.get("client") is None:
        HUB_ERRORS.append(type(error).__name__)


signals.hub_error.connect(_record_hub_error, weak=False)
signals.node_joined.connect(_record_node("joined"), weak=False)
signals.node_left.connect(_record_node("left"), weak=False)


class ControlConsumer(JsonHubConsumer):
    dropped = 0

    async def on_connect(self) -> None:
        query = parse_qs(self.scope.get("query_string", b"").decode())
        if "user" in query:
            await self.set_user_id(query["user"][0])
        for room in query.get("rooms", [""])[0].split(","):
            if room:
                await self.join_room(room)
        await self.send_json({"hello": self.id})

    async def on_send_dropped(self, data: bytes | str) -> None:
        type(self).dropped += 1

    def room_presence(self, room: str) -> bool:
        return room.startswith("watch")

    async def on_room_presence(self, event: RoomEvent) -> None:
        await self.send_json({"room_event": [event.room, event.event, event.client_id]})

    async def on_error(self, error: Exception) -> None:
        await self.send_json({"error": type(error).__name__, "detail": str(error)})

    async def on_json(self, content: Any) -> None:
        ref = content.get("ref")
        try:
            result = await self.run(content)
        except Exception as exc:
            await self.send_json({"reply": ref, "error": type(exc).__name__})
        else:
            await self.send_json({"reply": ref, "result": result})

    async def run(self, cmd: dict[str, Any]) -> Any:
        hub = get_hub()
        op = cmd["op"]
        text = cmd.get("text", "")
        exclude = cmd.get("exclude", [])
        if op == "broadcast":
            return await hub.broadcast_text(text, exclude=exclude)
        if op == "broadcast_binary":
            return await hub.broadcast(text.encode(), exclude=exclude)
        if op == "broadcast_json":
            return await hub.broadcast_json(cmd["obj"])
        if op == "broadcast_to_room":
            return await hub.broadcast_to_room(cmd["room"], text, exclude=exclude)
        if op == "send_to_user":
            return await hub.send_to_user(cmd["user"], text)
        if op == "send_to_client":
            data = text.encode() if cmd.get("binary") else text
            return await hub.send_to_client(cmd["client"], data)
        if op == "flood":
            # Many large frames to one client, to fill a slow reader's socket and queue.
            body = "x" * cmd["size"]
            for seq in range(cmd["count"]):
                await hub.send_to_client(cmd["client"], f"{seq}:{body}")
            return None
        if op == "join_room" and "since" in cmd:  # [offset, epoch] or None
            since = None if cmd["since"] is None else Position(*cmd["since"])
            recovery = await hub.join_room(cmd.get("client", self.id), cmd["room"], since)
            at = recovery.position
            where = None if at is None else [at.offset, at.epoch]
            return {
                "recovered": recovery.recovered,
                "position": where,
                "replayed": recovery.replayed,
            }
        if op == "history":
            since = None if cmd.get("since") is None else Position(*cmd["since"])
            page = await hub.history(cmd["room"], since=since, limit=cmd.get("limit"))
            return {
                "entries": [[e.offset, e.data] for e in page.entries],
                "position": [page.position.offset, page.position.epoch],
                "complete": page.complete,
            }
        if op in ("join_room", "leave_room"):  # a join's Recovery: see "since" above
            await getattr(hub, op)(cmd.get("client", self.id), cmd["room"])
            return None
        if op == "leave_all_rooms":
            return await hub.leave_all_rooms(cmd.get("client", self.id))
        if op == "disconnect":
            return await hub.disconnect(cmd["client"], code=cmd.get("code", 1000))
        if op == "lookup":
            return {
                "client_count": hub.client_count(),
                "room_names": sorted(hub.room_names()),
                "room_count": {r: hub.room_count(r) for r in cmd.get("rooms", [])},
                "room_exists": {r: hub.room_exists(r) for r in cmd.get("rooms", [])},
                "room_clients": {
                    r: sorted(c.id for c in hub.room_clients(r)) for r in cmd.get("rooms", [])
                },
                "user_clients": sorted(
                    c.id for c in hub.get_clients_by_user_id(cmd.get("user", "-"))
                ),
                "by_user": getattr(hub.get_client_by_user_id(cmd.get("user", "-")), "id", None),
                "get_client": getattr(hub.get_client(cmd.get("client", "")), "id", None),
                "all_ids": sorted(c.id for c in hub.clients()),
                "my_rooms": sorted(self.rooms),
                "dropped": type(self).dropped,
                "send_dropped": _metric(hub.metrics, "messages_dropped"),
                "events": dict(Counter(EVENTS)),
            }
        if op == "interleave":
            for n in range(cmd["count"]):
                if n % 2:
                    await self.send(text_data=f"seq:{n}")
                else:
                    await self.send_text(f"seq:{n}")
            return None
        if op == "burst":
            for n in range(cmd["count"]):
                await self.send_text(f"b{n}")
            return None
        if op == "send_closed":
            other = hub.get_client(cmd["client"])
            assert other is not None
            await other.close()
            return await other.send_text("too late")
        if op == "send_timeout":
            other = hub.get_client(cmd["client"])
            assert other is not None
            body = "y" * cmd["size"]
            for _ in range(cmd["count"]):
                await other.send_text(body, timeout=cmd["timeout"])
            return None
        if op == "global_counts":
            wanted = cmd.get("fields", ["clients", "room", "users", "trusted"])
            counts: dict[str, Any] = {}
            if "clients" in wanted:
                counts["clients"] = await hub.global_client_count()
            if "room" in wanted:
                counts["room"] = await hub.global_room_count(cmd.get("room", "all"))
            if "users" in wanted:
                counts["users"] = await hub.global_user_count()
            if "trusted" in wanted:
                counts["trusted"] = hub.cluster.table_trusted(rooms=True)
            return counts
        if op == "find_client":
            found = await hub.find_client(cmd["client"], timeout=cmd.get("timeout"))
            return None if found is None else found.to_wire()
        if op == "cluster_clients":
            page = await hub.cluster_clients(
                room=cmd.get("room"),
                user_id=cmd.get("user"),
                limit=cmd.get("limit", 100),
                offset=cmd.get("offset", 0),
                timeout=cmd.get("timeout"),
            )
            items = [[info.node, info.id] for info in page.items]
            return {"items": items, "total": page.total, "missing": page.missing_nodes}
        if op == "nodes":
            return [[n.node_id, n.clients] for n in await hub.nodes(timeout=cmd.get("timeout"))]
        if op == "health":
            return asdict(hub.health())
        if op == "paths":  # which write path each named client takes, and the counters
            stats = hub.metrics.stats() if isinstance(hub.metrics, DebugMetrics) else {}
            return {
                "clients": {cid: _paths(hub.get_client(cid)) for cid in cmd["clients"]},
                "messages_sent": int(stats.get("messages_sent", 0)),
                "bytes_sent": int(stats.get("bytes_sent", 0)),
            }
        if op == "sequence":  # broadcast, per-client sends and room sends, interleaved
            ids = cmd["clients"]
            for n in range(cmd["count"]):
                if n % 3 == 0:
                    await hub.broadcast_to_room(cmd["room"], f"s{n}")
                elif n % 3 == 1:
                    for cid in ids:
                        await hub.send_to_client(cid, f"s{n}")
                else:
                    await hub.broadcast(f"s{n}")
            return None
        if op == "queued":  # frames waiting in each named client's outbound queue
            return {cid: _queued(hub.get_client(cid)) for cid in cmd["clients"]}
        if op == "shutdown":  # hub.shutdown() alone: the server process keeps running
            return await hub.shutdown()
        if op == "node_events":
            return NODE_EVENTS
        if op == "hub_errors":
            return HUB_ERRORS
        if op == "layer_stats":
            return hub.layer.stats.snapshot()
        if op == "sizes":  # internal table sizes and task count, for the soak's growth check
            return _sizes(hub)
        if op == "unencodable":
            # Past the hub's own check, straight to the server: a write it must refuse.
            assert self._outbound is not None
            return self._outbound.push({"type": "websocket.send", "text": "x\ud800"})
        if op == "raise":
            raise RuntimeError("handler failure on purpose")
        if op == "json":
            return dump_json({"ok": True})
        raise ValueError(f"unknown op {op}")


def _sizes(hub: Any) -> dict[str, int]:
    layer = hub.layer
    sizes = {"registry": hub.client_count(), "tasks": len(asyncio.all_tasks())}
    sizes.update(layer.sizes() if hasattr(layer, "sizes") else {})
    peers = hub.heartbeat.table._peers.values()
    sizes["presence_nodes"] = len(hub.heartbeat.table)
    sizes["presence_rooms"] = sum(len(peer.rooms) for peer in peers)
    inbox = getattr(getattr(layer, "bus", None), "inbox", None)
    sizes["requests"] = len(getattr(inbox, "_pending", ()))
    return sizes


def _paths(client: Any) -> dict[str, Any] | None:
    outbound = getattr(client, "_outbound", None)
    if outbound is None:
        return None
    return {"kind": outbound.direct_kind, "direct": outbound.direct, "sent": outbound.sent}


def wrap_send(app: Any) -> Any:
    """An ASGI middleware that wraps ``send``: the hub cannot see the server through it."""

    async def middleware(scope: dict[str, Any], receive: Any, send: Any) -> None:
        async def wrapped(message: dict[str, Any]) -> None:
            await send(message)

        await app(scope, receive, wrapped)

    return middleware


def _queued(client: Any) -> int | None:
    outbound = getattr(client, "_outbound", None)
    return None if outbound is None else int(outbound.queued)


class StockChat(AsyncWebsocketConsumer):
    """A stock Channels group chat, untouched: it must work on every hub layer."""

    groups = ["stock-chat"]

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        await self.channel_layer.group_send(
            "stock-chat", {"type": "chat.message", "text": text_data}
        )

    async def chat_message(self, event: dict[str, Any]) -> None:
        await self.send(text_data=event["text"])


class HookFailures(JsonHubConsumer):
    """Hooks that raise: on_connect and on_room_join fail, the connection lives."""

    async def on_connect(self) -> None:
        raise RuntimeError("on_connect failure on purpose")

    async def on_error(self, error: Exception) -> None:
        await self.send_json({"error": type(error).__name__})

    async def on_json(self, content: Any) -> None:
        await self.send_json({"echo": content})


class _QueryUser:
    """Test-only auth: ``?auth=<id>`` makes ``scope["user"]`` an authenticated user."""

    is_authenticated = True

    def __init__(self, pk: str) -> None:
        self.pk = pk


def query_auth(app: Any) -> Any:
    async def middleware(scope: dict[str, Any], receive: Any, send: Any) -> None:
        query = parse_qs(scope.get("query_string", b"").decode())
        if "auth" in query:
            scope = {**scope, "user": _QueryUser(query["auth"][0])}
        await app(scope, receive, send)

    return middleware


application = HubApplication(
    ProtocolTypeRouter(
        {
            "http": django_app,
            "websocket": query_auth(
                URLRouter(
                    [
                        path("ws/control/", ControlConsumer.as_asgi()),  # type: ignore[arg-type]
                        path("ws/wrapped/", wrap_send(ControlConsumer.as_asgi())),
                        path("ws/hooks/", HookFailures.as_asgi()),  # type: ignore[arg-type]
                        path("ws/stock/", StockChat.as_asgi()),  # type: ignore[arg-type]
                        path("ws/policy/", PolicyEcho.as_asgi()),  # type: ignore[arg-type]
                    ]
                )
            ),
        }
    )
)
