"""Small fakes for the hub's component tests: a client, an outbound queue, and the parts.

The components are built as ``Hub.__init__`` builds them, on a real
``InMemoryHubLayer``; only the client and its queue (protocols the hub
types against: ``LocalClient``, ``OutboundQueue``) are fakes. A fake client
reads its rooms from the layer's interest table, as ``HubConsumer`` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from wshub_channels.conf import HubSettings, parse_settings
from wshub_channels.core.membership import ROOMS, Registry
from wshub_channels.hub.heartbeat import Heartbeat
from wshub_channels.hub.policy import Policy
from wshub_channels.hub.roomevents import RoomEvents
from wshub_channels.layers import HubBus
from wshub_channels.message import Message
from wshub_channels.types import AsgiMessage, Data

__all__ = ["DEBUG", "FakeClient", "FakeQueue", "Parts", "Sender", "make_parts", "settings"]

DEBUG = "wshub_channels.metrics.DebugMetrics"


class Sender:
    """Stands for the ``Hub`` class as the sender of hub-level signals."""


def settings(**wshub: Any) -> HubSettings:
    """``WSHUB`` parsed, with ``DebugMetrics`` unless ``METRICS`` is given."""
    return parse_settings({"METRICS": DEBUG, **wshub})


class FakeClient:
    """A local client that records what the hub does to it, in ``calls``."""

    def __init__(self, client_id: str, layer: HubBus, user_id: str | None = None) -> None:
        self.id = self.channel_name = client_id
        self.user_id = user_id
        self.last_seen = 0.0
        self.messages_in = 0
        self.is_closed = False
        self.watch = False  # room_presence's answer
        self.calls: list[tuple[Any, ...]] = []
        self.sent: list[tuple[Data, float | None]] = []
        self.closes: list[tuple[int, str | None]] = []
        self.errors: list[tuple[str, Exception]] = []
        self._interest = layer.interest

    def __repr__(self) -> str:
        return f"FakeClient({self.id!r})"

    @property
    def rooms(self) -> frozenset[str]:
        return frozenset(self._interest.names_of(self.id, ROOMS))

    def in_room(self, room: str) -> bool:
        return room in self.rooms

    def room_presence(self, room: str) -> bool:
        return self.watch

    async def send_data(self, data: Data, timeout: float | None = None) -> None:
        self.sent.append((data, timeout))

    async def close(self, code: int | bool | None = 1000, reason: str | None = None) -> None:
        self.closes.append((int(code or 1000), reason))
        self.is_closed = True

    async def report_error(self, exc: Exception, kind: str = "message_handling") -> None:
        self.errors.append((kind, exc))

    async def on_error(self, error: Exception) -> None:
        self.calls.append(("on_error", error))

    async def before_message(self, msg: Message) -> Message:
        self.calls.append(("client.before_message", msg.text()))
        return msg

    async def on_message(self, msg: Message) -> None:
        self.calls.append(("client.on_message", msg.text()))

    async def before_room_join(self, room: str) -> None:
        self.calls.append(("client.before_room_join", room))

    async def on_room_join(self, room: str) -> None:
        self.calls.append(("client.on_room_join", room))

    async def before_room_leave(self, room: str) -> None:
        self.calls.append(("client.before_room_leave", room))

    async def on_room_leave(self, room: str) -> None:
        self.calls.append(("client.on_room_leave", room))


class FakeQueue:
    """An outbound queue that keeps what it is given; ``room`` bounds it (None: unbounded)."""

    def __init__(self, room: int | None = None, closed: bool = False) -> None:
        self.messages: list[AsgiMessage] = []
        self.room = room
        self.closed = closed
        self.waits: list[float] = []  # the timeout of each push_within

    @property
    def queued(self) -> int:
        return len(self.messages)

    def push(self, message: AsgiMessage) -> bool:
        if self.room is not None and len(self.messages) >= self.room:
            return False
        self.messages.append(message)
        return True

    async def push_within(self, message: AsgiMessage, timeout: float) -> bool:
        self.waits.append(timeout)
        return self.push(message)


@dataclass
class Parts:
    """What ``Hub.__init__`` gives Connections, Delivery and Membership."""

    layer: HubBus
    policy: Policy
    registry: Registry
    heartbeat: Heartbeat
    room_events: RoomEvents

    def args(self) -> tuple[HubBus, Policy, Registry, Heartbeat, RoomEvents]:
        return (self.layer, self.policy, self.registry, self.heartbeat, self.room_events)

    def stats(self) -> dict[str, Any]:
        return self.policy.metrics.stats()  # type: ignore[attr-defined]


def make_parts(layer: HubBus, hub_settings: HubSettings | None = None) -> Parts:
    """The shared parts of one hub on ``layer``, as ``Hub.__init__`` builds them."""
    policy = Policy(hub_settings or settings(), Sender)
    registry = Registry(layer.interest)
    heartbeat = Heartbeat(layer, registry, Sender, lambda: policy.metrics)
    room_events = RoomEvents(layer, registry, lambda: policy.metrics)
    return Parts(layer, policy, registry, heartbeat, room_events)
