"""Loop binding, written once: run a backend's methods on the loop its clients belong to.

The Redis and NATS client libraries tie connections to the event loop that
made them. A backend whose clients do keeps one :class:`HomeLoop` and marks
each coroutine method that touches a client with :func:`on_home`; its bus
and its store share that one home. The decorated method always runs on the
home loop:

- called on the home loop once it is open, it runs at once (the hot path:
  one check, no extra task or frame beyond the wrapper's);
- called from another running loop, it is forwarded to the home loop;
  calls from ``async_to_sync``'s temporary loops go to the publisher loop
  (:mod:`wshub_channels.publisher`);
- when the home loop has stopped (a test's loop ended, say), the caller's
  loop becomes home: the backend's ``abandon`` drops the dead loop's clients
  and ``open`` connects again.

Opening is shared by concurrent first callers, and an open and a close
never overlap. :func:`settle_on_home` does the same for the synchronous
hooks that settle a popped message.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

from ..publisher import forward, target_loop
from .bus import Reporter

__all__ = ["HomeLoop", "on_home", "settle_on_home"]

R = TypeVar("R")
P = ParamSpec("P")


class HomeLoop:
    """The loop a backend's clients belong to, and how to open and shut them there.

    ``open()`` connects on the home loop (subscribing to what the bus had);
    ``shut()`` closes every client and task there; ``abandon()`` forgets the
    clients of a home loop that has stopped, without I/O.
    """

    def __init__(
        self,
        open: Callable[[], Awaitable[None]],
        shut: Callable[[], Awaitable[None]],
        abandon: Callable[[], None],
    ) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        #: True once ``open`` succeeded on :attr:`loop`, until a close or abandon.
        self.opened = False
        self._open = open
        self._shut = shut
        self._abandon = abandon
        self._opening: asyncio.Future[None] | None = None  # the open in progress, if any
        self._shutting: asyncio.Future[None] | None = None  # the close in progress, if any

    async def run(self, call: Callable[[], Coroutine[Any, Any, R]]) -> R:
        """Return ``await call()``, run on the home loop once it is open."""
        here = asyncio.get_running_loop()
        if self.loop is here:
            if not self.opened:
                await self._connect_here()
            return await call()
        home = target_loop(self.loop, here)
        if home is not here:
            return await forward(home, self.run(call))
        if self.loop is not None:
            self._abandon()
            self.opened = False
            self._opening = None
        self.loop = here
        await self._connect_here()
        return await call()

    async def connect(self) -> None:
        """Open on the home loop (the caller's, the first time); idempotent."""
        await self.run(_nothing)

    async def _connect_here(self) -> None:
        """Open on the home loop once: concurrent first callers share one open.

        A close in progress ends first, so a new open never meets a shut that
        is still forgetting the old clients.
        """
        while self._shutting is not None:
            await asyncio.shield(self._shutting)
        if self.opened:
            return
        if self._opening is None:
            self._opening = asyncio.ensure_future(self._open_once())
        await asyncio.shield(self._opening)

    async def _open_once(self) -> None:
        try:
            await self._open()
            self.opened = True
        finally:
            self._opening = None  # a failed open is tried again by the next call

    async def close(self) -> None:
        """Close every client; an open still in progress finishes first, then closes too."""
        here = asyncio.get_running_loop()
        home = self.loop
        if home is here and self._opening is not None:
            with contextlib.suppress(Exception):  # a failed open leaves nothing to close
                await asyncio.shield(self._opening)
        if home is None or not self.opened:
            return
        if home is here:
            self.opened = False
            shutting = self._shutting = asyncio.ensure_future(self._shut())
            shutting.add_done_callback(self._shut_done)
            await asyncio.shield(shutting)
        elif home.is_running() and not home.is_closed():
            await forward(home, self.close())
        else:
            self.opened = False
            self._abandon()

    def _shut_done(self, shutting: asyncio.Future[None]) -> None:
        if self._shutting is shutting:
            self._shutting = None


class _AtHome(Protocol):
    home: HomeLoop


class _AtHomeReporting(Protocol):
    home: HomeLoop

    @property
    def report(self) -> Reporter: ...


S = TypeVar("S", bound=_AtHome)
T = TypeVar("T", bound=_AtHomeReporting)


def on_home(
    method: Callable[Concatenate[S, P], Coroutine[Any, Any, R]],
) -> Callable[Concatenate[S, P], Coroutine[Any, Any, R]]:
    """Make a coroutine method of an object with a ``home`` run on that home loop."""

    @functools.wraps(method)
    async def at_home(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
        home = self.home
        if home.opened and home.loop is asyncio.get_running_loop():
            return await method(self, *args, **kwargs)
        return await home.run(functools.partial(method, self, *args, **kwargs))

    return at_home


def settle_on_home(method: Callable[[T, bytes], None]) -> Callable[[T, bytes], None]:
    """Make a store's hook that settles a popped message run on the home loop.

    It runs at once on the home loop (or before there is one), else soon on
    the home loop; when that loop has closed, the message is reported as
    "receive_lost".
    """

    @functools.wraps(method)
    def at_home(self: T, data: bytes) -> None:
        home = self.home.loop
        if home is None or home is asyncio.get_running_loop():
            method(self, data)
        elif not home.is_closed():
            home.call_soon_threadsafe(method, self, data)
        else:
            self.report("receive_lost", ConnectionError("the bus's event loop has closed"))

    return at_home


async def _nothing() -> None:
    """Used by :meth:`HomeLoop.connect`: connecting is all it does."""
