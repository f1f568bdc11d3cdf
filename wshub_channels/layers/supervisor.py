"""The supervised bus connection of a backend: one task that keeps it alive.

A :class:`Supervisor` runs ``_supervise(generation)`` as a task on the
transport's home loop, and lets callers wait for the first time the bus is
up. Each :meth:`start` and :meth:`abandon` begins a new generation: a
supervising task whose generation is no longer current must stop at its next
check, so an abandoned connection (its loop gone, or replaced) never acts
again. Backends subclass it (the Redis subscriber, the NATS connection) and
keep ``up`` and ``last_error`` for the bus status.

Loop safety: every method runs on the home loop.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib

from ..tasks import spawn

__all__ = ["Supervisor"]


class Supervisor(abc.ABC):
    """Start, wait for, stop and abandon one supervising task."""

    #: What the task is called in logs.
    what = "bus supervisor"

    def __init__(self) -> None:
        #: True while the bus is usable; ``last_error`` says why it is not.
        self.up = False
        self.last_error: str | None = None
        self._generation = 0
        self._task: asyncio.Task[None] | None = None
        self._up_event = asyncio.Event()

    def start(self) -> None:
        """Start supervising (on the running loop)."""
        self._generation += 1
        self._up_event = asyncio.Event()
        self._task = spawn(self._supervise(self._generation), self.what)

    async def wait_up(self, timeout: float) -> bool:
        """Wait up to ``timeout`` for the bus to be up the first time; True if it came."""
        try:
            await asyncio.wait_for(self._up_event.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def _stop_task(self) -> None:
        """Abandon the connection and wait for its supervising task to end."""
        task = self._task
        self.abandon()
        if task is not None:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task

    def abandon(self) -> None:
        """Forget the connection without I/O (its loop is gone, or it is being closed)."""
        self._generation += 1
        self._task = None
        self.up = False

    @abc.abstractmethod
    async def _supervise(self, generation: int) -> None:
        """Keep the connection alive while ``generation`` is current."""
