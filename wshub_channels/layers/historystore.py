"""The ``HistoryStore`` contract: where a layer keeps the history of rooms.

A room whose name matches ``WSHUB["HISTORY"]`` keeps its last messages in
the broker, so every node and every publisher process share one history
(:mod:`wshub_channels.core.history` holds the vocabulary). A store:

- :meth:`~HistoryStore.append`: stores one message of a room under its rule
  and returns the message's :class:`~wshub_channels.core.history.Position`;
- :meth:`~HistoryStore.read`: returns a
  :class:`~wshub_channels.core.history.StoredPage` of what came after a
  position, the room's current position, and whether the range is complete;
- :meth:`~HistoryStore.flush`: forgets every room under this prefix.

What every store guarantees (the history conformance suite checks it):

- **Offsets.** The first message of an epoch has offset 1, each next one the
  previous plus one, across every node and process that appends to the room.
- **Epochs.** A room's epoch is a random token chosen at its first append.
  It changes whenever the room's history may have lost messages that a
  reader could still ask for: the broker lost the room's state (restarted
  empty, stream deleted), or the room's state expired. Offsets start again
  at 1 in the new epoch. A room with no state reads ``Position(0, "")``.
- **What is kept.** At most ``rule.size`` messages, each for ``rule.ttl``
  seconds (the broker's clock where there is one). Removal is always from
  the oldest end, so what is kept is a run of consecutive offsets.
- **Reads** (``since`` is where the reader is; ``limit`` None means all,
  0 means only the position):

  - ``since`` None: the newest ``limit`` messages, oldest first;
    complete when offset 1 of the epoch is still kept (or nothing was stored);
  - ``since.offset == 0`` (the reader saw nothing yet, whatever its epoch):
    the oldest ``limit`` messages; complete when offset 1 is still kept;
  - ``since`` in another epoch, or beyond the room's newest offset: no
    messages, not complete (the reader must reload);
  - otherwise the first ``limit`` messages after ``since.offset``; complete
    when the message right after ``since`` is still kept (or ``since`` is
    the newest). A limit that cuts the page short leaves it complete.
- **Failures.** A broker that cannot be reached raises
  :class:`~wshub_channels.errors.BusUnavailable`; nothing is half-stored.

:class:`NoHistory` is the store of a backend without history: every call
raises :class:`~wshub_channels.errors.HistoryUnavailable`.
"""

from __future__ import annotations

import abc

from ..core.history import HistoryRule, Position, StoredPage
from ..errors import HistoryUnavailable

__all__ = ["HistoryStore", "NoHistory"]


class HistoryStore(abc.ABC):
    """Room history in the broker; see the module docstring for the guarantees."""

    @abc.abstractmethod
    async def append(self, room: str, payload: bytes, rule: HistoryRule) -> Position:
        """Store ``payload`` as the room's next message; return its position."""

    @abc.abstractmethod
    async def read(self, room: str, since: Position | None, limit: int | None) -> StoredPage:
        """Return what the room keeps after ``since`` (at most ``limit``), and its position."""

    @abc.abstractmethod
    async def flush(self) -> None:
        """Forget the history of every room under this prefix."""


class NoHistory(HistoryStore):
    """The history store of a backend that keeps none: every call raises."""

    def __init__(self, backend: str) -> None:
        self.backend = backend

    def _refuse(self) -> HistoryUnavailable:
        return HistoryUnavailable(f"{self.backend} keeps no room history")

    async def append(self, room: str, payload: bytes, rule: HistoryRule) -> Position:
        raise self._refuse()

    async def read(self, room: str, since: Position | None, limit: int | None) -> StoredPage:
        raise self._refuse()

    async def flush(self) -> None:
        return None
