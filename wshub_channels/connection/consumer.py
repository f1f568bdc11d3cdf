"""HubConsumer and JsonHubConsumer: ASGI WebSocket events in, hub calls out.

A ``HubConsumer`` is a stock ``AsyncWebsocketConsumer`` (``as_asgi()``,
``groups``, ``group_send`` handlers and ``send``/``close`` keep their meaning)
that is also a hub client (:class:`~wshub_channels.connection.client.HubClient`): it has
an id (its channel name), an optional user id, metadata, rooms, and a
bounded outbound queue that every frame to it goes through.

Connection order: handshake checks (hub state, origin, limits,
``before_connect``), then accept, then registration with the hub, then
``on_connect``. Each event runs the hub-wide hook, then the override here,
then the signal (:mod:`wshub_channels.hub.events`). Hooks and handlers that
raise are reported to ``on_error`` and the ``hub_error`` signal; the
connection survives them.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import UTC, datetime
from typing import Any, NoReturn, cast

from asgiref.typing import WebSocketConnectEvent, WebSocketDisconnectEvent, WebSocketReceiveEvent
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer

from ..auth import TokenAuth
from ..core.listing import RoomEvent
from ..core.ratelimit import clock
from ..errors import (
    HubError,
    InvalidName,
    MaxConnectionsReached,
    MaxUserConnectionsReached,
    Unauthorized,
)
from ..hub.hub import get_hub
from ..log import Throttle
from ..message import Message, dump_json
from ..origin import resolve as resolve_origin
from ..tasks import spawn
from ..types import AsgiSend, Data
from .client import HubClient
from .directwrite import detect
from .inbound import CLOSE_POLICY, CLOSE_TOO_BIG, Inbound
from .outbound import Outbound
from .tokenauth import TokenGate, close_refused

__all__ = ["CLOSE_POLICY", "CLOSE_TOO_BIG", "HubConsumer", "JsonHubConsumer", "dump_json"]

logger = logging.getLogger("wshub_channels.consumer")
_error_log = Throttle(logger, 5.0)
#: Refused handshakes: a storm of them logs one line every few seconds, with the count held back.
_refusal_log = Throttle(logger, 5.0)
_write_log = Throttle(logger, 5.0)  # failed writes: a bad frame can hit a whole room at once

CLOSE_INTERNAL_ERROR = 1011
CLOSE_TRY_AGAIN = 1013


class HubConsumer(HubClient, AsyncWebsocketConsumer):  # type: ignore[misc]
    """Subclass this and override the ``before_*``/``on_*`` hooks."""

    _finished = False
    last_seen = 0.0  # rate-limit clock time of the last frame received (idle timeout)
    #: ``TokenAuth(...)`` to admit clients by a signed token (``wshub_channels.auth``).
    token_auth: TokenAuth | None = None
    _token_gate: TokenGate | None = None

    # -- hooks to override ----------------------------------------------------------

    async def before_connect(self) -> None:
        """Raise ``AuthenticationFailed`` or ``Unauthorized`` to reject the handshake (403)."""

    async def on_connect(self) -> None:
        """Called once the client is accepted and reachable through the hub."""

    async def before_message(self, msg: Message) -> Message:
        """Return the message (or a new one) to handle it; raise to reject it."""
        return msg

    async def on_message(self, msg: Message) -> None:
        """Handle a message. The default calls the stock ``receive(text_data, bytes_data)``."""
        data = msg.data
        if isinstance(data, str):
            await self.receive(text_data=data)
        else:
            await self.receive(bytes_data=data)

    async def on_close(self, code: int) -> None:
        """Called once when the connection has closed, for any reason."""

    async def on_error(self, error: Exception) -> None:
        """Called with errors from handlers and hooks; the connection stays open."""

    async def on_send_dropped(self, data: bytes | str) -> None:
        """Called for every outbound message the drop policy discarded."""

    async def before_room_join(self, room: str) -> None:
        """Raise (for example ``Unauthorized``) to refuse joining ``room``."""

    async def on_room_join(self, room: str) -> None:
        """Called after the client joined ``room``."""

    async def before_room_leave(self, room: str) -> None:
        """Raise to refuse leaving ``room``."""

    def room_presence(self, room: str) -> bool:
        """Return True to announce this client's joins and leaves of ``room`` cluster-wide.

        The same answer also subscribes the client to the others' announcements:
        it then gets :meth:`on_room_presence` when anyone joins or leaves
        ``room``, on any node (see :mod:`wshub_channels.hub.roomevents`). Default:
        no room, so rooms cost no extra bus traffic.
        """
        return False

    async def on_room_presence(self, event: RoomEvent) -> None:
        """Someone else joined or left one of this client's ``room_presence`` rooms."""

    async def on_room_leave(self, room: str) -> None:
        """Called after the client left ``room``."""

    async def report_error(self, exc: Exception, kind: str = "message_handling") -> None:
        """Report ``exc``: log (throttled), count, hub hook and ``on_error``, ``hub_error``."""
        await self.hub.policy.events.report_error(self, exc, kind)

    # -- ASGI events --------------------------------------------------------------------------

    async def websocket_connect(self, message: WebSocketConnectEvent) -> None:
        hub = self.hub = get_hub(self.channel_layer_alias)
        policy, connections = hub.policy, hub.connections
        inbound = self._inbound = Inbound(self, policy)
        self.last_seen = clock()
        try:  # the slot reserved here is given back on every path, cancellation included
            try:
                await hub.start()
                hub.lifecycle.check_accepting()
                if not resolve_origin(policy.config.check_origin)(self.scope):
                    inbound.error("origin_rejected")
                    raise Unauthorized("origin not allowed")
                gate = self._token_gate
                if gate is None and self.token_auth is not None:
                    gate = self._token_gate = TokenGate(self, self.token_auth)
                if gate is not None and not await gate.admit():
                    return  # accepted, waiting for the auth frame (websocket_receive)
                self._slot = connections.reserve(self.user_id)
                await policy.events.check(self, "connect")
                for group in self.groups:
                    await self.channel_layer.group_add(group, self.channel_name)
                if gate is None or not gate.accepted:
                    await self.accept(None if gate is None else gate.subprotocol)
            except (HubError, PermissionError) as exc:
                _refusal_log.info("handshake rejected (%s): %s", type(exc).__name__, exc)
                if isinstance(exc, InvalidName):  # a bad room, user or group name: a bug
                    await policy.events.report_error(self, exc, "handshake_error")
                await self._refuse(exc)
            except Exception as exc:
                logger.debug("handshake of %s failed", self.channel_name, exc_info=exc)
                await policy.events.report_error(self, exc, "handshake_error")
                await self._refuse(exc)
            self._accepted = True
            self.connected_since = datetime.now(UTC)
            config = policy.config
            self._outbound = Outbound(
                cast(AsgiSend, self.base_send),
                config,
                self._dropped,
                self._overflow_disconnect,
                detect(self.base_send) if config.direct_writes else None,
            )
            await self._before_register()
            await connections.register(self, self._outbound, self._slot)  # the slot: the client
        finally:
            if self._slot is not None:
                connections.unreserve(self._slot)
        inbound.accepted(self.last_seen)
        try:
            await policy.events.notify(
                self, "connect", reraise=(MaxConnectionsReached, MaxUserConnectionsReached)
            )
        except (MaxConnectionsReached, MaxUserConnectionsReached) as exc:
            # The limit became known only after accept: close with 1013 (try again later).
            logger.info("closing %s after accept: %s", self.id, exc)
            await self.close(CLOSE_TRY_AGAIN, "connection limit")

    async def _before_register(self) -> None:
        """Accepted, the outbound queue is up, not yet reachable through the hub: the
        protocol mixin sets ``framed`` and queues its ``welcome`` here. Must not raise."""

    async def _refuse(self, exc: Exception) -> NoReturn:
        """Refuse the handshake: count it, free the channel and its groups, close (403,
        or a close code for a token refused or a connection accepted early)."""
        self._inbound.refused(exc)
        await self._release_channel()
        with contextlib.suppress(Exception):  # the socket may be gone already
            await close_refused(self._asgi_send, self._token_gate, exc, self.scope)
        raise StopConsumer() from None

    async def _release_channel(self) -> None:
        try:  # and the groups joined so far
            await self.hub.layer.release_channel(self.channel_name)
        except Exception as error:
            _error_log.warning("refused handshake %s kept its channel: %r", self.id, error)

    async def websocket_receive(self, message: WebSocketReceiveEvent) -> None:
        data: str | bytes | None = message.get("text")
        if data is None:
            data = message.get("bytes") or b""
        gate = self._token_gate
        if gate is not None and gate.holds_frames:  # not admitted yet: the auth frame
            if await gate.first_frame(data):
                await self.websocket_connect({"type": "websocket.connect"})
            return
        await self._inbound.receive(data)

    async def websocket_disconnect(self, message: WebSocketDisconnectEvent) -> None:
        code = int(message.get("code", 1000) or 1000)
        await self.finish(code)
        raise StopConsumer()

    async def finish(self, code: int) -> None:
        """Run teardown once: leave the hub, free the channel, call ``on_close``."""
        if self._finished:
            return
        self._finished = True
        if self._closed_at is None:
            self._closed_at = datetime.now(UTC)
        if self._outbound is not None:
            self._outbound.close(self._drop_reason())
        if self._token_gate is not None:
            await self._token_gate.end(self._release_channel)
        if hasattr(self, "hub"):
            await self.hub.connections.unregister(self)
        layer = self.channel_layer
        if layer is not None:
            for group in self.groups:
                await layer.group_discard(group, self.channel_name)
        if self._accepted:
            events = self.hub.policy.events
            self._inbound.ended()
            await events.call(self, self.disconnect, code)
            await events.notify(self, "close", code, code=code)

    # -- drops ----------------------------------------------------------------------------------

    def _dropped(self, data: Data, reason: str | None = None) -> None:
        """Count one discarded outbound frame under ``reason`` (default: the drop policy)
        and tell ``on_send_dropped`` and ``send_dropped``, if anyone listens."""
        self._inbound.dropped(reason)
        events = self.hub.policy.events
        overridden = type(self).on_send_dropped is not HubConsumer.on_send_dropped
        if events.wants_drop_report(self, overridden):
            spawn(events.notify(self, "send_dropped", data, data=data), "send-dropped hooks")

    def _overflow_disconnect(self, error: BaseException | None = None) -> None:
        """The outbound queue asks to end the connection: a slow client, or a failed write."""
        if error is not None:
            self._write_failed(error)
            return
        _error_log.warning(
            "closing slow client %s (1013): outbound queue full or a write timed out", self.id
        )
        spawn(
            self._close(CLOSE_TRY_AGAIN, "send queue full", flush=False, dropped="disconnect"),
            "slow-client close",
        )

    def _write_failed(self, error: BaseException) -> None:
        """A write the server refused: close with 1011 (4011 under daphne), then run the
        disconnect path at once, so nobody waits on a socket that takes no frames."""
        self._inbound.error("write_failed")
        _write_log.warning("closing %s (1011): a write failed: %r", self.id, error)
        spawn(self._end_after_write_failure(), "write-failed close")

    async def _end_after_write_failure(self) -> None:
        try:
            await self._close(CLOSE_INTERNAL_ERROR, "write failed", flush=False)
        finally:
            await self.finish(CLOSE_INTERNAL_ERROR)


class JsonHubConsumer(HubConsumer):
    """A HubConsumer for JSON: override ``on_json``. Invalid JSON goes to ``on_error``."""

    async def on_message(self, msg: Message) -> None:
        try:
            content = msg.json()
        except ValueError as exc:
            raise ValueError(f"invalid JSON from client: {exc}") from exc
        await self.on_json(content)

    async def on_json(self, content: Any) -> None:
        """Handle one decoded JSON message."""
