"""ASGI ``websocket.send`` messages: build them, read them, size them, and tell a
failed send to a client that has gone from a frame the server could not write.

No I/O: these only look at messages and exceptions.
"""

from __future__ import annotations

import asyncio

from .sendqueue import Frame, frame_size
from .types import AsgiMessage

__all__ = ["client_gone", "data_size", "frame_payload", "text_frame"]

#: Exception class names that mean the socket is gone (websockets, uvicorn).
_GONE_NAMES = frozenset({"ClientDisconnected", "ConnectionClosed", "ConnectionClosedOK"})


def text_frame(data: str | bytes) -> AsgiMessage:
    """Return the ASGI message for ``data``: text for ``str``, binary for ``bytes``."""
    if isinstance(data, str):
        return {"type": "websocket.send", "text": data}
    return {"type": "websocket.send", "bytes": data}


def data_size(data: str | bytes) -> int:
    """The size of a frame's payload on the wire, in bytes."""
    return frame_size(data)


def client_gone(exc: BaseException) -> bool:
    """True when a failed ASGI send means the client has gone, not a broken frame.

    uvicorn raises ``ClientDisconnected`` (an ``OSError``) once the socket is
    closed, its websockets implementations ``ConnectionClosed`` and kin, and a
    ``RuntimeError`` about a send "after sending 'websocket.close'" once the
    close is under way; daphne sends nothing to a closed socket and raises
    nothing. Anything else (an encoding error, a refused message) is a failure.
    """
    if isinstance(exc, OSError | asyncio.CancelledError):
        return True
    if any(cls.__name__ in _GONE_NAMES for cls in type(exc).__mro__):
        return True
    return isinstance(exc, RuntimeError) and "after sending 'websocket.close'" in str(exc)


def frame_payload(message: AsgiMessage) -> Frame:
    """The text or bytes a ``websocket.send`` message carries."""
    text: str | None = message.get("text")
    if text is not None:
        return text
    data: bytes | None = message.get("bytes")
    return b"" if data is None else data
