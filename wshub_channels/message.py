"""Message: one frame received from a client; and the text the hub sends.

Text the hub sends always encodes as UTF-8: :func:`check_text` refuses a
string holding a lone surrogate (valid JSON can carry one, as ``"\\ud800"``)
with :class:`~wshub_channels.errors.InvalidFrame`, rather than altering the
text, and every text send (``send_text``, ``send_json``, the hub's
broadcasts, room and user sends, and :func:`dump_json`) applies it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .errors import InvalidFrame
from .utf8 import frame_size, lone_surrogate

__all__ = ["Message", "check_text", "dump_json"]


def check_text(text: str) -> str:
    """Return ``text`` if UTF-8 can encode it; raise ``InvalidFrame`` if it holds a lone
    surrogate."""
    at = lone_surrogate(text)
    if at is not None:
        raise InvalidFrame(
            f"text holds a lone surrogate at index {at} ({text[at]!r}), which UTF-8 cannot encode"
        )
    return text


def dump_json(obj: Any) -> str:
    """Encode ``obj`` as compact JSON text (what ``send_json`` and ``broadcast_json`` send).

    Raises ``InvalidFrame`` when a string in ``obj`` holds a lone surrogate.
    """
    return check_text(json.dumps(obj, separators=(",", ":"), ensure_ascii=False))


@dataclass(frozen=True, slots=True)
class Message:
    """A frame a client sent. ``data`` is ``str`` for text frames, ``bytes`` for binary."""

    data: bytes | str
    client_id: str = ""
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def is_text(self) -> bool:
        return isinstance(self.data, str)

    def text(self) -> str:
        """Return the frame as text; binary frames are decoded as UTF-8 (strictly)."""
        data = self.data
        return data if isinstance(data, str) else data.decode("utf-8")

    def json(self) -> Any:
        """Parse the frame as JSON; raises ``ValueError`` when it is not."""
        return json.loads(self.data)

    def __len__(self) -> int:
        """The frame's size in bytes (:func:`~wshub_channels.utf8.frame_size`)."""
        return frame_size(self.data)
