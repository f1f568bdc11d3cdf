"""One connection's bounded send queue: drop policies and write coalescing.

This module is pure: no asyncio, no ASGI, no clock. Items are frames, ``str``
for text and ``bytes`` for binary. :meth:`SendQueue.offer` applies the
:class:`~wshub_channels.config.DropPolicy` when the queue is full and returns
an :class:`Offer` that says what happened; the caller reports the dropped
frame and acts on a disconnect request. :meth:`SendQueue.next_frame` hands out
the frame to write next, in the order offered.

With coalescing on, consecutive text frames are joined with ``"\\n"`` into one
frame whose UTF-8 encoding is at most ``coalesce_max_bytes`` long; a single
text frame longer than that is handed out alone, unchanged. Binary frames are
never joined, and nothing is joined across one, so they also keep their place.

Not thread-safe: one owner (a connection's event loop) uses a queue.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from .config import Config, DropPolicy

__all__ = ["Frame", "Offer", "SendQueue", "utf8_size"]

Frame = str | bytes


@dataclass(frozen=True, slots=True)
class Offer:
    """What :meth:`SendQueue.offer` did with one frame.

    ``queued``: the offered frame is in the queue. ``dropped``: the frame the
    policy discarded (the offered one, or the oldest under ``DROP_OLDEST``), or
    None; test it with ``is not None``, since ``""`` is a frame. ``disconnect``:
    the policy asks the caller to close the connection.
    """

    queued: bool
    dropped: Frame | None = None
    disconnect: bool = False


_QUEUED = Offer(queued=True)


def utf8_size(text: str) -> int:
    """Length in bytes of ``text`` encoded as UTF-8 (lone surrogates count 3 bytes)."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-8", "surrogatepass"))


class SendQueue:
    """A bounded FIFO of frames with a drop policy and optional coalescing."""

    __slots__ = ("_items", "coalesce", "coalesce_max_bytes", "maxsize", "policy")

    def __init__(
        self,
        maxsize: int,
        policy: DropPolicy = DropPolicy.DROP_NEWEST,
        *,
        coalesce: bool = False,
        coalesce_max_bytes: int = 64 * 1024,
    ) -> None:
        for name, value in (("maxsize", maxsize), ("coalesce_max_bytes", coalesce_max_bytes)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.maxsize = maxsize
        self.policy = DropPolicy(policy)
        self.coalesce = coalesce
        self.coalesce_max_bytes = coalesce_max_bytes
        self._items: deque[Frame] = deque()

    @classmethod
    def from_config(cls, config: Config) -> SendQueue:
        """A queue with ``config``'s size, drop policy and coalescing settings."""
        return cls(
            config.send_queue_size,
            config.drop_policy,
            coalesce=config.coalesce_writes,
            coalesce_max_bytes=config.coalesce_max_bytes,
        )

    def __len__(self) -> int:
        return len(self._items)

    def __bool__(self) -> bool:
        return bool(self._items)

    @property
    def full(self) -> bool:
        """True when one more frame would make the drop policy apply."""
        return len(self._items) >= self.maxsize

    def offer(self, frame: Frame) -> Offer:
        """Queue ``frame``, applying the drop policy if the queue is full."""
        items = self._items
        if len(items) < self.maxsize:
            items.append(frame)
            return _QUEUED
        policy = self.policy
        if policy is DropPolicy.DROP_OLDEST:
            oldest = items.popleft()
            items.append(frame)
            return Offer(queued=True, dropped=oldest)
        return Offer(queued=False, dropped=frame, disconnect=policy is DropPolicy.DISCONNECT)

    def next_frame(self) -> Frame | None:
        """Remove and return the next frame to write (coalesced if enabled), or None."""
        items = self._items
        if not items:
            return None
        first = items.popleft()
        if not self.coalesce or not isinstance(first, str):
            return first
        if not items or not isinstance(items[0], str):
            return first
        limit = self.coalesce_max_bytes
        size = utf8_size(first)
        parts = [first]
        while items:
            text = items[0]
            if not isinstance(text, str):
                break  # binary: never joined, and nothing is joined across it
            grown = size + 1 + utf8_size(text)
            if grown > limit:
                break
            parts.append(text)
            items.popleft()
            size = grown
        return first if len(parts) == 1 else "\n".join(parts)

    def clear(self) -> int:
        """Discard every queued frame; return how many there were."""
        count = len(self._items)
        self._items.clear()
        return count
