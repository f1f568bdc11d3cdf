"""Every codec of the bus: the versioned envelope and what travels inside it.

Every bus message is one envelope: ``[major, minor, kind, origin, target,
payload, sender]``. ``payload`` is bytes carried as they are (for Channels messages,
the msgpack of the message dict, encoded once per send). A node ignores an
envelope whose major version it does not know, so rolling deploys are safe;
the caller logs and counts that. Minor versions only ever add trailing
fields, so a decoder takes six fields or more. ``sender`` (minor 2) is the
publishing process's pid: ``origin`` names the node, and two processes with
one node id (forked after the layer was built) must not take each other's
messages for their own echoes. Minor 0 and 1 sent nil there and ignore it.

Inside envelopes travel:

- Channels messages (:func:`pack_message`, :func:`unpack_message`).
  :func:`pack_message` validates a message against what msgpack can
  round-trip (the spec's types, ``str`` keys only) and raises ``TypeError``
  naming the offending path, so a bad message fails at ``send``, never at
  ``receive``;
- the hub's room, user and broadcast payloads: the data, the client ids
  to skip and, for history rooms, the message's offset and epoch
  (:func:`encode_hub_payload`);
- presence heartbeats and goodbyes (:func:`encode_presence`).

Calls between nodes have their codecs here too: a call travels as ``[op,
args]`` (:func:`encode_call`) and its answer as ``[ok, result or error class
name, message]`` (:func:`encode_result`, :func:`encode_error`,
:func:`decode_answer_fields`; the layers rebuild the error from its name).
On a bus without native request/reply, a request is a frame starting with
the byte ``0x00`` and a reply one starting with ``0x01``
(:func:`encode_request_frame`, :func:`encode_reply_frame`,
:func:`decode_frame`); no msgpack envelope starts with either byte.

Every decoder raises ``ValueError`` on malformed input. This module is pure
and thread-safe.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from enum import IntEnum
from typing import Any, NamedTuple

import msgpack

__all__ = [
    "ENVELOPE_MAJOR",
    "ENVELOPE_MINOR",
    "REPLY",
    "REQUEST",
    "Answer",
    "Envelope",
    "HubPayload",
    "Kind",
    "Reply",
    "Request",
    "UnknownEnvelopeVersion",
    "decode_answer_fields",
    "decode_call",
    "decode_envelope",
    "decode_frame",
    "decode_hub_payload",
    "decode_presence",
    "encode_call",
    "encode_envelope",
    "encode_error",
    "encode_hub_payload",
    "encode_presence",
    "encode_reply_frame",
    "encode_request_frame",
    "encode_result",
    "pack_message",
    "pack_value",
    "unpack_message",
    "unpack_value",
]

ENVELOPE_MAJOR = 1
#: 1: six meaningful fields; minor 0 also read a seventh ("extra", never used) and
#: refuses shorter envelopes, so a seventh field always follows the payload.
#: 2: the seventh field is the sender's pid.
#: 3: a hub payload of a history room carries the message's offset and epoch.
ENVELOPE_MINOR = 3
_FIELDS = 6

_SCALARS = (str, bytes, int, float, bool, type(None))
_INT_MIN = -(2**63)
_INT_MAX = 2**64 - 1


class Kind(IntEnum):
    """What an envelope carries; the core dispatches on it.

    The numbers are on the wire: never reuse one (6, 7 and 8 were once
    assigned and are retired).
    """

    GROUP = 1  # Channels group_send: target = group name
    DIRECT = 2  # send to a ``!`` channel: target = channel name
    ROOM = 3  # hub room broadcast: target = room
    USER = 4  # hub send to a user: target = user id
    BROADCAST = 5  # hub broadcast to every client: target unused
    PRESENCE = 9  # heartbeat or goodbye: target = the presence op
    ROOM_EVENT = 10  # someone joined or left a room: target = room


class Envelope(NamedTuple):
    kind: int
    origin: str
    target: str
    payload: bytes
    sender: int | None = None  # the publishing process's pid (None before minor 2)


class UnknownEnvelopeVersion(ValueError):
    """An envelope came from a node speaking an unknown major version."""


def encode_envelope(
    kind: int, origin: str, target: str, payload: bytes, sender: int | None = None
) -> bytes:
    """Return the bytes of one envelope."""
    return msgpack.packb(  # type: ignore[no-any-return]
        [ENVELOPE_MAJOR, ENVELOPE_MINOR, kind, origin, target, payload, sender],
        use_bin_type=True,
    )


def decode_envelope(data: bytes) -> Envelope:
    """Decode envelope bytes; raise ``UnknownEnvelopeVersion`` or ``ValueError``.

    Every field is type-checked here, once, so that no later step sees a
    wrong type: the minor version and kind are ints, origin and target str,
    the payload bytes. A seventh field that is not an int (minor 0 and 1 sent
    nil) gives ``sender=None``; fields past the seventh are ignored.
    """
    fields = unpack_value(data, "envelope")
    if not isinstance(fields, list) or len(fields) < _FIELDS:
        raise ValueError("malformed envelope: not a list of six fields or more")
    major, minor, kind, origin, target, payload = fields[:_FIELDS]
    if major != ENVELOPE_MAJOR:
        raise UnknownEnvelopeVersion(f"envelope major version {major!r} is not supported")
    if not (_is_int(minor) and _is_int(kind)):
        raise ValueError("malformed envelope: the minor version and kind must be ints")
    if not (isinstance(origin, str) and isinstance(target, str) and isinstance(payload, bytes)):
        raise ValueError("malformed envelope: origin and target must be str, payload bytes")
    sender = fields[6] if len(fields) > _FIELDS and _is_int(fields[6]) else None
    return Envelope(kind, origin, target, payload, sender)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class HubPayload(NamedTuple):
    """A hub send as it travels: the data, the client ids to skip, and for a message of a
    history room its offset and epoch (minor 3; None otherwise)."""

    data: str | bytes
    excluded: list[str]
    position: tuple[int, str] | None = None


def encode_hub_payload(
    data: str | bytes, excluded: Iterable[str], position: tuple[int, str] | None = None
) -> bytes:
    """Return the payload of a hub send: the data, the client ids to skip, and the
    message's ``(offset, epoch)`` in its room's history, when it has one."""
    body: list[Any] = [data, sorted(excluded)]
    if position is not None:
        body += position
    return msgpack.packb(body, use_bin_type=True)  # type: ignore[no-any-return]


def decode_hub_payload(payload: bytes) -> HubPayload:
    """Decode :func:`encode_hub_payload`; raise ``ValueError`` on malformed input.

    Later minors may add trailing fields: they are ignored.
    """
    body = unpack_value(payload, "hub payload")
    if not isinstance(body, list) or len(body) < 2 or len(body) == 3:
        raise ValueError("malformed hub payload")
    data, excluded = body[0], body[1]
    if not isinstance(data, (str, bytes)) or not isinstance(excluded, list):
        raise ValueError("malformed hub payload")
    if not all(isinstance(client_id, str) for client_id in excluded):
        raise ValueError("malformed hub payload: excluded ids must be str")
    if len(body) == 2:
        return HubPayload(data, excluded)
    offset, epoch = body[2], body[3]
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 1:
        raise ValueError("malformed hub payload: a history offset is an int >= 1")
    if not isinstance(epoch, str) or not epoch:
        raise ValueError("malformed hub payload: a history epoch is a non-empty str")
    return HubPayload(data, excluded, (offset, epoch))


def encode_presence(op: str, info: dict[str, Any]) -> bytes:
    """Return the payload of a presence message (``op`` is "beat" or "bye")."""
    return msgpack.packb({"op": op, "info": info}, use_bin_type=True)  # type: ignore[no-any-return]


def decode_presence(payload: bytes) -> tuple[str, dict[str, Any]]:
    """Decode :func:`encode_presence` into ``(op, info)``; raise ``ValueError`` if malformed."""
    body = unpack_value(payload, "presence message")
    if not isinstance(body, dict):
        raise ValueError("malformed presence message")
    op, info = body.get("op"), body.get("info")
    if not isinstance(op, str) or not isinstance(info, dict):
        raise ValueError("malformed presence message")
    return op, info


def pack_value(value: Any) -> bytes:
    """The msgpack bytes of any body the core sends (calls, answers, frames)."""
    return msgpack.packb(value, use_bin_type=True)  # type: ignore[no-any-return]


def unpack_value(data: bytes, what: str) -> Any:
    """Decode :func:`pack_value`; raise ``ValueError`` naming ``what`` if it cannot."""
    try:
        return msgpack.unpackb(data, raw=False)
    except Exception as exc:
        raise ValueError(f"undecodable {what}: {exc}") from exc


def _find_bad(value: Any, path: str) -> str | None:
    """Return a description of the first value msgpack cannot round-trip."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                where = path or "message"
                return f"{where} has a key {key!r} of type {type(key).__name__}; keys must be str"
            found = _find_bad(item, f"{path}.{key}" if path else key)
            if found:
                return found
        return None
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            found = _find_bad(item, f"{path}[{index}]")
            if found:
                return found
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        if not _INT_MIN <= value <= _INT_MAX:
            return f"{path} is an int outside the 64-bit range"
        return None
    if isinstance(value, _SCALARS):
        return None
    return f"{path} has type {type(value).__name__}, which msgpack cannot carry"


def pack_message(message: Any) -> bytes:
    """Validate a Channels message and return its msgpack bytes.

    Raises ``TypeError`` naming the first bad key or path.
    """
    if not isinstance(message, dict):
        raise TypeError(f"message must be a dict, not {type(message).__name__}")
    problem = _find_bad(message, "")
    if problem:
        raise TypeError(f"message cannot be sent: {problem}")
    return msgpack.packb(message, use_bin_type=True)  # type: ignore[no-any-return]


def unpack_message(data: bytes) -> dict[str, Any]:
    """Decode message bytes made by :func:`pack_message`.

    Raises ``ValueError`` for bytes that are not a Channels message (a dict
    with str keys), so a bad payload from the bus never reaches a consumer.
    """
    message = unpack_value(data, "message")
    if not isinstance(message, dict) or not all(type(key) is str for key in message):
        raise ValueError("the payload is not a Channels message (a dict with str keys)")
    return message


# -- calls between nodes -------------------------------------------------------------


def encode_call(op: str, args: Sequence[Any]) -> bytes:
    """Return the body of a call of ``op`` with ``args``."""
    return pack_value([op, list(args)])


def decode_call(body: bytes) -> tuple[str, list[Any]]:
    """Decode :func:`encode_call`; raise ``ValueError`` on malformed input."""
    fields = unpack_value(body, "call")
    if not isinstance(fields, list) or len(fields) != 2:
        raise ValueError("malformed call")
    op, args = fields
    if not isinstance(op, str) or not isinstance(args, list):
        raise ValueError("malformed call")
    return op, args


def encode_result(result: Any) -> bytes:
    """Return the answer carrying an op's result."""
    return pack_value([True, result, None])


def encode_error(error: BaseException) -> bytes:
    """Return the answer carrying an op's error, by class name and message.

    Never raises: a message that is not strict UTF-8 travels with its lone
    surrogates escaped (``\\ud800``).
    """
    try:
        message = str(error)
    except Exception:
        message = repr(error)
    if not message.isascii():
        message = message.encode("utf-8", "backslashreplace").decode("utf-8")
    return pack_value([False, type(error).__name__, message])


class Answer(NamedTuple):
    """A decoded answer: its result when ``ok``, else its error's class name and message."""

    ok: bool
    value: Any
    message: str


def decode_answer_fields(body: bytes) -> Answer:
    """Decode :func:`encode_result` or :func:`encode_error`; ``ValueError`` if malformed."""
    fields = unpack_value(body, "answer")
    if not isinstance(fields, list) or len(fields) != 3:
        raise ValueError("malformed answer")
    ok, value, message = fields
    if ok is True:
        return Answer(True, value, "")
    if ok is not False or not isinstance(value, str):
        raise ValueError("malformed answer")
    return Answer(False, value, str(message))


# -- request and reply frames over publish/subscribe -----------------------------------

#: First byte of a request frame; a reply frame starts with :data:`REPLY`.
REQUEST = 0x00
REPLY = 0x01


class Request(NamedTuple):
    """A request frame: where to answer, which request, and its body."""

    inbox: str
    request_id: int
    body: bytes


class Reply(NamedTuple):
    """A reply frame; ``body`` is None when the handler had no answer."""

    request_id: int
    body: bytes | None


def encode_request_frame(inbox: str, request_id: int, body: bytes) -> bytes:
    return bytes([REQUEST]) + pack_value([inbox, request_id, body])


def encode_reply_frame(request_id: int, body: bytes | None) -> bytes:
    return bytes([REPLY]) + pack_value([request_id, body])


def decode_frame(data: bytes) -> Request | Reply | None:
    """Decode a request or reply frame; None for any other message.

    Raises ``ValueError`` for a frame with a request or reply marker that is
    malformed.
    """
    marker = data[0] if data else None
    if marker == REQUEST:
        fields = unpack_value(data[1:], "request frame")
        if (
            isinstance(fields, list)
            and len(fields) == 3
            and isinstance(fields[0], str)
            and isinstance(fields[1], int)
            and isinstance(fields[2], bytes)
        ):
            return Request(fields[0], fields[1], fields[2])
        raise ValueError("malformed request frame")
    if marker == REPLY:
        fields = unpack_value(data[1:], "reply frame")
        if (
            isinstance(fields, list)
            and len(fields) == 2
            and isinstance(fields[0], int)
            and (fields[1] is None or isinstance(fields[1], bytes))
        ):
            return Reply(fields[0], fields[1])
        raise ValueError("malformed reply frame")
    return None
