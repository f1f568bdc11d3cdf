"""HubConsumer and JsonHubConsumer: ASGI WebSocket events in, hub calls out.

A ``HubConsumer`` is a stock ``AsyncWebsocketConsumer`` (``as_asgi()``,
``groups``, ``group_send`` handlers and ``send``/``close`` keep their meaning)
that is also a hub client: it has an id (its channel name), an optional user
id, metadata, rooms, and a bounded outbound queue that every frame to it goes
through, stock ``send`` included.

Connection order: handshake checks (hub state, origin, ``before_connect``),
then accept, then registration with the hub, then ``on_connect``. Hooks and
handlers that raise are reported to ``on_error`` and the ``hub_error`` signal;
the connection survives them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Any, cast

from asgiref.typing import WebSocketConnectEvent, WebSocketDisconnectEvent, WebSocketReceiveEvent
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer

from . import signals
from .config import Limits
from .errors import (
    AlreadyInRoom,
    ConnectionClosed,
    HubError,
    MaxConnectionsReached,
    MaxRoomsReached,
    MaxUserConnectionsReached,
    NotInRoom,
    RateLimitExceeded,
    RoomFull,
    Unauthorized,
)
from .hub import ROOMS, Hub, get_hub
from .layers.names import validate_room, validate_user_id
from .log import Throttle
from .message import Message
from .origin import resolve as resolve_origin
from .outbound import AsgiMessage, AsgiSend, Outbound, text_frame
from .ratelimit import TokenBucket
from .tasks import spawn

__all__ = ["HubConsumer", "JsonHubConsumer", "dump_json"]

logger = logging.getLogger("wshub_channels.consumer")
_error_log = Throttle(logger, 5.0)

CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_TRY_AGAIN = 1013


def dump_json(obj: Any) -> str:
    """Encode ``obj`` as compact JSON text."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


class HubConsumer(AsyncWebsocketConsumer):
    """Subclass this and override the ``before_*``/``on_*`` hooks."""

    hub: Hub
    _outbound: Outbound | None = None
    _closed_at: datetime | None = None
    _finished = False
    _accepted = False
    _buckets: list[tuple[TokenBucket, bool]] = []
    last_seen = 0.0  # loop time of the last frame received (idle timeout)

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

    async def on_room_leave(self, room: str) -> None:
        """Called after the client left ``room``."""

    # -- identity and metadata -------------------------------------------------------------

    @property
    def id(self) -> str:
        """The client id: the channel name, unique in the cluster and naming its node."""
        name: str = self.channel_name
        return name

    @property
    def user_id(self) -> str | None:
        try:
            value: str | None = self.__dict__["_user_id"]
        except KeyError:
            user = self.scope.get("user")
            value = (
                str(user.pk)
                if user is not None and getattr(user, "is_authenticated", False)
                else None
            )
            self.__dict__["_user_id"] = value
        return value

    async def set_user_id(self, user_id: str | None) -> None:
        """Set (or clear, with None) the user id; the hub indexes it cluster-wide."""
        new = None if user_id is None else validate_user_id(user_id)
        old = self.user_id
        self.__dict__["_user_id"] = new
        if old != new:
            await self.hub.change_user(self, old, new)

    @property
    def metadata(self) -> dict[str, Any]:
        return self.__dict__.setdefault("_metadata", {})  # type: ignore[no-any-return]

    def set_metadata(self, key: str, value: Any) -> None:
        """Set a metadata value; it must be msgpack-serializable (it is listed cluster-wide)."""
        from .layers.envelope import pack_message

        pack_message({key: value})
        self.metadata[key] = value

    def get_metadata(self, key: str, default: Any = None) -> Any:
        return self.metadata.get(key, default)

    def delete_metadata(self, key: str) -> None:
        self.metadata.pop(key, None)

    # -- rooms ------------------------------------------------------------------------------

    @property
    def _rooms(self) -> set[str]:
        return self.__dict__.setdefault("_room_set", set())  # type: ignore[no-any-return]

    @property
    def rooms(self) -> frozenset[str]:
        return frozenset(self._rooms)

    def in_room(self, room: str) -> bool:
        return room in self._rooms

    @property
    def room_count(self) -> int:
        return len(self._rooms)

    async def join_room(self, room: str) -> None:
        """Join ``room``.

        Raises ``AlreadyInRoom``, ``EmptyRoomName``, ``InvalidName``,
        ``MaxRoomsReached``, ``RoomFull``, or what a ``before_room_join`` hook raises.
        """
        room = validate_room(room)
        if self.is_closed:
            raise ConnectionClosed("the connection is closed")
        if room in self._rooms:
            raise AlreadyInRoom(f"already in room {room!r}")
        hub = self.hub
        limits = hub.limits
        if limits.max_rooms_per_client and len(self._rooms) >= limits.max_rooms_per_client:
            raise MaxRoomsReached(f"already in {limits.max_rooms_per_client} rooms")
        members = len(hub.layer.local_members(ROOMS, room) or ())
        if limits.max_clients_per_room and members >= limits.max_clients_per_room:
            raise RoomFull(f"room {room!r} has {limits.max_clients_per_room} clients here")
        if hub.hooks is not None:
            await hub.hooks.before_room_join(self, room)
        await self.before_room_join(room)
        self._rooms.add(room)
        await hub.layer.add_interest(ROOMS, room, self.id)
        hub.metrics.increment_room_joins()
        if not members:
            hub.metrics.increment_rooms()
        if hub.hooks is not None:
            await self._hook(hub.hooks.on_room_join, self, room)
        await self._hook(self.on_room_join, room)
        await self._signal(signals.room_joined, room=room)

    async def leave_room(self, room: str) -> None:
        """Leave ``room``; raises ``NotInRoom``, or what a ``before_room_leave`` hook raises."""
        room = validate_room(room)
        if room not in self._rooms:
            raise NotInRoom(f"not in room {room!r}")
        hub = self.hub
        if hub.hooks is not None:
            await hub.hooks.before_room_leave(self, room)
        await self.before_room_leave(room)
        self._rooms.discard(room)
        await hub.layer.discard_interest(ROOMS, room, self.id)
        hub.metrics.increment_room_leaves()
        if not hub.layer.local_members(ROOMS, room):
            hub.metrics.decrement_rooms()
        if hub.hooks is not None:
            await self._hook(hub.hooks.on_room_leave, self, room)
        await self._hook(self.on_room_leave, room)
        await self._signal(signals.room_left, room=room)

    async def leave_all_rooms(self) -> None:
        for room in sorted(self._rooms):
            await self.leave_room(room)

    # -- sending ----------------------------------------------------------------------------

    @property
    def is_closed(self) -> bool:
        return self._closed_at is not None

    @property
    def closed_at(self) -> datetime | None:
        return self._closed_at

    def push_frame(self, message: AsgiMessage) -> None:
        """Queue a prepared ASGI message without waiting (the hub's fan-out path)."""
        outbound = self._outbound
        if outbound is not None and not outbound.closed:
            outbound.push(message)

    async def put_frame(self, message: AsgiMessage, timeout: float) -> None:
        """Queue a prepared message, waiting up to ``timeout`` for room; drops on timeout."""
        outbound = self._outbound
        if outbound is None or outbound.closed:
            return
        try:
            await outbound.put(message, timeout)
        except HubError:
            self._dropped(message.get("text") or message.get("bytes") or b"")

    async def _enqueue(self, message: AsgiMessage, timeout: float | None) -> None:
        outbound = self._outbound
        if outbound is None or outbound.closed or self.is_closed:
            raise ConnectionClosed(f"client {self.channel_name!r} is closed")
        if timeout is None:
            sent = outbound.push(message)
        else:
            await outbound.put(message, timeout)
            sent = True
        if sent:
            self.hub.metrics.increment_messages_sent(1)

    async def send_data(self, data: str | bytes, timeout: float | None = None) -> None:
        """Send ``str`` as a text frame and ``bytes`` as a binary frame."""
        await self._enqueue(text_frame(data), timeout)

    async def send_text(self, text: str, timeout: float | None = None) -> None:
        await self._enqueue({"type": "websocket.send", "text": text}, timeout)

    async def send_binary(self, data: bytes, timeout: float | None = None) -> None:
        await self._enqueue({"type": "websocket.send", "bytes": bytes(data)}, timeout)

    async def send_json(self, obj: Any, timeout: float | None = None) -> None:
        await self.send_text(dump_json(obj), timeout)

    async def send_raw_json(self, raw: bytes | str, timeout: float | None = None) -> None:
        """Send already-encoded JSON as a text frame."""
        await self.send_text(raw.decode("utf-8") if isinstance(raw, bytes) else raw, timeout)

    async def send(  # type: ignore[override]
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

    async def _close(self, code: int | bool | None, reason: str | None, flush: bool) -> None:
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
        await self.hub.unregister(self)
        outbound = self._outbound
        if outbound is not None and not outbound.closed:
            if flush:
                await outbound.flush(self.hub.config.write_timeout)
            outbound.close()
        try:
            await self._asgi_send(message)
        except Exception as exc:
            if not 1001 <= code <= 1015:
                logger.debug("close of %s failed (the socket may be gone): %r", self.id, exc)
                return
            # daphne (autobahn) sends only 1000 and 3000-4999: send 4xxx for 1xxx there.
            fallback = code + 3000
            logger.info("server refused close code %d for %s; sent %d", code, self.id, fallback)
            message["code"] = fallback
            with contextlib.suppress(Exception):
                await self._asgi_send(message)

    # -- ASGI events --------------------------------------------------------------------------

    def _asgi_send(self, message: AsgiMessage) -> Awaitable[None]:
        send = cast(AsgiSend, self.base_send)
        return send(message)

    async def websocket_connect(self, message: WebSocketConnectEvent) -> None:
        hub = self.hub = get_hub(self.channel_layer_alias)
        self.last_seen = asyncio.get_running_loop().time()
        reserved_for: list[str | None] = []
        try:
            await hub.start()
            hub.check_accepting()
            if not resolve_origin(hub.config.check_origin)(self.scope):
                hub.metrics.increment_errors("origin_rejected")
                raise Unauthorized("origin not allowed")
            hub.reserve(self.user_id)
            reserved_for.append(self.user_id)
            if hub.hooks is not None:
                await hub.hooks.before_connect(self)
            await self.before_connect()
        except (HubError, PermissionError) as exc:
            for user_id in reserved_for:
                hub.unreserve(user_id)
            hub.stats.rejected_handshakes += 1
            logger.info("handshake rejected (%s): %s", type(exc).__name__, exc)
            await self._asgi_send({"type": "websocket.close", "code": 1008})
            raise StopConsumer() from None
        for group in self.groups:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()
        self._accepted = True
        config, limits = hub.config, hub.limits
        self._outbound = Outbound(
            cast(AsgiSend, self.base_send), config, self._dropped, self._overflow_disconnect
        )
        self._buckets = _buckets(limits, self.last_seen)
        hub.unreserve(reserved_for[0])
        await hub.register(self)
        hub.metrics.increment_connections()
        try:
            if hub.hooks is not None:
                await hub.hooks.on_connect(self)
            await self.on_connect()
        except (MaxConnectionsReached, MaxUserConnectionsReached) as exc:
            # The limit became known only after accept: close with 1013 (try again later).
            logger.info("closing %s after accept: %s", self.id, exc)
            await self.close(CLOSE_TRY_AGAIN, "connection limit")
            return
        except Exception as exc:
            await self.report_error(exc, "hook_error")
        await self._signal(signals.client_connected)

    async def websocket_receive(self, message: WebSocketReceiveEvent) -> None:
        data: str | bytes | None = message.get("text")
        if data is None:
            data = message.get("bytes") or b""
        size = len(data.encode("utf-8")) if isinstance(data, str) else len(data)
        hub = self.hub
        metrics = hub.metrics
        if size > hub.config.max_message_size:
            hub.stats.oversized += 1
            metrics.increment_errors("message_too_big")
            _error_log.warning("closing %s: %d-byte frame over max_message_size", self.id, size)
            await self.close(CLOSE_TOO_BIG, "message too big")
            return
        now = self.last_seen = asyncio.get_running_loop().time()
        metrics.increment_messages_received()
        metrics.record_message_size(size)
        if self._buckets and not all(
            bucket.take(size if per_byte else 1, now) for bucket, per_byte in self._buckets
        ):
            await self._rate_limited()
            return
        msg = Message(data, self.channel_name)
        try:
            if hub.hooks is not None:
                msg = await hub.hooks.before_message(self, msg)
            msg = await self.before_message(msg)
            await hub.handler(self, msg)
        except Exception as exc:
            hub.stats.handler_errors += 1
            await self.report_error(exc, "message_handling")
            return
        await self._signal(signals.message_received, message=msg)

    async def _rate_limited(self) -> None:
        hub = self.hub
        hub.stats.rate_limited += 1
        await self.report_error(RateLimitExceeded("rate limit exceeded"), "rate_limit_exceeded")
        if hub.config.close_on_rate_limit:
            await self.close(CLOSE_POLICY, "rate limit exceeded")

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
            self._outbound.close()
        if hasattr(self, "hub"):
            await self.hub.unregister(self)
        layer = self.channel_layer
        if layer is not None:
            for group in self.groups:
                await layer.group_discard(group, self.channel_name)
        if self._accepted:
            hub = self.hub
            hub.metrics.decrement_connections()
            await self._hook(self.disconnect, code)
            if hub.hooks is not None:
                await self._hook(hub.hooks.on_close, self, code)
            await self._hook(self.on_close, code)
            await self._signal(signals.client_disconnected, code=code)

    # -- internals ------------------------------------------------------------------------------

    def _dropped(self, data: str | bytes) -> None:
        hub = self.hub
        hub.stats.send_dropped += 1
        hub.metrics.increment_messages_dropped()
        overridden = type(self).on_send_dropped is not HubConsumer.on_send_dropped
        dropped_signal = signals.has_listeners(signals.send_dropped, type(self))
        if overridden or hub.hooks is not None or dropped_signal:
            spawn(self._after_drop(data), "send-dropped hooks")

    async def _after_drop(self, data: str | bytes) -> None:
        if self.hub.hooks is not None:
            await self._hook(self.hub.hooks.on_send_dropped, self, data)
        await self._hook(self.on_send_dropped, data)
        await self._signal(signals.send_dropped, data=data)

    def _overflow_disconnect(self) -> None:
        _error_log.warning("closing slow client %s (1013): outbound queue full", self.id)
        spawn(self._close(CLOSE_TRY_AGAIN, "send queue full", flush=False), "slow-client close")

    async def _hook(self, hook: Any, *args: Any) -> None:
        try:
            await hook(*args)
        except Exception as exc:
            self.hub.stats.hook_errors += 1
            await self.report_error(exc, "hook_error")

    async def report_error(self, exc: Exception, kind: str = "message_handling") -> None:
        """Report ``exc``: log (throttled), count, hub hook and ``on_error``, ``hub_error``."""
        hub = self.hub
        hub.metrics.increment_errors(kind)
        _error_log.warning("error in %s (%s): %r", type(self).__name__, self.id, exc)
        handlers = [self.on_error(exc)]
        if hub.hooks is not None:
            handlers.insert(0, hub.hooks.on_error(self, exc))
        for handler in handlers:
            try:
                await handler
            except Exception:
                hub.stats.hook_errors += 1
                logger.exception("on_error of %s raised", type(self).__name__)
        await self._signal(signals.hub_error, error=exc)

    async def _signal(self, signal: Any, **kwargs: Any) -> None:
        if signals.has_listeners(signal, type(self)):
            failed = await signals.fire(signal, type(self), client=self, **kwargs)
            if failed:
                self.hub.stats.signal_errors += failed
                self.hub.metrics.increment_errors("signal_receiver")


def _buckets(limits: Limits, now: float) -> list[tuple[TokenBucket, bool]]:
    """Token buckets for the per-connection rate limits: (bucket, counts bytes)."""
    burst = limits.burst or 1.0
    buckets = []
    if limits.max_messages_per_second:
        rate = limits.max_messages_per_second
        buckets.append((TokenBucket(rate, max(1.0, rate * burst), now), False))
    if limits.max_bytes_per_second:
        rate = limits.max_bytes_per_second
        buckets.append((TokenBucket(rate, rate * burst, now), True))
    return buckets


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
