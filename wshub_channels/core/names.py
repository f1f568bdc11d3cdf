"""Names: validation of rooms and user ids, node ids, and the subject encoder.

Every name the hub puts on the bus must encode as strict UTF-8 (no lone
surrogates, which msgpack cannot carry); this module is the one place that
checks it (:func:`require_utf8`, an ``isascii`` test for nearly every name).
Channel and group names follow the Channels spec (``BaseChannelLayer`` checks
them) and :func:`check_layer_name` adds strict UTF-8, raising
:class:`~wshub_channels.errors.InvalidLayerName` (a ``TypeError``, as the
spec wants, and an ``InvalidName``). Rooms and user ids are free strings:
any non-empty ``str`` of at most :data:`MAX_FREE_NAME` characters in strict
UTF-8, Unicode included. Every name that reaches a bus subject goes through
:func:`subject_token`, the one encoder shared by all backends, so that NATS
(which splits on ``.`` and rejects spaces, ``*`` and ``>``) and Redis see the
same safe tokens. This module is pure and thread-safe.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import secrets
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from ..errors import EmptyRoomName, InvalidLayerName, InvalidName
from ..utf8 import lone_surrogate

__all__ = [
    "MAX_FREE_NAME",
    "NODE_ID_LENGTH",
    "channel_node",
    "check_layer_name",
    "current_pid",
    "make_node_id",
    "process_inbox",
    "random_token",
    "require_utf8",
    "subject_token",
    "validate_room",
    "validate_user_id",
]

MAX_FREE_NAME = 256
NODE_ID_LENGTH = 12
_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
_NODE_PREFIX_RE = re.compile(r"^[a-z0-9-]{0,6}$")
_NODE_ID_RE = re.compile(rf"^[a-z0-9-]{{{NODE_ID_LENGTH}}}$")
# Tokens longer than this are hashed; base32 of 60 bytes is 96 characters.
_MAX_PLAIN_TOKEN = 96


_pid = os.getpid()


def _forked() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_forked)


def current_pid() -> int:
    """This process's pid, without a system call (kept current across forks).

    Every envelope carries it, so that two processes sharing a node id tell
    their own echoes from each other's messages.
    """
    return _pid


def process_inbox(base: str) -> str:
    """``base`` plus this process's pid: a reply address no other process has.

    Transports draw their inbox when they open, so two processes forked after
    a layer was built (and sharing its node id) still get replies, and each
    other's requests, apart.
    """
    return f"{base}.p{_pid}"


def random_token(length: int) -> str:
    """Return ``length`` random lowercase letters and digits."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def make_node_id(prefix: str | None = None) -> str:
    """Return a fresh node id of exactly 12 characters, starting with ``prefix``.

    ``prefix`` (``WSHUB["NODE_ID"]``) is up to 6 characters of ``[a-z0-9-]``;
    the rest is random, so two processes never share an id by configuration.
    """
    prefix = (prefix or "").lower()
    if not _NODE_PREFIX_RE.match(prefix):
        raise ValueError(
            f"NODE_ID prefix {prefix!r} must be at most 6 characters of a-z, 0-9 and '-'"
        )
    return prefix + random_token(NODE_ID_LENGTH - len(prefix))


def channel_node(channel: str) -> str | None:
    """Return the node id a ``!`` channel names, or None if it names none.

    Hub channel names look like ``<prefix>.<node_id>!<random>``; the node id is
    the dot-separated segment just before ``!`` and has the node-id shape.
    """
    bang = channel.find("!")
    if bang < 0:
        return None
    token = channel[channel.rfind(".", 0, bang) + 1 : bang]
    return token if _NODE_ID_RE.match(token) else None


def require_utf8(name: str, what: str, error: type[InvalidName] = InvalidName) -> str:
    """Return ``name`` if it encodes as strict UTF-8, else raise ``error`` naming ``what``.

    Fast for ASCII names (one ``isascii``); others are encoded once.
    """
    at = lone_surrogate(name)
    if at is not None:
        raise error(f"{what} {name!r} is not strict UTF-8 (a lone surrogate at {at})")
    return name


def check_layer_name(name: Any, what: str, spec: Callable[..., object], *args: Any) -> bool:
    """Run the Channels check ``spec(name, *args)``, then :func:`require_utf8`.

    Either failing raises :class:`~wshub_channels.errors.InvalidLayerName`.
    """
    try:
        spec(name, *args)
    except TypeError as exc:
        raise InvalidLayerName(str(exc)) from None
    require_utf8(name, what, InvalidLayerName)
    return True


def _check_free_name(name: object, what: str) -> str:
    if not isinstance(name, str):
        raise InvalidName(f"{what} must be a str, not {type(name).__name__}")
    if len(name) > MAX_FREE_NAME:
        raise InvalidName(f"{what} is {len(name)} characters long; the limit is {MAX_FREE_NAME}")
    return require_utf8(name, what)


def validate_room(room: object) -> str:
    """Return ``room`` if it is a valid room name, else raise a typed error."""
    name = _check_free_name(room, "room name")
    if not name:
        raise EmptyRoomName("room name must not be empty")
    return name


def validate_user_id(user_id: object) -> str:
    """Return ``user_id`` if it is a valid user id, else raise ``InvalidName``."""
    name = _check_free_name(user_id, "user id")
    if not name:
        raise InvalidName("user id must not be empty")
    return name


@lru_cache(maxsize=65536)
def subject_token(name: str) -> str:
    """Map any name to a token safe in every bus subject, injectively.

    Short names become ``b`` + lowercase unpadded base32 of their UTF-8 bytes;
    long ones become ``h`` + 32 hex digits of a BLAKE2b hash. The alphabet is
    ``[a-z0-9]``, so the token has no ``.``, space, ``*`` or ``>``.
    """
    raw = name.encode("utf-8", "surrogatepass")
    b32 = base64.b32encode(raw).decode("ascii").rstrip("=").lower()
    if len(b32) <= _MAX_PLAIN_TOKEN:
        return "b" + b32
    return "h" + hashlib.blake2b(raw, digest_size=16).hexdigest()
