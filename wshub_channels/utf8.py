"""Strict UTF-8: the one test of whether text can go on the wire or into a name.

Imports nothing of the package, so every floor may use it.
"""

from __future__ import annotations

__all__ = ["lone_surrogate"]


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
