"""ASGI ``websocket.send`` messages: build them and read them.

No I/O: these only build and look at messages. Each builder says what it
builds: :func:`text_message` a text frame, :func:`binary_message` a binary
one, and :func:`data_message` whichever the data is (text for ``str``,
binary for ``bytes``). Sizes are :func:`~wshub_channels.utf8.frame_size`,
the one size function.
"""

from __future__ import annotations

from ..types import AsgiMessage
from .sendqueue import Frame

__all__ = ["binary_message", "data_message", "frame_payload", "text_message"]


def text_message(text: str) -> AsgiMessage:
    """The ASGI message of a text frame."""
    return {"type": "websocket.send", "text": text}


def binary_message(data: bytes) -> AsgiMessage:
    """The ASGI message of a binary frame."""
    return {"type": "websocket.send", "bytes": data}


def data_message(data: Frame) -> AsgiMessage:
    """The ASGI message for ``data``: a text frame for ``str``, a binary one for ``bytes``."""
    if isinstance(data, str):
        return {"type": "websocket.send", "text": data}
    return {"type": "websocket.send", "bytes": data}


def frame_payload(message: AsgiMessage) -> Frame:
    """The text or bytes a ``websocket.send`` message carries."""
    text: str | None = message.get("text")
    if text is not None:
        return text
    data: bytes | None = message.get("bytes")
    return b"" if data is None else data
