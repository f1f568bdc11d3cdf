"""Receives on normal channels: waits in the broker that lose no message, and end on close.

:class:`BrokerReceives` runs each receive on a normal channel (one without
``!``) as a wait in the :class:`~wshub_channels.layers.store.BrokerStore`:

- the message a receive got is settled with the store
  (``queue_delivered``); one handed over just as the receive was cancelled
  goes back (``queue_unpop``), so a cancelled receive loses nothing;
- :meth:`BrokerReceives.cancel_all` (the layer is closing) cancels every
  wait, on whichever loop it runs, and those receives raise the caller's
  ``closed()`` error instead of ``CancelledError``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from .store import BrokerStore

__all__ = ["BrokerReceives"]


class BrokerReceives:
    """The receives on normal channels of one layer, waiting in ``store``."""

    __slots__ = ("_closed", "_pops", "_store")

    def __init__(self, store: BrokerStore, closed: Callable[[], BaseException]) -> None:
        self._store = store
        self._closed = closed
        self._pops: set[asyncio.Task[bytes]] = set()

    async def receive(self, channel: str, capacity: int) -> bytes:
        """Wait for the next message of ``channel``; :meth:`cancel_all` ends the wait."""
        store = self._store
        pop = asyncio.ensure_future(store.queue_pop(channel, capacity))
        self._pops.add(pop)
        try:
            data = await pop
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if pop.cancelled() and (current is None or not current.cancelling()):
                raise self._closed() from None  # cancelled by cancel_all(), not by our caller
            if pop.done() and not pop.cancelled() and pop.exception() is None:
                store.queue_unpop(pop.result())  # cancelled just after the hand-over
            raise
        finally:
            self._pops.discard(pop)
        store.queue_delivered(data)
        return data

    async def cancel_all(self, timeout: float) -> None:
        """Cancel every wait; those on this loop may put back what they held (``timeout``)."""
        pops, self._pops = self._pops, set()
        here = asyncio.get_running_loop()
        for pop in pops:
            if pop.get_loop() is here:
                pop.cancel()
            elif not pop.get_loop().is_closed():
                pop.get_loop().call_soon_threadsafe(pop.cancel)
        ours = [pop for pop in pops if pop.get_loop() is here]
        if ours:
            # Let the cancelled waits put back what they held before the bus goes.
            await asyncio.wait(ours, timeout=timeout)
