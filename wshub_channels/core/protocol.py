"""Client protocol v1: the frames a client and the server exchange, read and written (pure).

A client opts in by offering the WebSocket subprotocol ``"wshub.v1"``. Every
frame is a JSON object in a text frame with a string ``"t"``; with write
coalescing several server frames may share one text frame, joined by
``"\\n"`` (JSON never holds a raw newline).

Server to client: ``welcome`` ``{t, v, client, node, ping}`` once admitted;
``msg`` ``{t, room, offset, epoch, data}`` for every message the hub sends
(``room`` null for user, client and broadcast sends; ``offset`` and
``epoch`` null outside history rooms); ``joined`` ``{t, room, recovered,
offset, epoch, ref}``; ``left`` ``{t, room, ref}`` (``ref`` null when the
server took the client out); ``presence`` ``{t, room, event, client, user,
node}``; ``error`` ``{t, code, message, ref}``; ``ping`` ``{t}``.

Client to server: ``join`` ``{t, room, since: {offset, epoch} | null, ref}``,
``leave`` ``{t, room, ref}``, ``send`` ``{t, room, data, ref}`` (``data`` a
string), ``pong`` ``{t}`` and ``auth`` ``{t, token}`` (the first frame, read
by the token gate). ``ref`` is the client's string (or integer) for the
request, echoed in the answer. A frame without ``"t"`` (any other JSON,
text that is not JSON, binary) is the application's own and is not read
here. A frame with a ``"t"`` that breaks these rules is answered with an
``error`` (code ``bad_frame``), never by closing.

:func:`read_frame` parses, :func:`error_code` names a hub error for the
client, and the ``*_frame`` functions write. No I/O: the consumer mixin
(:mod:`wshub_channels.connection.protocol`) does that.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..errors import (
    AlreadyInRoom,
    AuthenticationFailed,
    BusUnavailable,
    ConnectionClosed,
    HistoryUnavailable,
    HubDraining,
    HubError,
    HubStopped,
    HubTimeout,
    InvalidFrame,
    InvalidName,
    MaxRoomsReached,
    NotInRoom,
    RateLimitExceeded,
    RoomFull,
    Unauthorized,
)
from .history import Position

__all__ = [
    "MAX_REF",
    "PROTOCOL",
    "VERSION",
    "AuthFrame",
    "BadFrame",
    "ClientFrame",
    "JoinFrame",
    "LeaveFrame",
    "PongFrame",
    "SendFrame",
    "error_code",
    "error_frame",
    "error_message",
    "joined_frame",
    "left_frame",
    "ping_frame",
    "presence_frame",
    "read_frame",
    "welcome_frame",
]

PROTOCOL = "wshub.v1"
VERSION = 1
#: The longest ``ref`` a client may send (characters, or digits of an integer).
MAX_REF = 64

Ref = str | int | None


@dataclass(frozen=True, slots=True)
class JoinFrame:
    room: str
    since: Position | None
    ref: Ref


@dataclass(frozen=True, slots=True)
class LeaveFrame:
    room: str
    ref: Ref


@dataclass(frozen=True, slots=True)
class SendFrame:
    room: str
    data: str
    ref: Ref


@dataclass(frozen=True, slots=True)
class PongFrame:
    pass


@dataclass(frozen=True, slots=True)
class AuthFrame:
    """An ``auth`` frame after admission (the token gate reads the first one)."""


ClientFrame = JoinFrame | LeaveFrame | SendFrame | PongFrame | AuthFrame


class BadFrame(ValueError):
    """A frame with a ``"t"`` that breaks the protocol: answer ``error`` with ``code``."""

    def __init__(self, message: str, ref: Ref = None, code: str = "bad_frame") -> None:
        super().__init__(message)
        self.code = code
        self.ref = ref


def read_frame(data: str | bytes) -> ClientFrame | None:
    """The protocol frame in ``data``; None for the application's own frames.

    Raises :class:`BadFrame` for a JSON object whose ``"t"`` is not a known
    type or whose fields are missing or of the wrong type.
    """
    if not isinstance(data, str) or data.lstrip()[:1] != "{":
        return None
    if '"t"' not in data and "\\u" not in data:
        return None  # no "t" key can be in there: skip the parse
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError):
        return None  # not JSON: the application's text
    if not isinstance(obj, dict) or "t" not in obj:
        return None
    kind = obj["t"]
    ref = _ref(obj.get("ref"))
    if kind == "pong":
        return PongFrame()
    if kind == "join":
        return JoinFrame(_room(obj, ref), _since(obj.get("since"), ref), ref)
    if kind == "leave":
        return LeaveFrame(_room(obj, ref), ref)
    if kind == "send":
        payload = obj.get("data")
        if not isinstance(payload, str):
            raise BadFrame('a "send" frame has "data": a string', ref)
        return SendFrame(_room(obj, ref), payload, ref)
    if kind == "auth":
        return AuthFrame()
    if not isinstance(kind, str):
        raise BadFrame('"t" is a string', ref)
    raise BadFrame(f"unknown frame type {kind[:32]!r}", ref)


def _ref(value: Any) -> Ref:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise BadFrame('"ref" is a string, an integer or null')
    if len(str(value)) > MAX_REF:
        raise BadFrame(f'"ref" has at most {MAX_REF} characters')
    return value


def _room(obj: dict[str, Any], ref: Ref) -> str:
    room = obj.get("room")
    if not isinstance(room, str):
        raise BadFrame(f'a "{obj["t"]}" frame has "room": a string', ref)
    return room


def _since(value: Any, ref: Ref) -> Position | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise BadFrame('"since" is {"offset": int, "epoch": str} or null', ref)
    offset, epoch = value.get("offset"), value.get("epoch")
    if isinstance(offset, bool) or not isinstance(offset, int) or not isinstance(epoch, str):
        raise BadFrame('"since" is {"offset": int, "epoch": str} or null', ref)
    try:
        return Position(offset, epoch)
    except ValueError as exc:
        raise BadFrame(f'"since": {exc}', ref) from None


# -- errors ------------------------------------------------------------------------------

#: Error classes and the code a client sees, most specific first.
_CODES: tuple[tuple[type[BaseException], str], ...] = (
    (AlreadyInRoom, "already_in_room"),
    (NotInRoom, "not_in_room"),
    (RoomFull, "room_full"),
    (MaxRoomsReached, "max_rooms"),
    (Unauthorized, "unauthorized"),
    (AuthenticationFailed, "unauthorized"),
    (PermissionError, "unauthorized"),
    (InvalidFrame, "bad_frame"),
    (InvalidName, "invalid_name"),
    (RateLimitExceeded, "rate_limited"),
    (HistoryUnavailable, "history_unavailable"),
    (HubTimeout, "timeout"),
    (BusUnavailable, "unavailable"),
    (HubDraining, "unavailable"),
    (HubStopped, "unavailable"),
    (ConnectionClosed, "closed"),
)


def error_code(exc: BaseException) -> str:
    """The stable code a client is told for ``exc``: ``room_full``, ``max_rooms``... ;
    ``hub_error`` for another hub error, ``server_error`` for anything else."""
    if isinstance(exc, BadFrame):
        return exc.code
    for cls, code in _CODES:
        if isinstance(exc, cls):
            return code
    return "hub_error" if isinstance(exc, HubError) else "server_error"


def error_message(exc: BaseException) -> str:
    """What a client is told of ``exc``: its text for the hub's own errors (they are
    written for people), a generic sentence for anything else (it may hold secrets)."""
    known = isinstance(exc, (HubError, BadFrame, PermissionError))
    return (str(exc) or type(exc).__name__) if known else "the server could not do that"


# -- frames the server writes ----------------------------------------------------------


def _dump(obj: dict[str, Any]) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def welcome_frame(client: str, node: str, ping: float) -> str:
    """``ping``: seconds between the server's pings (0: it does not ping)."""
    return _dump({"t": "welcome", "v": VERSION, "client": client, "node": node, "ping": ping})


def joined_frame(room: str, recovered: bool, position: Position | None, ref: Ref) -> str:
    offset = None if position is None else position.offset
    epoch = None if position is None else position.epoch
    return _dump(
        {
            "t": "joined",
            "room": room,
            "recovered": recovered,
            "offset": offset,
            "epoch": epoch,
            "ref": ref,
        }
    )


def left_frame(room: str, ref: Ref) -> str:
    return _dump({"t": "left", "room": room, "ref": ref})


def error_frame(code: str, message: str, ref: Ref) -> str:
    return _dump({"t": "error", "code": code, "message": message, "ref": ref})


def ping_frame() -> str:
    return '{"t":"ping"}'


def presence_frame(room: str, event: str, client: str, user: str | None, node: str) -> str:
    """A room presence event: ``event`` is ``"joined"`` or ``"left"``."""
    frame = {"t": "presence", "room": room, "event": event, "client": client, "user": user}
    return _dump({**frame, "node": node})
