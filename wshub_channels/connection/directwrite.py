"""Direct writes: a message's frame, built once, written straight to a connection's socket.

At accept time :func:`detect` looks at the ``send`` callable the server handed
the application and, when it knows the server, returns a
:class:`DirectWriter` for the connection. Its ``write(data)`` puts the frame of
``data`` (one build per message: :class:`~wshub_channels.core.wsframe.FrameCache`)
on the server's transport and returns True, or returns False, writing nothing,
whenever the connection cannot take it that way right now: not open (yet, or
any more), an extension negotiated (permessage-deflate), or the server's write
buffer for it not empty. The caller then uses the ASGI ``send`` as always, so
every case but the idle, open, uncompressed socket behaves exactly as before.

Servers known, and the hooks each one uses (tested with the versions pinned in
``constraints/dev.txt``):

- **uvicorn**, ``send`` is a bound method of the connection's protocol, with
  its ``transport`` (asyncio: ``get_write_buffer_size()``, ``is_closing()``,
  ``write()``, all public):

  - ``--ws websockets`` (``WebSocketProtocol.asgi_send``, on websockets'
    legacy protocol): open when websockets' ``state`` is ``OPEN`` and
    uvicorn's ``closed_event`` is not set; the negotiated ``extensions`` list
    is websockets' public attribute;
  - ``--ws websockets-sansio`` (``WebSocketsSansIOProtocol.send``): uvicorn's
    ``handshake_complete``, ``close_sent``, ``disconnected`` and
    ``initial_response`` flags, and the sans-I/O ``conn``'s public ``state``
    and ``extensions``;
  - ``--ws wsproto`` (``WSProtocol.send``): the same uvicorn flags, wsproto's
    public ``conn.state``; wsproto keeps the negotiated extensions private
    (``conn.connection._proto.extensions``, read once, after accept), and
    where it is not there, any server that may accept permessage-deflate
    (uvicorn's ``config.ws_per_message_deflate``, on by default) keeps the
    ASGI path.

- **daphne**, ``send`` is ``functools.partial(server.handle_reply, protocol)``
  with autobahn's ``WebSocketServerProtocol`` (``state``,
  ``websocket_extensions_in_use``, ``send_queue``, ``maxMessagePayloadSize``,
  ``autoFragmentSize``, all without an underscore) on Twisted's TCP
  transport. Twisted buffers every ``write()`` until the reactor's next turn
  (an ``epoll_ctl`` to start watching the socket, another to stop), so with
  its buffer empty (``dataBuffer``, ``offset`` and the private
  ``_tempDataLen``) the frame goes to ``writeSomeData()``, one ``send()``
  on the socket; only what the socket did not take is handed to ``write()``.
  daphne never negotiates compression; it skips empty messages, so they keep
  the ASGI path, as do messages over autobahn's size or fragment limits. A
  TLS transport is not Twisted's TCP transport: ASGI path.

Anything else, an ASGI middleware that wraps ``send`` included, gets None:
that connection keeps the ASGI path. Channels' own ``SessionMiddleware``
(in ``AuthMiddlewareStack``) wraps ``send`` only to set cookies on HTTP
responses and passes ``websocket.send`` through unchanged, so its wrapper is
looked through. ``Config.direct_writes = False`` turns direct writes off.

Use from the server's event loop (daphne runs Twisted on it).
"""

from __future__ import annotations

import functools
import sys
from typing import Any, Protocol

from ..core.wsframe import FrameCache

__all__ = ["DirectWriter", "detect", "frames"]

#: The process's frame cache: a fan-out's recipients share its one payload, so one build.
frames = FrameCache()

_UVICORN = "uvicorn.protocols.websockets."


class DirectWriter(Protocol):
    """Writes one message's frame straight to a connection's transport, when it can."""

    #: Which server and implementation: "daphne", "uvicorn-websockets", ...
    kind: str

    def write(self, data: str | bytes) -> bool:
        """Write the frame of ``data`` now and return True, or write nothing and return False."""
        ...


def detect(send: Any) -> DirectWriter | None:
    """The direct writer for the connection ``send`` serves, or None (ASGI path only)."""
    send = _through_session_wrapper(send)
    try:
        if isinstance(send, functools.partial):
            return _daphne(send)
        owner = getattr(send, "__self__", None)
        func = getattr(send, "__func__", None)
        if owner is None or func is None:
            return None
        module = type(owner).__module__
        if not module.startswith(_UVICORN):
            return None
        return _uvicorn(owner, func)
    except (AttributeError, ImportError, TypeError):  # another version: the ASGI path
        return None


def _through_session_wrapper(send: Any) -> Any:
    """The ``send`` under Channels' session wrapper (pass-through for WebSocket frames)."""
    sessions = sys.modules.get("channels.sessions")
    wrapper: Any = getattr(sessions, "InstanceSessionWrapper", None)
    owner: Any = getattr(send, "__self__", None)
    if (
        wrapper is not None
        and type(owner) is wrapper
        and getattr(send, "__func__", None) is wrapper.send
    ):
        return _through_session_wrapper(owner.real_send)
    return send


# -- uvicorn -------------------------------------------------------------------------------


def _uvicorn(protocol: Any, func: Any) -> DirectWriter | None:
    transport = protocol.transport
    if not callable(getattr(transport, "get_write_buffer_size", None)):
        return None
    legacy = sys.modules.get(_UVICORN + "websockets_impl")
    if legacy is not None and isinstance(protocol, legacy.WebSocketProtocol):
        if func is legacy.WebSocketProtocol.asgi_send:
            from websockets.protocol import State

            return _UvicornLegacy(protocol, State.OPEN)
        return None
    sansio = sys.modules.get(_UVICORN + "websockets_sansio_impl")
    if sansio is not None and isinstance(protocol, sansio.WebSocketsSansIOProtocol):
        if func is sansio.WebSocketsSansIOProtocol.send:
            from websockets.protocol import State

            return _UvicornSansIO(protocol, State.OPEN)
        return None
    wsproto = sys.modules.get(_UVICORN + "wsproto_impl")
    if wsproto is not None and isinstance(protocol, wsproto.WSProtocol):
        if func is not wsproto.WSProtocol.send:
            return None
        if _wsproto_extensions(protocol):
            return None  # negotiated at accept, which has happened: fixed from here on
        from wsproto.connection import ConnectionState

        return _UvicornWsproto(protocol, ConnectionState.OPEN)
    return None


def _wsproto_extensions(protocol: Any) -> bool:
    """True if wsproto negotiated an extension, or may have and does not say."""
    frames_protocol = getattr(protocol.conn.connection, "_proto", None)
    extensions = getattr(frames_protocol, "extensions", None)
    if extensions is None:  # another wsproto: assume what the server offers was taken
        return bool(protocol.config.ws_per_message_deflate)
    return bool(extensions)


class _UvicornLegacy:
    """uvicorn ``--ws websockets``: websockets' legacy protocol."""

    __slots__ = ("_open", "_p", "_t")
    kind = "uvicorn-websockets"

    def __init__(self, protocol: Any, open_state: Any) -> None:
        self._p = protocol
        self._t = protocol.transport
        self._open = open_state

    def write(self, data: str | bytes) -> bool:
        p = self._p
        if p.state is not self._open or p.extensions or p.closed_event.is_set():
            return False
        transport = self._t
        if transport.get_write_buffer_size() or transport.is_closing():
            return False
        try:
            frame = frames.frame(data)
        except UnicodeEncodeError:
            return False  # the ASGI path raises it, as it always did
        transport.write(frame)
        return True


class _UvicornSansIO:
    """uvicorn ``--ws websockets-sansio``: websockets' sans-I/O ``ServerProtocol``."""

    __slots__ = ("_conn", "_open", "_p", "_t")
    kind = "uvicorn-websockets-sansio"

    def __init__(self, protocol: Any, open_state: Any) -> None:
        self._p = protocol
        self._conn = protocol.conn
        self._t = protocol.transport
        self._open = open_state

    def write(self, data: str | bytes) -> bool:
        p = self._p
        if p.close_sent or p.disconnected or not p.handshake_complete:
            return False
        conn = self._conn
        if conn.state is not self._open or conn.extensions or p.initial_response is not None:
            return False
        transport = self._t
        if transport.get_write_buffer_size() or transport.is_closing():
            return False
        try:
            frame = frames.frame(data)
        except UnicodeEncodeError:
            return False
        transport.write(frame)
        return True


class _UvicornWsproto:
    """uvicorn ``--ws wsproto``."""

    __slots__ = ("_open", "_p", "_t")
    kind = "uvicorn-wsproto"

    def __init__(self, protocol: Any, open_state: Any) -> None:
        self._p = protocol
        self._t = protocol.transport
        self._open = open_state

    def write(self, data: str | bytes) -> bool:
        p = self._p
        if p.close_sent or p.disconnected or not p.handshake_complete or p.response_started:
            return False
        if p.conn.state is not self._open:
            return False
        transport = self._t
        if transport.get_write_buffer_size() or transport.is_closing():
            return False
        try:
            frame = frames.frame(data)
        except UnicodeEncodeError:
            return False
        transport.write(frame)
        return True


# -- daphne --------------------------------------------------------------------------------


def _daphne(send: functools.partial[Any]) -> DirectWriter | None:
    server = sys.modules.get("daphne.server")
    ws = sys.modules.get("daphne.ws_protocol")
    if server is None or ws is None or send.keywords or len(send.args) != 1:
        return None
    if getattr(send.func, "__func__", None) is not server.Server.handle_reply:
        return None
    protocol = send.args[0]
    if not isinstance(protocol, ws.WebSocketProtocol):
        return None
    from twisted.internet.tcp import Connection

    transport = protocol.transport
    if not isinstance(transport, Connection):
        return None  # TLS, or another wrapper: its write() is the only way in
    return _Daphne(protocol, transport)


def _payload_size(frame: bytes) -> int:
    length = frame[1]
    return len(frame) - (2 if length < 126 else 4 if length == 126 else 10)


class _Daphne:
    """daphne: autobahn's protocol on Twisted's TCP transport."""

    __slots__ = ("_open", "_p", "_t")
    kind = "daphne"

    def __init__(self, protocol: Any, transport: Any) -> None:
        self._p = protocol
        self._t = transport
        self._open = protocol.STATE_OPEN

    def write(self, data: str | bytes) -> bool:
        p = self._p
        if not data or p.state != self._open or p.websocket_extensions_in_use or p.send_queue:
            return False  # daphne skips empty messages: so does the ASGI path it takes
        t = self._t
        if not t.connected or t.disconnecting or t._tempDataLen or len(t.dataBuffer) != t.offset:
            return False
        try:
            frame = frames.frame(data)
        except UnicodeEncodeError:
            return False
        size = _payload_size(frame)
        limit, fragment = p.maxMessagePayloadSize, p.autoFragmentSize
        if (limit and size > limit) or (fragment and size > fragment):
            return False  # autobahn refuses or fragments it: leave that to it
        written = t.writeSomeData(frame)
        if isinstance(written, int) and written >= len(frame):
            return True
        # The socket took part (or reported a lost connection): Twisted keeps the rest
        # and writes it, or finds the connection gone, as it does for its own writes.
        t.write(frame[written:] if isinstance(written, int) and written > 0 else frame)
        return True
