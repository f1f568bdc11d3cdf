"""Local fan-out in batches, in order: a large broadcast never stalls the loop.

:meth:`FanOut.push` pushes one ASGI message to the queues of an iterable of
recipients. Up to ``Config.broadcast_batch_size`` of them are served at
once, inside the call, as before. Beyond that, the rest is served in batches
of that size, with a yield to the event loop between batches, so other
connections, timers and the bus keep being served during a fan-out to
100,000 clients.

Order: while a fan-out is still in progress, every later push (and every
:meth:`FanOut.call`) waits behind it, whatever its size, and they run in the
order they were made, so a message sent later never overtakes one still being
fanned out, and each connection gets them in order. ``push`` returns None when
everything was served at once, else a future that completes (with the count)
once the last batch is served; a sender awaits it, the bus's sink does not.

Runs on the hub's loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Iterator
from itertools import islice
from typing import Any

from ..core.membership import OutboundQueue
from ..types import AsgiMessage

__all__ = ["FanOut"]

logger = logging.getLogger("wshub_channels.hub")

#: ``done(sent)``: called once a fan-out is over, with how many queues accepted it.
Done = Callable[[int], None]


class _Job:
    __slots__ = ("done", "future", "head", "message", "recipients", "run", "sent")

    def __init__(
        self,
        recipients: Iterator[OutboundQueue] | None,
        message: AsgiMessage | None,
        done: Done | None,
        sent: int = 0,
        run: Callable[[], Any] | None = None,
        head: OutboundQueue | None = None,
    ) -> None:
        self.head = head  # the next recipient, already taken from ``recipients``
        self.recipients = recipients
        self.message = message
        self.done = done
        self.sent = sent
        self.run = run
        self.future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()


class FanOut:
    """Fan-outs served in order, in batches of ``batch_size()`` recipients."""

    __slots__ = ("_batch_size", "_jobs", "_runner")

    def __init__(self, batch_size: Callable[[], int]) -> None:
        self._batch_size = batch_size
        self._jobs: deque[_Job] = deque()
        self._runner: asyncio.Task[None] | None = None

    @property
    def idle(self) -> bool:
        """True when no fan-out is in progress (a push is served at once, in the call)."""
        return not self._jobs

    def push(
        self, recipients: Iterator[OutboundQueue], message: AsgiMessage, done: Done
    ) -> asyncio.Future[Any] | None:
        """Push ``message`` to every recipient, in order after any fan-out in progress.

        Returns None if all were served now (``done`` was called), else a future
        that completes once they are.
        """
        if self._jobs:  # behind a fan-out in progress
            job = _Job(recipients, message, done)
            self._jobs.append(job)
            return job.future
        batch = self._batch_size()
        sent = 0
        for queue in islice(recipients, batch):
            sent += queue.push(message)  # a frame the drop policy refused is not sent
        following = next(recipients, None)
        if following is None:
            done(sent)
            return None
        job = _Job(recipients, message, done, sent, head=following)
        self._jobs.append(job)
        self._start()
        return job.future

    def call(self, run: Callable[[], Any]) -> asyncio.Future[Any] | Any:
        """Run ``run()`` now if idle (return its result), else in turn (return a future)."""
        if not self._jobs:
            return run()
        job = _Job(None, None, None, run=run)
        self._jobs.append(job)
        return job.future

    def _start(self) -> None:
        if self._runner is None or self._runner.done():
            self._runner = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        jobs = self._jobs
        while jobs:
            await asyncio.sleep(0)  # the loop serves everyone else between batches
            job = jobs[0]
            try:
                finished = self._step(job)
            except BaseException as exc:
                jobs.popleft()
                if not job.future.done():
                    job.future.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise
                continue
            if finished:
                jobs.popleft()

    def _step(self, job: _Job) -> bool:
        """Serve one batch of ``job`` (or run it); True once it is over."""
        if job.run is not None:
            result = job.run()
            if not job.future.done():
                job.future.set_result(result)
            return True
        recipients, message = job.recipients, job.message
        assert recipients is not None and message is not None and job.done is not None
        batch = self._batch_size()
        sent = 0
        head = job.head
        if head is not None:
            job.head = None
            sent += head.push(message)
            batch -= 1
        for queue in islice(recipients, batch):
            sent += queue.push(message)
        job.sent += sent
        following = next(recipients, None)
        if following is not None:
            job.head = following
            return False
        try:
            job.done(job.sent)
        finally:
            if not job.future.done():
                job.future.set_result(job.sent)
        return True
