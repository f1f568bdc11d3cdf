"""WebSocket frames as a server writes them (RFC 6455 section 5.2), built once per message.

This module is pure: no asyncio, no sockets, no server. A server's frames are
never masked, so one message's frame is the same bytes for every connection
that negotiated no extension: FIN and the opcode (0x1 text, 0x2 binary), the
payload length in 7, 7+16 or 7+64 bits, then the payload.

:class:`FrameCache` keeps the last payload and its frame, so a fan-out that
hands one payload object to N connections builds its frame once. It keys on
the payload object itself (``str`` and ``bytes`` are immutable, and the cache
holds a reference, so the identity cannot be reused while it is cached).
"""

from __future__ import annotations

import struct

__all__ = ["OP_BINARY", "OP_TEXT", "FrameCache", "encode_frame", "frame_header"]

OP_TEXT = 0x1
OP_BINARY = 0x2
_FIN = 0x80
_LEN16 = struct.Struct("!BBH")
_LEN64 = struct.Struct("!BBQ")


def frame_header(opcode: int, length: int) -> bytes:
    """The header of one unmasked, final frame of ``length`` payload bytes."""
    first = _FIN | opcode
    if length < 126:
        return bytes((first, length))
    if length < 0x10000:
        return _LEN16.pack(first, 126, length)
    return _LEN64.pack(first, 127, length)


def encode_frame(data: str | bytes) -> bytes:
    """The whole frame of one message: text for ``str`` (UTF-8), binary for ``bytes``.

    Raises ``UnicodeEncodeError`` for text with a lone surrogate (which no
    server could write either).
    """
    if isinstance(data, str):
        payload = data.encode("utf-8")
        return frame_header(OP_TEXT, len(payload)) + payload
    return frame_header(OP_BINARY, len(data)) + data


class FrameCache:
    """The frame of the last payload asked for: N recipients of one message, one build."""

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last: tuple[str | bytes, bytes] | None = None

    def frame(self, data: str | bytes) -> bytes:
        """The frame of ``data``, built only if ``data`` is not the payload cached last.

        Raises ``UnicodeEncodeError`` as :func:`encode_frame` does (nothing is cached).
        """
        last = self._last  # one read: safe if another thread replaces it meanwhile
        if last is not None and last[0] is data:
            return last[1]
        frame = encode_frame(data)
        self._last = (data, frame)
        return frame

    def clear(self) -> None:
        """Forget the cached payload (and let it be freed)."""
        self._last = None
