"""One connection's bounded send queue: drop policies and write coalescing.

This module is pure: no asyncio, no ASGI, no clock. Items are frames, ``str``
for text and ``bytes`` for binary. :meth:`SendQueue.offer` applies the
:class:`~wshub_channels.config.DropPolicy` when one more frame would take the
queue over either bound, ``maxsize`` frames or ``maxbytes`` bytes of payload
(:func:`~wshub_channels.utf8.frame_size`, the one size function; 0 means no byte bound). It
returns an :class:`Offer` that says what happened; the caller reports the
dropped frames and acts on a disconnect request. :meth:`SendQueue.next_frame`
hands out the frame to write next, in the order offered.

Under ``DROP_OLDEST`` as many of the oldest frames are evicted as the new one
needs. A frame larger than the whole byte budget could never fit: it is
dropped alone under ``DROP_NEWEST`` and ``DROP_OLDEST`` (the queued frames
stay), and asks to disconnect under ``DISCONNECT``.

With coalescing on, consecutive text frames are joined with ``"\\n"`` into one
frame whose UTF-8 encoding is at most ``coalesce_max_bytes`` long; a single
text frame longer than that is handed out alone, unchanged. Binary frames are
never joined, and nothing is joined across one, so they also keep their place.

Not thread-safe: one owner (a connection's event loop) uses a queue.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from ..config import Config, DropPolicy
from ..utf8 import frame_size

__all__ = ["Frame", "Offer", "SendQueue"]

Frame = str | bytes


@dataclass(frozen=True, slots=True)
class Offer:
    """What :meth:`SendQueue.offer` did with one frame.

    ``queued``: the offered frame is in the queue. ``dropped``: the frame the
    policy discarded (the offered one, or the oldest under ``DROP_OLDEST``), or
    None; test it with ``is not None``, since ``""`` is a frame. ``evicted``:
    further frames ``DROP_OLDEST`` discarded to make room for a large one, in
    queue order. ``disconnect``: the policy asks the caller to close the
    connection.
    """

    queued: bool
    dropped: Frame | None = None
    disconnect: bool = False
    evicted: tuple[Frame, ...] = ()

    @property
    def dropped_frames(self) -> tuple[Frame, ...]:
        """Every frame this offer discarded, oldest first."""
        if self.dropped is None:
            return self.evicted
        return (self.dropped, *self.evicted)


_QUEUED = Offer(queued=True)


class SendQueue:
    """A bounded FIFO of frames with a drop policy and optional coalescing."""

    __slots__ = (
        "_bytes",
        "_items",
        "_sizes",
        "coalesce",
        "coalesce_max_bytes",
        "maxbytes",
        "maxsize",
        "policy",
    )

    def __init__(
        self,
        maxsize: int,
        policy: DropPolicy = DropPolicy.DROP_NEWEST,
        *,
        coalesce: bool = False,
        coalesce_max_bytes: int = 64 * 1024,
        maxbytes: int = 0,
    ) -> None:
        for name, value in (("maxsize", maxsize), ("coalesce_max_bytes", coalesce_max_bytes)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if isinstance(maxbytes, bool) or not isinstance(maxbytes, int) or maxbytes < 0:
            raise ValueError(f"maxbytes must be an int >= 0, got {maxbytes!r}")
        self.maxsize = maxsize
        self.maxbytes = maxbytes
        self.policy = DropPolicy(policy)
        self.coalesce = coalesce
        self.coalesce_max_bytes = coalesce_max_bytes
        self._items: deque[Frame] = deque()
        self._sizes: deque[int] = deque()  # frame_size of each queued frame, in step
        self._bytes = 0

    @classmethod
    def from_config(cls, config: Config) -> SendQueue:
        """A queue with ``config``'s size, drop policy and coalescing settings."""
        return cls(
            config.send_queue_size,
            config.drop_policy,
            coalesce=config.coalesce_writes,
            coalesce_max_bytes=config.coalesce_max_bytes,
            maxbytes=config.send_queue_bytes,
        )

    def __len__(self) -> int:
        return len(self._items)

    def __bool__(self) -> bool:
        return bool(self._items)

    @property
    def queued_bytes(self) -> int:
        """The payload bytes of the queued frames."""
        return self._bytes

    @property
    def full(self) -> bool:
        """True when no frame at all would fit (every ``maxsize`` slot is taken)."""
        return len(self._items) >= self.maxsize

    def fits(self, size: int) -> bool:
        """True when a frame of ``size`` bytes would be queued without the drop policy."""
        if len(self._items) >= self.maxsize:
            return False
        maxbytes = self.maxbytes
        return not maxbytes or self._bytes + size <= maxbytes

    def offer(self, frame: Frame) -> Offer:
        """Queue ``frame``, applying the drop policy if it would not fit."""
        items = self._items
        size = frame_size(frame)
        maxbytes = self.maxbytes
        if len(items) < self.maxsize and (not maxbytes or self._bytes + size <= maxbytes):
            items.append(frame)
            self._sizes.append(size)
            self._bytes += size
            return _QUEUED
        policy = self.policy
        if policy is DropPolicy.DROP_OLDEST and (not maxbytes or size <= maxbytes):
            evicted = [self._pop()]
            while len(items) >= self.maxsize or (maxbytes and self._bytes + size > maxbytes):
                evicted.append(self._pop())
            items.append(frame)
            self._sizes.append(size)
            self._bytes += size
            return Offer(queued=True, dropped=evicted[0], evicted=tuple(evicted[1:]))
        return Offer(queued=False, dropped=frame, disconnect=policy is DropPolicy.DISCONNECT)

    def _pop(self) -> Frame:
        self._bytes -= self._sizes.popleft()
        return self._items.popleft()

    def next_frame(self) -> Frame | None:
        """Remove and return the next frame to write (coalesced if enabled), or None."""
        items = self._items
        if not items:
            return None
        sizes = self._sizes
        first = items.popleft()
        size = sizes.popleft()
        self._bytes -= size
        if not self.coalesce or not isinstance(first, str):
            return first
        if not items or not isinstance(items[0], str):
            return first
        limit = self.coalesce_max_bytes
        parts = [first]
        while items:
            text = items[0]
            if not isinstance(text, str):
                break  # binary: never joined, and nothing is joined across it
            part = sizes[0]
            grown = size + 1 + part
            if grown > limit:
                break
            parts.append(text)
            items.popleft()
            sizes.popleft()
            self._bytes -= part
            size = grown
        return first if len(parts) == 1 else "\n".join(parts)

    def take_all(self) -> list[Frame]:
        """Remove and return every queued frame, oldest first (to report them dropped)."""
        frames = list(self._items)
        self.clear()
        return frames

    def clear(self) -> int:
        """Discard every queued frame; return how many there were."""
        count = len(self._items)
        self._items.clear()
        self._sizes.clear()
        self._bytes = 0
        return count
