"""Putting one history room's messages in offset order on one node (pure).

Messages of a history room reach a node from several senders (this node's
own sends and every other node's, each appended to the room's history before
it is published), so two of them can arrive in the other order than their
offsets. A :class:`RoomSequence` per room hands them on in offset order:

- a message at the next offset goes out at once, with any held ones it
  unblocks;
- a message above the next offset is held, and the room waits for the gap:
  the hub reads the missing offsets from the history store after a short
  wait (:meth:`RoomSequence.missing`, :meth:`RoomSequence.fill`); what the
  store no longer has is skipped (:meth:`RoomSequence.skip_gap`);
- a message below the next offset was handed on already (or given up on):
  it is dropped, so none goes out twice;
- a message of another epoch starts the sequence again at offset 1 of
  that epoch (the room's history was lost; readers learn it from the
  epoch), so the new epoch's first messages are awaited like any gap.

The sequence starts at the room's position when its first local member
joins (:meth:`RoomSequence.seed`), or at the first message it sees.
"""

from __future__ import annotations

from typing import Generic, TypeVar

from .history import Position

__all__ = ["RoomSequence"]

T = TypeVar("T")


class RoomSequence(Generic[T]):
    """The next offset one room's messages go out at, and those held for a gap."""

    __slots__ = ("epoch", "held", "next")

    def __init__(self) -> None:
        self.epoch: str | None = None
        self.next = 0
        self.held: dict[int, T] = {}

    @property
    def position(self) -> Position | None:
        """The position of the last message handed on (None before any is known)."""
        if self.epoch is None:
            return None
        return Position(max(self.next - 1, 0), self.epoch)

    def seed(self, position: Position) -> list[tuple[int, T]]:
        """Go on after ``position`` (a join read it from the store); return what goes out.

        In another epoch the sequence starts again after ``position``; in the
        same one it only moves forward: offsets up to ``position`` are in the
        store, so they are before the join (or replayed to it), never awaited.
        """
        if self.epoch != position.epoch:
            self._restart(position.epoch, position.offset + 1)
            return []
        if position.offset + 1 <= self.next:
            return []
        self.next = position.offset + 1
        for offset in [o for o in self.held if o < self.next]:
            del self.held[offset]
        out: list[tuple[int, T]] = []
        self._release(out)
        return out

    def offer(self, offset: int, epoch: str, item: T) -> list[tuple[int, T]]:
        """Take one message; return those that go out now (offset, item), in offset order."""
        if epoch != self.epoch:
            # A new epoch starts at offset 1, and all of it came after what this node saw.
            self._restart(epoch, offset if self.epoch is None else 1)
        if offset < self.next:
            return []  # handed on already, or skipped
        if offset > self.next:
            self.held.setdefault(offset, item)
            return []
        out = [(offset, item)]
        self.next += 1
        self._release(out)
        return out

    def missing(self) -> tuple[int, int] | None:
        """The offsets the held messages wait for (first, last), or None when none wait."""
        if not self.held:
            return None
        return self.next, min(self.held) - 1

    def fill(self, found: list[tuple[int, T]]) -> list[tuple[int, T]]:
        """Take messages read from the store for the gap; return those that go out."""
        out: list[tuple[int, T]] = []
        for offset, item in sorted(found, key=lambda pair: pair[0]):
            if offset == self.next:
                out.append((offset, item))
                self.next += 1
                self._release(out)
        return out

    def skip_gap(self) -> list[tuple[int, T]]:
        """Give up on the missing offsets (the store no longer has them); return the rest."""
        if not self.held:
            return []
        self.next = min(self.held)
        out: list[tuple[int, T]] = []
        self._release(out)
        return out

    def _release(self, out: list[tuple[int, T]]) -> None:
        held = self.held
        while self.next in held:
            out.append((self.next, held.pop(self.next)))
            self.next += 1

    def _restart(self, epoch: str, next_offset: int) -> None:
        self.epoch = epoch
        self.next = next_offset
        self.held.clear()
