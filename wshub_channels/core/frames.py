"""ASGI ``websocket.send`` messages: build them, read them, size them.

No I/O: these only build and look at messages.
"""

from __future__ import annotations

from ..types import AsgiMessage
from .sendqueue import Frame, frame_size

__all__ = ["data_size", "frame_payload", "text_frame"]


def text_frame(data: str | bytes) -> AsgiMessage:
    """Return the ASGI message for ``data``: text for ``str``, binary for ``bytes``."""
    if isinstance(data, str):
        return {"type": "websocket.send", "text": data}
    return {"type": "websocket.send", "bytes": data}


def data_size(data: str | bytes) -> int:
    """The size of a frame's payload on the wire, in bytes."""
    return frame_size(data)


def frame_payload(message: AsgiMessage) -> Frame:
    """The text or bytes a ``websocket.send`` message carries."""
    text: str | None = message.get("text")
    if text is not None:
        return text
    data: bytes | None = message.get("bytes")
    return b"" if data is None else data
