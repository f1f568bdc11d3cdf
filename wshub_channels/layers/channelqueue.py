"""One channel's bounded FIFO with expiry, readable from any event loop.

A :class:`ChannelQueue` holds the messages of one channel. ``put`` never
blocks: it hands the message straight to a waiting reader when there is one,
otherwise appends it, or returns False when the channel is at capacity (after
dropping expired messages from the head). ``get`` is O(1) per message: there
is no scan of other channels.

Thread and loop safety: ``put`` may be called from any thread or event loop;
a reader waiting on another loop is woken with ``call_soon_threadsafe``, and a
message handed to a reader that was cancelled meanwhile goes back to the head
of the queue, so nothing is lost to a cancellation race.

Every message dropped unread because it expired is counted in ``expired``
and reported to the optional ``on_expire`` callback, which runs in whatever
thread noticed the expiry.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from typing import Any

__all__ = ["ChannelQueue"]

_get_running_loop = asyncio._get_running_loop


class ChannelQueue:
    """A bounded FIFO of (deadline, message) pairs with direct hand-off to readers."""

    __slots__ = (
        "capacity",
        "expired",
        "expiry",
        "items",
        "last_active",
        "name",
        "on_expire",
        "waiters",
    )

    def __init__(
        self,
        name: str,
        capacity: int,
        expiry: float,
        on_expire: Callable[[], None] | None = None,
    ) -> None:
        self.name = name
        self.on_expire = on_expire
        self.capacity = capacity
        self.expiry = expiry
        self.items: deque[tuple[float, Any]] = deque()
        self.waiters: deque[asyncio.Future[Any]] = deque()
        self.expired = 0
        self.last_active = time.monotonic()

    def __len__(self) -> int:
        return len(self.items)

    def _purge(self, now: float) -> None:
        items = self.items
        while items and items[0][0] <= now:
            items.popleft()
            self._count_expired()

    def _count_expired(self) -> None:
        self.expired += 1
        if self.on_expire is not None:
            self.on_expire()

    def put(self, message: Any, now: float) -> bool:
        """Queue ``message``; return False (and keep nothing) when full."""
        self.last_active = now
        waiters = self.waiters
        while waiters and not self.items:
            waiter = waiters.popleft()
            if waiter.done():
                continue
            if waiter.get_loop() is _get_running_loop():
                waiter.set_result(message)
            else:
                waiter.get_loop().call_soon_threadsafe(self._hand_over, waiter, message, now)
            return True
        if len(self.items) >= self.capacity:
            self._purge(now)
            if len(self.items) >= self.capacity:
                return False
        self.items.append((now + self.expiry, message))
        return True

    def _hand_over(self, waiter: asyncio.Future[Any], message: Any, now: float) -> None:
        if waiter.done():
            self.items.appendleft((now + self.expiry, message))
            self._wake_next()
        else:
            waiter.set_result(message)

    def _wake_next(self) -> None:
        """Give the head message to the next live waiter, if any."""
        while self.waiters and self.items:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(self.items.popleft()[1])
                return

    def get_nowait(self, now: float) -> tuple[bool, Any]:
        """Return ``(True, message)`` for the oldest live message, or ``(False, None)``."""
        items = self.items
        while items:
            deadline, message = items.popleft()
            if deadline > now:
                return True, message
            self._count_expired()
        return False, None

    async def get(self) -> Any:
        """Wait for and return the next message of this channel."""
        found, message = self.get_nowait(time.monotonic())
        if found:
            return message
        waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                # The message arrived as we were cancelled: keep it for the next reader.
                self.items.appendleft((time.monotonic() + self.expiry, waiter.result()))
            else:
                with contextlib.suppress(ValueError):
                    self.waiters.remove(waiter)
            raise

    def fail_waiters(self, error: Callable[[], BaseException]) -> int:
        """End every waiting ``get`` with ``error()`` (raised in the reader); return how many.

        Safe from any thread or loop: a reader on another loop is failed there.
        """
        failed = 0
        while self.waiters:
            waiter = self.waiters.popleft()
            if waiter.done():
                continue
            loop = waiter.get_loop()
            if loop is _get_running_loop():
                waiter.set_exception(error())
            elif not loop.is_closed():
                loop.call_soon_threadsafe(_fail, waiter, error())
            failed += 1
        return failed

    def purge_expired(self, now: float) -> None:
        """Drop expired messages from the head."""
        self._purge(now)


def _fail(waiter: asyncio.Future[Any], error: BaseException) -> None:
    if not waiter.done():
        waiter.set_exception(error)
