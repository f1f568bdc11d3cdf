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
- the hub's room, user and broadcast payloads: the data and the client ids
  to skip (:func:`encode_hub_payload`);
- presence heartbeats and goodbyes (:func:`encode_presence`).

Every decoder raises ``ValueError`` on malformed input. This module is pure
and thread-safe.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import IntEnum
from typing import Any, NamedTuple

import msgpack

__all__ = [
    "ENVELOPE_MAJOR",
    "ENVELOPE_MINOR",
    "Envelope",
    "Kind",
    "UnknownEnvelopeVersion",
    "decode_envelope",
    "decode_hub_payload",
    "decode_presence",
    "encode_envelope",
    "encode_hub_payload",
    "encode_presence",
    "pack_message",
    "pack_value",
    "unpack_message",
    "unpack_value",
]

ENVELOPE_MAJOR = 1
#: 1: six meaningful fields; minor 0 also read a seventh ("extra", never used) and
#: refuses shorter envelopes, so a seventh field always follows the payload.
#: 2: the seventh field is the sender's pid.
ENVELOPE_MINOR = 2
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


def encode_hub_payload(data: str | bytes, excluded: Iterable[str]) -> bytes:
    """Return the payload of a hub send: the data and the client ids to skip."""
    return msgpack.packb([data, sorted(excluded)], use_bin_type=True)  # type: ignore[no-any-return]


def decode_hub_payload(payload: bytes) -> tuple[str | bytes, list[str]]:
    """Decode :func:`encode_hub_payload`; raise ``ValueError`` on malformed input."""
    body = unpack_value(payload, "hub payload")
    if not isinstance(body, list) or len(body) != 2:
        raise ValueError("malformed hub payload")
    data, excluded = body
    if not isinstance(data, (str, bytes)) or not isinstance(excluded, list):
        raise ValueError("malformed hub payload")
    if not all(isinstance(client_id, str) for client_id in excluded):
        raise ValueError("malformed hub payload: excluded ids must be str")
    return data, excluded


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
