"""This node's ``!`` channels: one bounded queue each, release timers, and the sweep.

:class:`LocalChannels` is the table of the process-local channels a layer
owns. Each channel has its own :class:`ChannelQueue`, so capacity is per
channel and one slow reader never blocks its neighbours. It also frees
channels whose readers went away:

- a receive cancelled on a channel schedules its release after
  ``release_grace`` seconds (a stock consumer that disconnected); a new
  receive on it before then cancels the release;
- :meth:`LocalChannels.maybe_sweep`, called as channels are used, drops
  orphans: channels that are empty, unread, in no group and idle for longer
  than ``expiry``.

Loop and thread safety: no method awaits, so each runs as one step on the
calling thread. Calls may come from other threads (a ``send`` through
``async_to_sync``); the table relies on the atomic dict operations of the
interpreter for those, as the layer always has. :meth:`schedule_release`
needs a running event loop, where the timer then runs. The queues accept
``put`` from any thread (see :mod:`~wshub_channels.layers.channelqueue`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any

from ..tasks import spawn
from .channelqueue import ChannelQueue

__all__ = ["LocalChannels"]


class LocalChannels:
    """The ``!`` channels of one layer, with their release timers.

    ``capacity_of(name)`` gives a new channel's capacity; ``release(name)``
    frees a channel and its memberships when its release timer fires;
    ``in_group(name)`` tells the sweep a channel still belongs to a group;
    ``on_expire()`` runs for every message that expired unread.
    """

    __slots__ = (
        "_capacity_of",
        "_in_group",
        "_next_sweep",
        "_on_expire",
        "_release",
        "_timers",
        "expiry",
        "queues",
        "release_grace",
    )

    def __init__(
        self,
        capacity_of: Callable[[str], int],
        expiry: float,
        release_grace: float,
        release: Callable[[str], Coroutine[Any, Any, None]],
        in_group: Callable[[str], bool],
        on_expire: Callable[[], None] | None = None,
    ) -> None:
        self.expiry = expiry
        self.release_grace = release_grace
        #: name -> queue; read directly on the fan-out hot path.
        self.queues: dict[str, ChannelQueue] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._capacity_of = capacity_of
        self._release = release
        self._in_group = in_group
        self._on_expire = on_expire
        self._next_sweep = time.monotonic() + expiry

    def __len__(self) -> int:
        return len(self.queues)

    def __contains__(self, name: object) -> bool:
        return name in self.queues

    @property
    def pending_releases(self) -> int:
        """How many channels wait out their release grace."""
        return len(self._timers)

    def get(self, name: str) -> ChannelQueue | None:
        """Return the queue of ``name`` if this node has that channel."""
        return self.queues.get(name)

    def create(self, name: str) -> ChannelQueue:
        """Make ``name`` a new, empty channel and return its queue."""
        queue = self.queues[name] = ChannelQueue(
            name, self._capacity_of(name), self.expiry, self._on_expire
        )
        return queue

    def open(self, name: str) -> ChannelQueue:
        """Return the queue of ``name``, creating the channel if needed."""
        queue = self.queues.get(name)
        return self.create(name) if queue is None else queue

    def drop(self, name: str) -> None:
        """Forget ``name`` now: its queue and any pending release."""
        self.cancel_release(name)
        self.queues.pop(name, None)

    def clear(self) -> None:
        """Empty every queue and cancel every release; channels being read stay open."""
        self.cancel_all_releases()
        for name, queue in list(self.queues.items()):
            queue.items.clear()
            if not queue.waiters:
                del self.queues[name]

    def fail_readers(self, error: Callable[[], BaseException]) -> int:
        """End every receive waiting on a channel here with ``error()``; return how many."""
        return sum(queue.fail_waiters(error) for queue in self.queues.values())

    # -- release timers -----------------------------------------------------------

    def cancel_release(self, name: str) -> None:
        """Keep ``name``: a reader is back (or the channel is going anyway)."""
        timer = self._timers.pop(name, None)
        if timer is not None:
            timer.cancel()

    def cancel_all_releases(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()

    def schedule_release(self, name: str) -> None:
        """Release ``name`` after the grace period unless a reader comes back."""
        self.cancel_release(name)
        loop = asyncio.get_running_loop()
        self._timers[name] = loop.call_later(self.release_grace, self._release_now, name)

    def _release_now(self, name: str) -> None:
        self._timers.pop(name, None)
        queue = self.queues.get(name)
        if queue is not None and queue.waiters:
            return  # a new reader arrived meanwhile
        spawn(self._release(name), "channel release")

    # -- the sweep --------------------------------------------------------------

    def maybe_sweep(self, now: float) -> list[str]:
        """Drop orphan channels, at most every ``expiry / 2`` seconds; return their names.

        An orphan is empty (after dropping expired messages), has no reader,
        no pending release, is in no group, and saw no put for ``expiry``.
        """
        if now < self._next_sweep:
            return []
        self._next_sweep = now + max(self.expiry / 2, 1.0)
        idle_before = now - self.expiry
        dropped = []
        for name, queue in list(self.queues.items()):
            queue.purge_expired(now)
            if (
                not queue.items
                and not queue.waiters
                and queue.last_active < idle_before
                and name not in self._timers
                and not self._in_group(name)
            ):
                del self.queues[name]
                dropped.append(name)
        return dropped
