"""Room history: positions, the rules that opt rooms in, and what a read returns (pure).

A room whose name matches a pattern of ``WSHUB["HISTORY"]`` keeps its last
messages. Each message stored there gets an ``offset`` one above the
previous one, and the room has an ``epoch``: a string that changes whenever
the room's history may have lost messages (the broker restarted empty, its
stream was reset, or everything in it expired). A :class:`Position` names
one message of one epoch; a client that saw up to a position can ask for
what came after it and learn whether the answer is complete.

The rules that opt rooms in (:class:`HistoryRule`, :class:`HistoryRules`) are
settings, so they live in :mod:`wshub_channels.config`; they are
re-exported here. This module is pure: the layers store and read, the hub
delivers.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import HistoryRule, HistoryRules

__all__ = [
    "HistoryEntry",
    "HistoryMessage",
    "HistoryPage",
    "HistoryRule",
    "HistoryRules",
    "Position",
    "Recovery",
    "StoredPage",
]


@dataclass(frozen=True, slots=True)
class Position:
    """A place in a room's history: the offset of a message, and the room's epoch.

    Offset 0 means "before the first message" of that epoch.
    """

    offset: int
    epoch: str

    def __post_init__(self) -> None:
        if not isinstance(self.offset, int) or isinstance(self.offset, bool) or self.offset < 0:
            raise ValueError(f"a position's offset is an int >= 0, not {self.offset!r}")
        if not isinstance(self.epoch, str):
            raise ValueError(f"a position's epoch is a str, not {self.epoch!r}")


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One stored message: its offset in the room, and the bytes the sender stored."""

    offset: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class StoredPage:
    """What a history store's read returns (the layers' level; see :class:`HistoryPage`).

    ``entries`` are the stored messages after the asked position, oldest
    first, at most the asked limit. ``position`` is the room's latest
    position now (offset 0 when nothing was ever stored in this epoch).
    ``complete`` is True when the store holds every message after the asked
    position in the same epoch (nothing was trimmed or expired in between);
    a limit that cuts the answer short does not make it incomplete.
    """

    entries: list[HistoryEntry]
    position: Position
    complete: bool


@dataclass(frozen=True, slots=True)
class HistoryMessage:
    """One message of a room's history: its offset, and the data as it was sent."""

    offset: int
    data: str | bytes


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """What ``hub.history(room, since=..., limit=...)`` returns.

    ``entries``: the room's messages after ``since`` (the newest ``limit``
    without it), oldest first. ``position``: the room's current position.
    ``complete``: True when nothing after ``since`` was lost (trimmed,
    expired, or in another epoch); a ``limit`` that cuts the page short
    leaves it complete.
    """

    entries: list[HistoryMessage]
    position: Position
    complete: bool


@dataclass(frozen=True, slots=True)
class Recovery:
    """What a join with a position got (``join_room(room, since=...)``).

    ``recovered`` is True when the client now has every message of the room
    after ``since``: the missed ones were replayed (``replayed`` of them)
    before any live one. False when nothing was asked (no ``since``), the
    room keeps no history, its epoch changed, or the gap is older than what
    it keeps: then the application reloads the room's state, and goes on
    from ``position``, the room's current position (None for a room without
    history).
    """

    recovered: bool
    position: Position | None
    replayed: int = 0
