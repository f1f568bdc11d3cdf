"""The hub's room-history calls of a node: through its store, once the bus is up."""

from __future__ import annotations

from ..core.history import HistoryRule, Position, StoredPage
from .historystore import HistoryStore

__all__ = ["HistoryOps"]


class HistoryOps:
    """``history_append`` and ``history_read`` of :class:`~.node.BusNode` (the face's)."""

    history: HistoryStore

    async def start(self) -> None:
        raise NotImplementedError

    async def history_append(self, room: str, payload: bytes, rule: HistoryRule) -> Position:
        """Store one message of a history room; return its position (see :mod:`.historystore`)."""
        await self.start()
        return await self.history.append(room, payload, rule)

    async def history_read(
        self, room: str, since: Position | None, limit: int | None
    ) -> StoredPage:
        """Read a history room after ``since`` (see :mod:`.historystore`)."""
        await self.start()
        return await self.history.read(room, since, limit)
