"""The subjects a node is subscribed to, shared by concurrent subscribers.

:class:`Subscriptions` keeps one entry per subject: the subscribe in
progress, then "done". Callers that subscribe to a subject together share
one bus subscribe; an unsubscribe waits for a subscribe still in progress
before it undoes it; a failed subscribe is forgotten, so the next caller
tries again. It keeps no loop-bound state beyond the pending futures.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from .bus import Bus

__all__ = ["Subscriptions"]


class Subscriptions:
    """A node's subscriptions on ``bus``."""

    __slots__ = ("_bus", "_subs")

    def __init__(self, bus: Bus) -> None:
        self._bus = bus
        # subject -> True once subscribed, or the pending subscribe future.
        self._subs: dict[str, asyncio.Future[None] | bool] = {}

    def __contains__(self, subject: object) -> bool:
        return subject in self._subs

    def count_except(self, own: Iterable[str]) -> int:
        """How many subjects are subscribed (or being subscribed), ``own`` left out."""
        mine = set(own)
        return sum(1 for subject in self._subs if subject not in mine)

    def clear(self) -> None:
        """Forget every subscription (the bus is closing and drops them itself)."""
        self._subs.clear()

    async def subscribe(self, subject: str) -> None:
        """Subscribe to ``subject`` once; returns when the bus has it."""
        state = self._subs.get(subject)
        if state is True:
            return
        if state is None or state is False:
            state = self._subs[subject] = asyncio.ensure_future(self._bus.subscribe(subject))
        try:
            await asyncio.shield(state)
        except BaseException:
            if state.done() and self._subs.get(subject) is state:
                del self._subs[subject]
            raise
        if self._subs.get(subject) is state:
            self._subs[subject] = True

    async def unsubscribe(self, subject: str) -> None:
        """Unsubscribe from ``subject`` if subscribed (after a subscribe in progress)."""
        state = self._subs.pop(subject, None)
        if state is None:
            return
        if not isinstance(state, bool):
            await asyncio.shield(state)
        await self._bus.unsubscribe(subject)
