"""The consumer side of client protocol v1: ``HubProtocolMixin`` and ``ProtocolHubConsumer``.

Use the mixin before the consumer class (``class Chat(HubProtocolMixin,
HubConsumer)``), or subclass ``ProtocolHubConsumer``. A client that offers the
subprotocol ``"wshub.v1"`` gets it selected (beside a token in
``"wshub.token.<t>"`` or a first ``auth`` frame, with one accept) and speaks
the protocol of :mod:`wshub_channels.core.protocol`:

- once admitted, before the client is reachable through the hub, it is
  ``framed`` (the hub sends it every room, user, client and broadcast message
  as a ``msg`` frame) and gets ``welcome``, before anything else;
- ``join`` calls ``join_room(room, since=...)``, so what it missed in a history
  room comes first, then ``joined`` with whether it was recovered and the
  room's position; ``leave`` answers ``left``; ``send`` calls
  :meth:`on_room_send`; refusals are ``error`` frames with a stable code
  (``room_full``, ``max_rooms``, ``unauthorized``, ``invalid_name``,
  ``already_in_room``, ``not_in_room``, ``rate_limited``, ``bad_frame``...);
- the server pings every ``protocol_ping`` seconds and closes with 1011 (4011
  under daphne) when nothing came back within ``protocol_ping_timeout``;
- being taken out of a room by the server sends ``left`` with ``ref`` null, and
  room presence events (``room_presence``) become ``presence`` frames: an
  override of ``on_room_leave`` or ``on_room_presence`` calls ``super()``.

Protocol frames take the size check, the count and the rate limit of every
frame, not the ``before_message`` hooks, the middleware, ``on_message`` or the
``message_received`` signal.
Frames without ``"t"`` go to the application's ``on_message`` unchanged. A
client that does not offer ``"wshub.v1"`` gets plain ``HubConsumer``
behaviour. Use from the connection's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any, cast

from asgiref.typing import WebSocketReceiveEvent

from ..core.listing import RoomEvent
from ..core.protocol import (
    PROTOCOL,
    AuthFrame,
    BadFrame,
    ClientFrame,
    JoinFrame,
    LeaveFrame,
    PongFrame,
    Ref,
    SendFrame,
    error_code,
    error_frame,
    error_message,
    joined_frame,
    left_frame,
    ping_frame,
    presence_frame,
    read_frame,
    welcome_frame,
)
from ..core.ratelimit import clock
from ..errors import ConnectionClosed, NotInRoom, RateLimitExceeded
from ..log import Throttle
from ..tasks import spawn
from .consumer import HubConsumer

__all__ = ["PROTOCOL", "HubProtocolMixin", "ProtocolHubConsumer"]

logger = logging.getLogger("wshub_channels.consumer")
_ping_log = Throttle(logger, 5.0)

CLOSE_PING_TIMEOUT = 1011

if TYPE_CHECKING:
    _Base = HubConsumer
else:
    _Base = object


class HubProtocolMixin(_Base):
    """Client protocol v1 on a ``HubConsumer`` (put it first among the bases)."""

    #: Seconds between the server's pings (0 or None: no pings, no timeout).
    protocol_ping: float | None = 20.0
    #: Seconds a client has to send anything (a pong) after a ping before it is closed
    #: (at most ``protocol_ping``: the next ping is never later than the interval).
    protocol_ping_timeout: float = 10.0

    _pinger: asyncio.Task[None] | None = None
    _leaving: frozenset[str] = frozenset()  # rooms a "leave" frame is taking us out of

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        mro = cls.__mro__
        if HubConsumer in mro and mro.index(HubConsumer) < mro.index(HubProtocolMixin):
            # HubConsumer's methods would win: the protocol would never be spoken.
            raise TypeError(f"{cls.__name__}: put HubProtocolMixin before HubConsumer in the bases")

    # -- what an application may override ----------------------------------------------

    async def on_room_send(self, room: str, data: str) -> None:
        """A ``send`` frame: by default ``data`` goes to everyone in ``room`` (the sender
        too), when the sender is in it; else ``NotInRoom``. Raise to refuse: the client
        gets an ``error`` frame with the code of what was raised."""
        if not self.in_room(room):
            raise NotInRoom(f"join {room!r} before sending to it")
        await self.hub.broadcast_to_room(room, data)

    def protocol_error(self, exc: BaseException, frame: ClientFrame | None) -> tuple[str, str]:
        """The code and the sentence an ``error`` frame tells of ``exc`` (raised answering
        ``frame``). Override to reword, or to give a code to the application's own
        exceptions; keep the codes, clients act on them. What maps to
        ``server_error`` is also reported (``on_error``, ``hub_error``) as a bug."""
        return error_code(exc), error_message(exc)

    async def on_room_leave(self, room: str) -> None:
        """Tell the client when the server took it out of ``room`` (``left``, ref null)."""
        await super().on_room_leave(room)
        if self.framed and room not in self._leaving:
            await self._send_frame(left_frame(room, None))

    async def on_room_presence(self, event: RoomEvent) -> None:
        """Forward a room presence event as a ``presence`` frame."""
        await super().on_room_presence(event)
        if self.framed:
            who = (event.client_id, event.user_id, event.node)
            await self._send_frame(presence_frame(event.room, event.event, *who))

    # -- the handshake -----------------------------------------------------------------

    async def accept(self, subprotocol: str | None = None, headers: Any = None) -> None:
        """Accept, selecting ``"wshub.v1"`` when offered and nothing else was chosen."""
        if subprotocol is None and _offered(self.scope):
            subprotocol = PROTOCOL
        await super().accept(subprotocol, headers)

    async def _before_register(self) -> None:
        await super()._before_register()
        if not _offered(self.scope):
            return
        self.framed = True  # the server selected it (the accept above, or the token gate)
        every = self.protocol_ping or 0
        with contextlib.suppress(ConnectionClosed):
            await self.send_text(welcome_frame(self.id, self.hub.node_id, every))
        if every > 0:
            self._pinger = spawn(self._ping(every), "protocol ping")

    async def finish(self, code: int) -> None:
        pinger, self._pinger = self._pinger, None
        if pinger is not None and pinger is not asyncio.current_task():
            pinger.cancel()
        await super().finish(code)

    async def _ping(self, every: float) -> None:
        """Ping every ``every`` seconds; close with 1011 when nothing came back in time."""
        wait = min(max(self.protocol_ping_timeout, 0.0), every)
        while not self.is_closed:
            await asyncio.sleep(every - wait)
            sent = clock()
            try:
                await self.send_text(ping_frame())
            except ConnectionClosed:
                return
            await asyncio.sleep(wait)
            if self.last_seen < sent and not self.is_closed:
                _ping_log.info("closing %s (1011): no answer to a ping in %g s", self.id, wait)
                self._pinger = None
                try:
                    await self._close(CLOSE_PING_TIMEOUT, "ping timeout", flush=False)
                finally:
                    await self.finish(CLOSE_PING_TIMEOUT)
                return

    # -- frames from the client ------------------------------------------------------------

    async def websocket_receive(self, message: WebSocketReceiveEvent) -> None:
        gate = self._token_gate
        text = message.get("text")
        if not self.framed or text is None or (gate is not None and gate.holds_frames):
            await super().websocket_receive(message)
            return
        try:
            frame = read_frame(text)
        except BadFrame as exc:
            if await self._inbound.admit(text):
                await self._refused(exc, None, exc.ref)
            return
        if frame is None:  # the application's own frame
            await super().websocket_receive(message)
            return
        if not await self._inbound.admit(text):
            if not self.is_closed:  # over the rate limit (reported already)
                await self._refused(RateLimitExceeded("rate limit exceeded"), frame)
            return
        try:
            await self._handle(frame)
        except Exception as exc:
            await self._refused(exc, frame)

    async def _handle(self, frame: ClientFrame) -> None:
        if isinstance(frame, PongFrame):
            return
        if isinstance(frame, JoinFrame):
            await self._join(frame)
        elif isinstance(frame, LeaveFrame):
            await self._leave(frame)
        elif isinstance(frame, SendFrame):
            await self.on_room_send(frame.room, frame.data)
        elif isinstance(frame, AuthFrame):
            raise BadFrame("an auth frame comes first, once", code="unexpected_auth")

    async def _join(self, frame: JoinFrame) -> None:
        recovery = await self.join_room(frame.room, since=frame.since)
        joined = joined_frame(frame.room, recovery.recovered, recovery.position, frame.ref)
        await self._send_frame(joined)

    async def _leave(self, frame: LeaveFrame) -> None:
        room = frame.room
        self._leaving = self._leaving | {room}
        try:
            await self.leave_room(room)
        finally:
            self._leaving = self._leaving - {room}
        await self._send_frame(left_frame(room, frame.ref))

    async def _refused(
        self, exc: BaseException, frame: ClientFrame | None, ref: Ref = None
    ) -> None:
        code, text = self.protocol_error(exc, frame)
        if code == "server_error":  # not a refusal: a bug, reported like a handler's error
            await self.report_error(cast(Exception, exc), "message_handling")
        if frame is not None:
            ref = getattr(frame, "ref", None)
        await self._send_frame(error_frame(code, text, ref))

    async def _send_frame(self, text: str) -> None:
        """Queue a protocol frame; a client that is closing gets nothing."""
        if self.is_closed:
            return
        with contextlib.suppress(ConnectionClosed):
            await self.send_text(text)


def _offered(scope: dict[str, Any]) -> bool:
    return PROTOCOL in (scope.get("subprotocols") or ())


class ProtocolHubConsumer(HubProtocolMixin, HubConsumer):  # type: ignore[misc]
    """A ``HubConsumer`` that speaks client protocol v1 to clients that offer it."""
