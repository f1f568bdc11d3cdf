"""The client side of a connection: identity, metadata, rooms, sends and close.

:class:`HubClient` is the half of :class:`~wshub_channels.connection.consumer.HubConsumer`
that implements :class:`~wshub_channels.types.Client`. Every frame to the
client goes through its bounded outbound queue, the stock ``send`` included,
so ordering holds between ``send`` and ``send_text``. Room membership is
the hub's (:meth:`Membership.join_local
<wshub_channels.hub.membership.Membership.join_local>`): the
client's ``rooms`` are read from the same table the layer routes with.

Use from the connection's event loop.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from ..core.frames import binary_message, data_message, frame_payload, text_message
from ..core.history import Position, Recovery
from ..core.listing import ClientInfo
from ..core.names import channel_node, validate_user_id
from ..core.wire import pack_message
from ..errors import ConnectionClosed
from ..message import check_text, dump_json
from ..types import AsgiMessage, AsgiSend, Data, LocalClient
from .closing import send_close
from .outbound import Outbound

if TYPE_CHECKING:
    from ..core.membership import Slot
    from ..hub.hub import Hub
    from .inbound import Inbound

__all__ = ["HubClient"]

logger = logging.getLogger("wshub_channels.consumer")


class HubClient:
    """Identity, metadata, rooms and sending of one hub connection."""

    hub: Hub
    channel_name: str
    scope: dict[str, Any]
    base_send: Any
    _outbound: Outbound | None = None
    _inbound: Inbound  # the connection's message path and metrics (set at connect)
    _slot: Slot | None = None  # the connection slot held from handshake to registration
    _closed_at: datetime | None = None
    _accepted = False
    connected_since: datetime | None = None  # when the handshake was accepted (UTC)
    messages_in = 0  # frames received
    #: True when the client speaks client protocol v1: the hub's broadcast, room and user
    #: sends reach it as ``msg`` frames (set before the connection is registered).
    framed = False

    @property
    def _me(self) -> LocalClient:
        """This connection as the hub sees it (a ``HubClient`` is always a ``HubConsumer``)."""
        return cast("LocalClient", self)

    # -- identity and metadata -------------------------------------------------------

    @property
    def id(self) -> str:
        """The client id: the channel name, unique in the cluster and naming its node."""
        return self.channel_name

    @property
    def user_id(self) -> str | None:
        """The user id; defaults to ``str(scope["user"].pk)`` for an authenticated user."""
        try:
            value: str | None = self.__dict__["_user_id"]
        except KeyError:
            user = self.scope.get("user")
            authenticated = getattr(user, "is_authenticated", False)
            value = str(user.pk) if user is not None and authenticated else None
            self.__dict__["_user_id"] = value
        return value

    async def set_user_id(self, user_id: str | None) -> None:
        """Set (or clear, with None) the user id; the hub indexes it cluster-wide.

        Raises ``MaxUserConnectionsReached`` when ``user_id`` has no connection
        left here; nothing changes then (the old id and its lookups stay).
        During the handshake the connection slot moves to the new id.
        """
        new = None if user_id is None else validate_user_id(user_id)
        old = self.user_id
        if old == new:
            return
        hub: Hub | None = self.__dict__.get("hub")
        slot = self._slot
        if hub is not None and slot is not None and slot.held:
            hub.connections.move_reservation(slot, new)
        elif hub is not None:
            await hub.connections.change_user(self._me, old, new)
        self.__dict__["_user_id"] = new

    @property
    def metadata(self) -> dict[str, Any]:
        return self.__dict__.setdefault("_metadata", {})  # type: ignore[no-any-return]

    def set_metadata(self, key: str, value: Any) -> None:
        """Set a metadata value; it must be msgpack-serializable (it is listed cluster-wide)."""
        pack_message({key: value})
        self.metadata[key] = value

    def get_metadata(self, key: str, default: Any = None) -> Any:
        return self.metadata.get(key, default)

    def delete_metadata(self, key: str) -> None:
        self.metadata.pop(key, None)

    def describe(self) -> ClientInfo:
        """This connection for cluster-wide listings (``find_client``, ``cluster_clients``)."""
        outbound = self._outbound
        client = self.scope.get("client")
        return ClientInfo(
            id=self.id,
            node=channel_node(self.id) or "",
            user_id=self.user_id,
            rooms=sorted(self.rooms),
            metadata=_listable(self.metadata),
            remote_address=str(client[0]) if client else None,
            user_agent=_header(self.scope, b"user-agent"),
            connected_since=self.connected_since,
            messages_in=self.messages_in,
            messages_out=0 if outbound is None else outbound.sent,
            queue_depth=0 if outbound is None else outbound.queued,
        )

    # -- rooms ---------------------------------------------------------------------------

    @property
    def rooms(self) -> frozenset[str]:
        hub = self.__dict__.get("hub")
        return frozenset() if hub is None else hub.connections.registry.rooms_of(self.channel_name)

    def in_room(self, room: str) -> bool:
        return room in self.rooms

    @property
    def room_count(self) -> int:
        return len(self.rooms)

    async def join_room(self, room: str, since: Position | None = None) -> Recovery:
        """Join ``room``; in a history room, first replay what was missed after ``since``.

        With ``since`` (the position of the last message this client's user
        saw, e.g. sent back by a reconnecting browser), the client is
        subscribed first, then the messages after ``since`` are pushed in
        order, then live ones: none is lost or sent twice. The
        :class:`~wshub_channels.core.history.Recovery` says whether that
        worked (``recovered``) and gives the room's current position; when
        it did not (the epoch changed or the gap is older than the history),
        the application reloads the room's state.

        Raises ``AlreadyInRoom``, ``EmptyRoomName``, ``InvalidName``,
        ``MaxRoomsReached``, ``RoomFull``, ``ConnectionClosed``,
        ``BusUnavailable`` (a history room whose store is down), or what a
        ``before_room_join`` hook raises.
        """
        return await self.hub.membership.join_local(self._me, room, since)

    async def leave_room(self, room: str) -> None:
        """Leave ``room``; raises ``NotInRoom``, or what a ``before_room_leave`` hook raises."""
        await self.hub.membership.leave_local(self._me, room)

    async def leave_all_rooms(self) -> None:
        await self.hub.membership.leave_all_local(self._me)

    # -- sending ---------------------------------------------------------------------------

    @property
    def is_closed(self) -> bool:
        return self._closed_at is not None

    @property
    def closed_at(self) -> datetime | None:
        return self._closed_at

    async def _enqueue(self, message: AsgiMessage, timeout: float | None) -> None:
        outbound = self._outbound
        if outbound is None or outbound.closed or self.is_closed:
            raise ConnectionClosed(f"client {self.channel_name!r} is closed")
        if timeout is None:
            fanout = self.hub.delivery.fanout
            if fanout.idle:
                sent = outbound.push(message)
            else:  # in turn after the fan-out in progress, which may reach this client too
                sent = await fanout.call(lambda: outbound.push(message))
        else:
            sent = await outbound.put(message, timeout)
        if sent:
            self._inbound.sent(frame_payload(message))

    async def send_data(self, data: Data, timeout: float | None = None) -> None:
        """Send ``str`` as a text frame and ``bytes`` as a binary frame; else ``TypeError``.

        Text that UTF-8 cannot encode (a lone surrogate) raises ``InvalidFrame``,
        as in every text send, and nothing is sent.
        """
        if isinstance(data, str):
            check_text(data)
        elif not isinstance(data, bytes):
            raise TypeError(f"data must be str or bytes, not {type(data).__name__}")
        await self._enqueue(data_message(data), timeout)

    async def send_text(self, text: str, timeout: float | None = None) -> None:
        await self._enqueue(text_message(check_text(text)), timeout)

    async def send_binary(self, data: bytes, timeout: float | None = None) -> None:
        await self._enqueue(binary_message(bytes(data)), timeout)

    async def send_json(self, obj: Any, timeout: float | None = None) -> None:
        await self._enqueue(text_message(dump_json(obj)), timeout)

    async def send_raw_json(self, raw: bytes | str, timeout: float | None = None) -> None:
        """Send already-encoded JSON as a text frame."""
        await self.send_text(raw.decode("utf-8") if isinstance(raw, bytes) else raw, timeout)

    async def send(
        self, text_data: str | None = None, bytes_data: bytes | None = None, close: bool = False
    ) -> None:
        """The stock ``send``, routed through the hub queue so ordering holds."""
        if text_data is not None:
            await self.send_text(text_data)
        elif bytes_data is not None:
            await self.send_binary(bytes_data)
        elif not close:
            raise ValueError("You must pass one of bytes_data or text_data")
        if close:
            await self.close(close if isinstance(close, int) and close is not True else 1000)

    async def close(self, code: int | bool | None = 1000, reason: str | None = None) -> None:
        """Close after queued frames are written; the client leaves every lookup at once."""
        await self._close(code, reason, flush=True)

    def _drop_reason(self, reason: str = "closed") -> str:
        """The drop reason for frames abandoned now: "shutdown" while the hub stops."""
        if reason == "closed" and self.hub.lifecycle.state != "running":
            return "shutdown"
        return reason

    async def _close(
        self, code: int | bool | None, reason: str | None, flush: bool, dropped: str = "closed"
    ) -> None:
        """Close with ``code``; frames still queued are reported dropped for ``dropped``."""
        code = 1000 if code is None or code is True else int(code)
        message: AsgiMessage = {"type": "websocket.close", "code": code}
        if reason:
            message["reason"] = reason
        if not self._accepted:
            await self._asgi_send(message)  # before accept: the server answers 403
            return
        if self.is_closed:
            return
        self._closed_at = datetime.now(UTC)
        await self.hub.connections.unregister(self._me)
        outbound = self._outbound
        if outbound is not None and not outbound.closed:
            if flush:
                await outbound.flush(self.hub.policy.config.write_timeout)
            outbound.close(self._drop_reason(dropped))
        try:
            await send_close(self._asgi_send, message, self.id)
        except Exception as exc:
            logger.debug("close of %s failed (the socket may be gone): %r", self.id, exc)

    def _asgi_send(self, message: AsgiMessage) -> Awaitable[None]:
        send = cast(AsgiSend, self.base_send)
        return send(message)


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


def _listable(metadata: dict[str, Any]) -> dict[str, Any]:
    """Metadata that can cross the bus: a value msgpack cannot carry becomes its repr."""
    try:
        pack_message(metadata)
        return dict(metadata)
    except TypeError:
        listed = {}
        for key, value in metadata.items():
            try:
                pack_message({str(key): value})
                listed[str(key)] = value
            except TypeError:
                listed[str(key)] = repr(value)
        return listed
