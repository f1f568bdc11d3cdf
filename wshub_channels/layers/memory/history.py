"""``MemoryHistory``: room history on a process-local broker (one ring per room).

The rings live in the :class:`~.broker.MemoryBroker`, so layer instances on
one named bus share each room's history as nodes of a cluster share a
broker's. Time is the wall clock, as on a real broker.
"""

from __future__ import annotations

import time

from ...core.history import HistoryRule, Position, StoredPage
from ...core.historyread import plan_read
from ...core.historyring import get_ring
from ...core.names import random_token
from ..historystore import HistoryStore
from .broker import MemoryBroker

__all__ = ["MemoryHistory"]


class MemoryHistory(HistoryStore):
    """The broker's history rings, as one node sees them."""

    def __init__(self, broker: MemoryBroker) -> None:
        self.broker = broker

    async def append(self, room: str, payload: bytes, rule: HistoryRule) -> Position:
        now = time.time()
        return get_ring(self.broker.history, room, now, _new_epoch).append(payload, rule, now)

    async def read(self, room: str, since: Position | None, limit: int | None) -> StoredPage:
        now = time.time()
        ring = self.broker.history.get(room)
        if ring is None or not ring.alive(now):
            page = plan_read(since, limit, "", 0, 1)  # no state: nothing to fetch
            assert isinstance(page, StoredPage)
            return page
        return ring.read(since, limit, now)

    async def flush(self) -> None:
        self.broker.history.clear()


def _new_epoch() -> str:
    return random_token(8)
