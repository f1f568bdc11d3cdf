"""UTF-8 on the wire: the one strict test for text and names, and the one size function.

Imports nothing of the package, so every floor may use it.
"""

from __future__ import annotations

__all__ = ["frame_size", "lone_surrogate", "utf8_size"]


def lone_surrogate(text: str) -> int | None:
    """The index of the first lone surrogate in ``text`` (which UTF-8 cannot encode), or None.

    The one strict-UTF-8 test of the package, for frames and names alike: ASCII
    text is answered with one ``isascii``, other text is encoded once.
    """
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return exc.start
    return None


def utf8_size(text: str) -> int:
    """Length in bytes of ``text`` encoded as UTF-8 (lone surrogates count 3 bytes)."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-8", "surrogatepass"))


def frame_size(frame: str | bytes) -> int:
    """A frame's payload size in bytes: UTF-8 for text, length for binary."""
    return utf8_size(frame) if isinstance(frame, str) else len(frame)
