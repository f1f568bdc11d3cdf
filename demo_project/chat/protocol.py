"""What the chat page and the server say to each other, and the rules on names (pure).

The page speaks client protocol v1 through ``wshub.js``: rooms are joined,
left and written in with the protocol's ``join``, ``leave`` and ``send``
frames, and their lines come back as ``msg`` frames whose data is a
``message`` object (below). The page's own requests are JSON objects with a
``type`` (no ``"t"``):

- ``{"type": "dm", "to": NICK, "text": T}``: a direct message to every tab of NICK;
- ``{"type": "who", "room": R}``: who is in a room, on every node;
- ``{"type": "rooms"}``: the room list now.

The server answers with ``hello``, ``rooms``, ``who``, ``dm`` and ``error``
objects, and a line in a room is ``{"type": "message", "room", "from",
"login", "text"}`` (see ``consumers.py``). Every ``error`` carries a stable
``code`` and a sentence for people.
"""

from __future__ import annotations

import unicodedata

__all__ = [
    "DEFAULT_ROOMS",
    "MAX_NICK",
    "MAX_ROOM",
    "MAX_TEXT",
    "MEMBERS_ROOM",
    "ChatError",
    "clean_nickname",
    "clean_room",
    "clean_text",
]

#: The room that needs a Django login.
MEMBERS_ROOM = "members"
#: Rooms listed even when empty.
DEFAULT_ROOMS = ("lobby", "random", MEMBERS_ROOM)
MAX_NICK = 24
MAX_ROOM = 40
MAX_TEXT = 500


class ChatError(Exception):
    """An action the server refuses: ``code`` for the page's logic, the text for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _clean_name(value: object, what: str, longest: int) -> str:
    if not isinstance(value, str):
        raise ChatError(f"bad_{what}", f"A {what} must be text.")
    name = " ".join(value.split())  # trim, and no tabs, newlines or runs of spaces
    if not name:
        raise ChatError(f"bad_{what}", f"Please give a {what}.")
    if len(name) > longest:
        raise ChatError(f"bad_{what}", f"A {what} has at most {longest} characters.")
    if any(unicodedata.category(ch).startswith("C") for ch in name):
        raise ChatError(f"bad_{what}", f"A {what} cannot hold control characters.")
    return name


def clean_nickname(value: object) -> str:
    """The nickname as shown and compared, or ``ChatError("bad_nickname")``."""
    return _clean_name(value, "nickname", MAX_NICK)


def clean_room(value: object) -> str:
    """The room name as shown and joined, or ``ChatError("bad_room")``."""
    return _clean_name(value, "room", MAX_ROOM).lower()


def clean_text(value: object) -> str:
    """A chat line: non-empty text of at most ``MAX_TEXT`` characters."""
    if not isinstance(value, str) or not value.strip():
        raise ChatError("empty", "There is nothing to send.")
    if len(value) > MAX_TEXT:
        raise ChatError("too_long", f"A message has at most {MAX_TEXT} characters.")
    return value
