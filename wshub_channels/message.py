"""Message: one frame received from a client; and the compact JSON the hub sends."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = ["Message", "dump_json"]


def dump_json(obj: Any) -> str:
    """Encode ``obj`` as compact JSON text (what ``send_json`` and ``broadcast_json`` send)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


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
        data = self.data
        return len(data.encode("utf-8")) if isinstance(data, str) else len(data)
