"""The frames of client protocol v1 that the hub's fan-out writes (pure).

A client that speaks the protocol (``wshub.js``, or any client that selected
the ``wshub.v1`` subprotocol on a consumer with the protocol mixin) gets
every broadcast, room and user send as one ``msg`` frame::

    {"t": "msg", "room": "chat.lobby", "offset": 12, "epoch": "k3x9a0qe", "data": "..."}

``room`` is null for a broadcast or a user send; ``offset`` and ``epoch``
are there only for messages of history rooms; ``data`` is the text as it was
sent (a string: JSON data arrives as its JSON text). Binary data is not
framed: it goes as the binary frame it was.
"""

from __future__ import annotations

import json

__all__ = ["msg_frame"]

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def msg_frame(room: str | None, data: str, position: tuple[int, str] | None = None) -> str:
    """The ``msg`` frame of one hub message."""
    if position is None:
        return _dumps({"t": "msg", "room": room, "data": data})
    offset, epoch = position
    return _dumps({"t": "msg", "room": room, "offset": offset, "epoch": epoch, "data": data})
