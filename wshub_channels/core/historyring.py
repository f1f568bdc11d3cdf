"""One room's history kept in process: a bounded ring with expiry (pure).

The in-memory layer keeps one :class:`HistoryRing` per history room in its
broker. Time is passed in (``now``, seconds), so the ring is tested without
a clock. The room's state (epoch and newest offset) outlives its entries by
``max(ttl, STATE_TTL)`` seconds of quiet, as the Redis store's does: a
reader that comes back within that time learns that it missed messages
(not complete); later the state is gone and the room starts a new epoch.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from .history import HistoryEntry, HistoryRule, Position, StoredPage
from .historyread import ReadPlan, finish_page, plan_read

__all__ = ["STATE_TTL", "HistoryRing", "get_ring"]

#: How long a room's epoch and offset outlive its last append at least, in seconds.
STATE_TTL = 86400.0


class HistoryRing:
    """A room's kept messages (offset, stored at, payload), oldest first."""

    __slots__ = ("_entries", "epoch", "expires", "top", "ttl")

    def __init__(self, epoch: str) -> None:
        self.epoch = epoch
        self.top = 0
        self.ttl = 0.0
        self.expires = 0.0
        self._entries: deque[tuple[int, float, bytes]] = deque()

    def alive(self, now: float) -> bool:
        """False once the room's state has outlived ``max(ttl, STATE_TTL)`` of quiet."""
        return now < self.expires

    def append(self, payload: bytes, rule: HistoryRule, now: float) -> Position:
        self.top += 1
        self.ttl = rule.ttl
        self.expires = now + max(rule.ttl, STATE_TTL)
        entries = self._entries
        entries.append((self.top, now, payload))
        while len(entries) > rule.size:
            entries.popleft()
        self._expire(now)
        return Position(self.top, self.epoch)

    def read(self, since: Position | None, limit: int | None, now: float) -> StoredPage:
        self._expire(now)
        entries = self._entries
        oldest = entries[0][0] if entries else self.top + 1
        plan = plan_read(since, limit, self.epoch, self.top, oldest)
        if not isinstance(plan, ReadPlan):
            return plan
        skip = plan.first - oldest
        found = [
            HistoryEntry(offset, payload)
            for offset, _, payload in list(entries)[skip : skip + plan.last - plan.first + 1]
        ]
        return finish_page(since, self.epoch, self.top, oldest, found)

    def __len__(self) -> int:
        return len(self._entries)

    def _expire(self, now: float) -> None:
        entries, horizon = self._entries, now - self.ttl
        while entries and entries[0][1] <= horizon:
            entries.popleft()


def get_ring(
    rings: dict[str, HistoryRing], room: str, now: float, new_epoch: Callable[[], str]
) -> HistoryRing:
    """The live ring of ``room`` in ``rings``, starting a new epoch when its state is gone."""
    ring = rings.get(room)
    if ring is None or not ring.alive(now):
        ring = rings[room] = HistoryRing(new_epoch())
    return ring
