"""What the hub, hooks and middleware see of a connection.

:class:`Client` is the public face of one WebSocket connection: its id, user
id, metadata and rooms, and the ways to send to it or close it.
:class:`HubConsumer <wshub_channels.connection.consumer.HubConsumer>` implements it, and
hub lookups return those same objects for local clients. Code outside the
consumer (the hub, hooks, middleware, signal receivers) types against this
protocol and never imports the consumer.

:class:`LocalClient` adds what the hub itself calls on a client of this node:
the per-connection hooks a ``HubConsumer`` subclass overrides. (The admin's
``models.Connection`` is a different thing: a row of the cluster listing.)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:  # annotations only: types stays at the bottom of the import graph
    from .core.history import Position, Recovery
    from .core.listing import ClientInfo, RoomEvent
    from .message import Message

__all__ = ["AsgiMessage", "AsgiSend", "Client", "Data", "Handler", "LocalClient", "Middleware"]

#: What a client is sent: ``str`` travels as a text frame, ``bytes`` as a binary one.
Data = str | bytes
#: One ASGI message (``websocket.send``, ``websocket.close``...).
AsgiMessage = dict[str, Any]
#: The ASGI ``send`` callable of one connection.
AsgiSend = Callable[[AsgiMessage], Awaitable[None]]


@runtime_checkable
class Client(Protocol):
    """One connection, as the hub API, hooks and middleware see it.

    Methods are called from the event loop that serves the connection (the
    hub forwards calls made on other loops there).
    """

    @property
    def id(self) -> str:
        """Unique in the cluster and routable: the connection's channel name."""

    @property
    def user_id(self) -> str | None: ...

    async def set_user_id(self, user_id: str | None) -> None: ...

    @property
    def metadata(self) -> dict[str, Any]: ...

    def set_metadata(self, key: str, value: Any) -> None: ...

    def get_metadata(self, key: str, default: Any = None) -> Any: ...

    def delete_metadata(self, key: str) -> None: ...

    @property
    def rooms(self) -> frozenset[str]: ...

    def in_room(self, room: str) -> bool: ...

    @property
    def room_count(self) -> int: ...

    @property
    def is_closed(self) -> bool: ...

    @property
    def closed_at(self) -> datetime | None: ...

    async def send_data(self, data: Data, timeout: float | None = None) -> None: ...

    async def send_text(self, text: str, timeout: float | None = None) -> None: ...

    async def send_binary(self, data: bytes, timeout: float | None = None) -> None: ...

    async def send_json(self, obj: Any, timeout: float | None = None) -> None: ...

    async def send_raw_json(self, raw: bytes | str, timeout: float | None = None) -> None: ...

    async def close(self, code: int | bool | None = 1000, reason: str | None = None) -> None: ...

    async def join_room(self, room: str, since: Position | None = None) -> Recovery: ...

    async def leave_room(self, room: str) -> None: ...

    async def leave_all_rooms(self) -> None: ...

    async def on_message(self, msg: Message) -> None:
        """Handle one message (the innermost step of the middleware chain)."""

    async def report_error(self, exc: Exception, kind: str = "message_handling") -> None:
        """Report ``exc`` as the hub reports handler errors (log, count, hooks, signal)."""


class LocalClient(Client, Protocol):
    """A local client as the hub drives it: a :class:`Client` with its own hooks."""

    last_seen: float

    async def on_error(self, error: Exception) -> None: ...

    async def on_send_dropped(self, data: Data) -> None: ...

    async def before_room_join(self, room: str) -> None: ...

    async def on_room_join(self, room: str) -> None: ...

    async def before_room_leave(self, room: str) -> None: ...

    async def on_room_leave(self, room: str) -> None: ...

    def room_presence(self, room: str) -> bool: ...

    async def on_room_presence(self, event: RoomEvent) -> None: ...

    def describe(self) -> ClientInfo:
        """This connection for cluster-wide listings."""

    async def finish(self, code: int) -> None:
        """Run the connection's teardown once (hooks and signals included)."""


#: A message handler: what middleware wraps, innermost the hub's dispatch.
Handler = Callable[[Client, "Message"], Awaitable[None]]
#: Takes a handler and returns one that wraps it.
Middleware = Callable[[Handler], Handler]
