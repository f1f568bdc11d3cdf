"""Transports whose clients belong to one event loop, and the forwarding that needs.

:class:`LoopBoundTransport` is the base of the Redis and NATS transports: their
client libraries tie connections to the loop that made them. Every call runs
on that home loop; a call from another running loop is forwarded there, and
calls from ``async_to_sync``'s temporary loops go to the publisher loop
(:mod:`wshub_channels.publisher`). Opening is shared by concurrent first
callers, and an open and a close never overlap.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

from ..publisher import forward, target_loop
from .transport import Transport

__all__ = ["LoopBoundTransport"]

R = TypeVar("R")


class LoopBoundTransport(Transport):
    """A transport whose clients belong to one event loop: the home loop.

    Subclasses implement the ``_``-prefixed methods, which always run on the
    home loop. A call from another running loop is forwarded there; when the
    home loop has stopped (a test's loop ended, say) the next caller's loop
    becomes home: :meth:`_abandon` drops the dead loop's clients and
    :meth:`_open` connects again, subscribing to every subject in
    :attr:`subjects`. Calls from ``async_to_sync``'s temporary loops go to the
    publisher loop (:mod:`wshub_channels.publisher`).
    """

    def __init__(self) -> None:
        super().__init__()
        self.home: asyncio.AbstractEventLoop | None = None
        #: Every subject subscribed to, kept across reconnects and new home loops.
        self.subjects: set[str] = set()
        self._opened = False
        self._opening: asyncio.Future[None] | None = None  # the open in progress, if any
        self._shutting: asyncio.Future[None] | None = None  # the close in progress, if any

    async def _on_home(self, fn: Callable[..., Coroutine[Any, Any, R]], *args: Any) -> R:
        here = asyncio.get_running_loop()
        if self.home is here:
            if not self._opened:
                await self._connect_here()
            return await fn(*args)
        home = target_loop(self.home, here)
        if home is not here:
            return await forward(home, self._on_home(fn, *args))
        if self.home is not None:
            self._abandon()
            self._opened = False
            self._opening = None
        self.home = here
        await self._connect_here()
        return await fn(*args)

    async def _connect_here(self) -> None:
        """Open on the home loop once: concurrent first callers share one open.

        A close in progress ends first, so a new open never meets a shut that
        is still forgetting the old clients.
        """
        while self._shutting is not None:
            await asyncio.shield(self._shutting)
        if self._opened:
            return
        if self._opening is None:
            self._opening = asyncio.ensure_future(self._open_once())
        await asyncio.shield(self._opening)

    async def _open_once(self) -> None:
        try:
            await self._open()
            self._opened = True
        finally:
            self._opening = None  # a failed open is tried again by the next call

    async def connect(self) -> None:
        await self._on_home(_nothing)

    async def close(self) -> None:
        """Close every client; an open still in progress finishes first, then closes too."""
        here = asyncio.get_running_loop()
        home = self.home
        self.subjects.clear()
        if home is here and self._opening is not None:
            with contextlib.suppress(Exception):  # a failed open leaves nothing to close
                await asyncio.shield(self._opening)
        if home is None or not self._opened:
            return
        if home is here:
            self._opened = False
            shutting = self._shutting = asyncio.ensure_future(self._shut())
            shutting.add_done_callback(self._shut_done)
            await asyncio.shield(shutting)
        elif home.is_running() and not home.is_closed():
            await forward(home, self.close())
        else:
            self._opened = False
            self._abandon()

    def _shut_done(self, shutting: asyncio.Future[None]) -> None:
        if self._shutting is shutting:
            self._shutting = None

    async def publish(self, subject: str, data: bytes) -> None:
        if self.home is asyncio.get_running_loop() and self._opened:
            await self._publish(subject, data)  # the hot path: no extra frame
        else:
            await self._on_home(self._publish, subject, data)

    async def publish_group(self, subject: str, data: bytes, group: str) -> list[str]:
        if self.home is asyncio.get_running_loop() and self._opened:
            return await self._publish_group(subject, data, group)
        return await self._on_home(self._publish_group, subject, data, group)

    async def subscribe(self, subject: str) -> None:
        self.subjects.add(subject)
        await self._on_home(self._subscribe, subject)

    async def unsubscribe(self, subject: str) -> None:
        self.subjects.discard(subject)
        await self._on_home(self._unsubscribe, subject)

    async def request(
        self, subject: str, data: bytes, timeout: float, max_replies: int | None = 1
    ) -> list[bytes]:
        return await self._on_home(self._request, subject, data, timeout, max_replies)

    async def queue_push(self, channel: str, data: bytes, capacity: int, expiry: float) -> bool:
        return await self._on_home(self._queue_push, channel, data, capacity, expiry)

    async def queue_push_many(
        self, pushes: Sequence[tuple[str, int]], data: bytes, expiry: float
    ) -> list[bool]:
        return await self._on_home(self._queue_push_many, pushes, data, expiry)

    async def queue_pop(self, channel: str, capacity: int) -> bytes:
        return await self._on_home(self._queue_pop, channel, capacity)

    def queue_delivered(self, data: bytes) -> None:
        self._call_home(self._queue_delivered, data)

    def queue_unpop(self, data: bytes) -> None:
        self._call_home(self._queue_unpop, data)

    def _call_home(self, fn: Callable[[bytes], None], data: bytes) -> None:
        """Run ``fn(data)`` on the home loop: here, or soon there."""
        home = self.home
        if home is None or home is asyncio.get_running_loop():
            fn(data)
        elif not home.is_closed():
            home.call_soon_threadsafe(fn, data)
        else:
            self.report("receive_lost", ConnectionError("the bus's event loop has closed"))

    def _queue_delivered(self, data: bytes) -> None:
        """Settle a delivered pop; on the home loop."""

    def _queue_unpop(self, data: bytes) -> None:
        """Put back a popped message whose receive was cancelled; on the home loop."""
        Transport.queue_unpop(self, data)

    async def store_group_add(self, group: str, channel: str, expiry: float) -> None:
        await self._on_home(self._store_group_add, group, channel, expiry)

    async def store_group_discard(self, group: str, channel: str) -> None:
        await self._on_home(self._store_group_discard, group, channel)

    async def store_group_members(self, group: str) -> list[str]:
        return await self._on_home(self._store_group_members, group)

    async def flush(self) -> None:
        await self._on_home(self._flush)

    # -- what a loop-bound backend implements (always called on the home loop) --

    @abc.abstractmethod
    async def _open(self) -> None:
        """Connect on the home loop and subscribe to :attr:`subjects`."""

    @abc.abstractmethod
    async def _shut(self) -> None:
        """Close every client and task on the home loop."""

    @abc.abstractmethod
    def _abandon(self) -> None:
        """Forget the clients of a home loop that has stopped, without I/O."""

    @abc.abstractmethod
    async def _publish(self, subject: str, data: bytes) -> None: ...

    @abc.abstractmethod
    async def _publish_group(self, subject: str, data: bytes, group: str) -> list[str]: ...

    @abc.abstractmethod
    async def _subscribe(self, subject: str) -> None: ...

    @abc.abstractmethod
    async def _unsubscribe(self, subject: str) -> None: ...

    @abc.abstractmethod
    async def _request(
        self, subject: str, data: bytes, timeout: float, max_replies: int | None
    ) -> list[bytes]: ...

    @abc.abstractmethod
    async def _queue_push(
        self, channel: str, data: bytes, capacity: int, expiry: float
    ) -> bool: ...

    async def _queue_push_many(
        self, pushes: Sequence[tuple[str, int]], data: bytes, expiry: float
    ) -> list[bool]:
        return [await self._queue_push(channel, data, cap, expiry) for channel, cap in pushes]

    @abc.abstractmethod
    async def _queue_pop(self, channel: str, capacity: int) -> bytes: ...

    @abc.abstractmethod
    async def _store_group_add(self, group: str, channel: str, expiry: float) -> None: ...

    @abc.abstractmethod
    async def _store_group_discard(self, group: str, channel: str) -> None: ...

    @abc.abstractmethod
    async def _store_group_members(self, group: str) -> list[str]: ...

    @abc.abstractmethod
    async def _flush(self) -> None: ...


async def _nothing() -> None:
    """Used by :meth:`LoopBoundTransport.connect`: connecting is all it does."""
