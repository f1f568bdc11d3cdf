"""The driver that writes one connection's send queue to the ASGI ``send``.

Every frame to a client goes through its :class:`Outbound`. The queue itself,
its drop policies and coalescing are the pure
:class:`~wshub_channels.core.sendqueue.SendQueue`; this module only drives writes:

- While nothing is queued or in flight, ``push`` steps the ASGI ``send``
  coroutine right away, inside the caller. A server whose ``send`` completes
  without suspending (daphne, and uvicorn while the socket takes data) costs
  no task and no wake-up, and a fan-out writes each idle client as it goes.
- Only a write that suspends (real backpressure) becomes a task. Frames pushed
  meanwhile wait in the queue, and that task writes them, in order, once the
  suspended write is done.
- With coalescing on, frames always go through the queue and are written
  once the current loop iteration ends, so a burst leaves as few frames.
- With a :mod:`.directwrite` writer (a known server, ``Config.direct_writes``),
  what would be written at once goes straight to the socket as a frame built
  once per message, if the writer takes it (open, no extension, the server's
  buffer empty); else to the ASGI ``send``. Nothing is queued or in flight
  then, so order holds; :attr:`direct` counts them, and they count as sent.

A fan-out therefore never waits on one slow client. Three ways in, one
meaning each:

- :meth:`Outbound.push` never waits: the drop policy applies to a full queue;
- :meth:`Outbound.put` waits up to ``timeout`` for room, then raises
  ``SendBufferFull``;
- :meth:`Outbound.push_within` waits up to ``timeout`` for room, then
  pushes: the drop policy applies (a broadcast with ``timeout=``).

A queue over ``Config.send_queue_size`` frames or ``Config.send_queue_bytes``
bytes applies the drop policy. The owner hears of two things:

- ``on_drop(frame, reason)`` for every frame discarded, whatever the cause:
  the drop policy (``drop_newest``, ``drop_oldest``, ``disconnect``), or the
  queue abandoned with the connection (``disconnect`` for a slow client,
  ``write_failed``, ``closed``, or the reason given to :meth:`Outbound.close`).
- ``on_close_request(error)``, at most once, when the connection must end:
  ``None`` for a slow client (the ``DISCONNECT`` policy, or a write longer
  than ``Config.write_timeout``), or the exception of a write that failed.
  A write that fails because the client has gone (:func:`client_gone`) asks
  nothing: the server reports that disconnect itself.

Not thread-safe: use from the connection's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from ..config import Config
from ..core.frames import data_message, frame_payload
from ..core.sendqueue import Frame, Offer, SendQueue
from ..errors import ConnectionClosed, SendBufferFull
from ..types import AsgiMessage, AsgiSend
from ..utf8 import frame_size
from .directwrite import DirectWriter
from .gone import client_gone
from .resume import resume as _resume

__all__ = ["CloseRequest", "DropHandler", "Outbound"]

logger = logging.getLogger("wshub_channels.consumer")

#: ``on_drop(frame, reason)``: one frame discarded, and why (a drop reason).
DropHandler = Callable[[Frame, str], None]
#: ``on_close_request(error)``: end the connection (None: a slow client).
CloseRequest = Callable[[BaseException | None], None]


class Outbound:
    """One connection's send queue and the writes that empty it."""

    __slots__ = (
        "_busy",
        "_closed",
        "_coalesce",
        "_direct",
        "_disconnect_requested",
        "_flush_scheduled",
        "_queue",
        "_room_waiters",
        "_send",
        "_task",
        "_write_timeout",
        "direct",
        "on_close_request",
        "on_drop",
        "sent",
    )

    def __init__(
        self,
        send: AsgiSend,
        config: Config,
        on_drop: DropHandler,
        on_close_request: CloseRequest,
        direct: DirectWriter | None = None,
    ) -> None:
        self._send = send
        self._direct = direct if config.direct_writes else None
        self._queue = SendQueue.from_config(config)
        self._coalesce = config.coalesce_writes
        self._write_timeout = config.write_timeout or None
        self.on_drop = on_drop
        self.on_close_request = on_close_request
        self._busy = False  # a write is in flight, or a task is writing the queue
        self._closed = False
        self.sent = 0  # messages accepted for sending (a drop is not counted)
        self.direct = 0  # of those, frames written straight to the socket
        self._disconnect_requested = False
        self._flush_scheduled = False
        self._room_waiters: deque[asyncio.Future[None]] = deque()
        self._task: asyncio.Future[None] | None = None

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def direct_kind(self) -> str | None:
        """The server whose socket this connection writes to directly, or None (ASGI only)."""
        return None if self._direct is None else self._direct.kind

    @property
    def queued(self) -> int:
        """How many frames wait in the queue (a write in flight is not counted)."""
        return len(self._queue)

    @property
    def queued_bytes(self) -> int:
        """The payload bytes waiting in the queue."""
        return self._queue.queued_bytes

    # -- queueing ----------------------------------------------------------------------

    def push(self, message: AsgiMessage) -> bool:
        """Write or queue one ``websocket.send`` message without waiting.

        Returns False if the drop policy discarded it. Never raises for a full
        queue; raises ``ConnectionClosed`` once the connection is closed.
        """
        if self._closed:
            raise ConnectionClosed("the connection is closed")
        if not self._busy and not self._coalesce and not self._queue:
            self.sent += 1
            if self._direct is not None and self._write_direct(frame_payload(message)):
                self.direct += 1
            else:
                self._write_now(message)
            return True
        accepted = self._apply(self._queue.offer(frame_payload(message)))
        self.sent += accepted
        return accepted

    async def put(self, message: AsgiMessage, timeout: float) -> bool:
        """Queue ``message``, waiting up to ``timeout`` seconds for room; raise if none.

        Raises ``SendBufferFull`` if there is no room for it for ``timeout``
        seconds, and ``ConnectionClosed`` once the connection is closed.
        Returns what ``push`` returns (True: accepted).
        """
        if not await self._wait_for_room(message, timeout):
            if self._closed:
                raise ConnectionClosed("the connection is closed")
            raise SendBufferFull(f"outbound queue stayed full for {timeout:g}s")
        return self.push(message)

    async def push_within(self, message: AsgiMessage, timeout: float) -> bool:
        """Wait up to ``timeout`` for room, then ``push``: never raises.

        If there is still no room after ``timeout``, the drop policy applies
        as in ``push``: the dropped message goes to ``on_drop`` like any drop.
        Once the connection is closed this does nothing. Returns True if the
        message was accepted.
        """
        if self._closed:
            return False
        await self._wait_for_room(message, timeout)
        return not self._closed and self.push(message)

    def _apply(self, offer: Offer) -> bool:
        if offer.dropped is not None:
            reason = self._queue.policy.value
            self.on_drop(offer.dropped, reason)
            for frame in offer.evicted:
                self.on_drop(frame, reason)
        if offer.disconnect:
            self._request_close(None)
        if offer.queued:
            self._kick()
        return offer.queued

    def _has_room(self, size: int) -> bool:
        """True when a frame of ``size`` bytes would be written or queued, not dropped."""
        if self._closed:
            return False
        if not self._busy and not self._coalesce and not self._queue:
            return True  # written at once, whatever its size
        return self._queue.fits(size)

    async def _wait_for_room(self, message: AsgiMessage, timeout: float) -> bool:
        """True once ``message`` has room; False after ``timeout`` or once closed."""
        size = frame_size(frame_payload(message))
        if not self._has_room(size) and not self._closed:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            while not self._has_room(size) and not self._closed and loop.time() < deadline:
                waiter: asyncio.Future[None] = loop.create_future()
                self._room_waiters.append(waiter)
                try:
                    async with asyncio.timeout_at(deadline):
                        await waiter
                except TimeoutError:
                    break
                finally:
                    if waiter.cancelled():
                        with contextlib.suppress(ValueError):
                            self._room_waiters.remove(waiter)
        return self._has_room(size)

    def _room(self) -> None:
        """Wake every coroutine waiting for room; each checks again."""
        waiters = self._room_waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)

    def _request_close(self, error: BaseException | None) -> None:
        if not self._disconnect_requested:
            self._disconnect_requested = True
            self.on_close_request(error)

    # -- writing ---------------------------------------------------------------------

    def _kick(self) -> None:
        """Start writing what is queued, unless a write is already under way."""
        if self._busy:
            return
        if self._coalesce:
            if not self._flush_scheduled:
                self._flush_scheduled = True
                asyncio.get_running_loop().call_soon(self._flush_soon)
            return
        self._pump()

    def _flush_soon(self) -> None:
        self._flush_scheduled = False
        self._pump()

    def _pump(self) -> None:
        """Write queued frames now, for as long as each write completes at once."""
        queue = self._queue
        while not self._busy and not self._closed:
            frame = queue.next_frame()
            if frame is None:
                return
            self._room()
            if self._direct is not None and self._write_direct(frame):
                self.direct += 1
            else:
                self._write_now(data_message(frame))

    def _write_direct(self, data: Frame) -> bool:
        try:  # never raises: a server that changed under us leaves this connection on ASGI
            return self._direct is not None and self._direct.write(data)
        except Exception:
            logger.warning("direct writes off for a connection", exc_info=True)
            self._direct = None
            return False

    def _write_now(self, message: AsgiMessage) -> None:
        """Step the ASGI send coroutine now; hand it to a task only if it suspends."""
        pending = self._send(message)
        if not isinstance(pending, Coroutine):
            self._busy = True
            self._task = asyncio.ensure_future(self._finish_awaitable(pending))
            return
        try:
            yielded = pending.send(None)
        except StopIteration:
            return
        except BaseException as exc:
            self._fail(exc)
            return
        self._busy = True
        self._task = asyncio.ensure_future(self._finish(pending, yielded))

    async def _finish(self, coro: Coroutine[Any, Any, None], yielded: Any) -> None:
        """Run a suspended send to completion, then write what queued behind it."""
        try:
            async with asyncio.timeout(self._write_timeout):
                await _resume(coro, yielded)
        except BaseException as exc:
            self._fail(exc)
            return
        await self._drain()

    async def _finish_awaitable(self, pending: Awaitable[None]) -> None:
        try:
            async with asyncio.timeout(self._write_timeout):
                await pending
        except BaseException as exc:
            self._fail(exc)
            return
        await self._drain()

    async def _drain(self) -> None:
        """Write queued frames in order until the queue is empty (the task's part)."""
        queue = self._queue
        try:
            while not self._closed:
                frame = queue.next_frame()
                if frame is None:
                    break
                self._room()
                async with asyncio.timeout(self._write_timeout):
                    await self._send(data_message(frame))
        except BaseException as exc:
            self._fail(exc)
        finally:
            self._busy = False
            self._task = None
            self._room()  # a frame too large for the queue has room once idle

    def _fail(self, exc: BaseException) -> None:
        """A write failed: take no more frames, report the queue dropped, say why.

        A write past ``write_timeout`` is a slow client; a client gone needs
        nothing more; anything else asks the owner to close with the error.
        """
        self._busy = False
        self._task = None
        if self._closed:  # closed while the write was in flight: nothing is left
            self._room()
            return
        if isinstance(exc, TimeoutError):
            self._abandon("disconnect")
            self._request_close(None)
        elif client_gone(exc):
            self._abandon("closed")
        else:
            self._abandon("write_failed")
            self._request_close(exc)

    def _abandon(self, reason: str) -> None:
        """Close, and report every queued frame dropped for ``reason``."""
        self._closed = True
        for frame in self._queue.take_all():
            self.on_drop(frame, reason)
        self._room()

    # -- flush and close ----------------------------------------------------------------

    async def flush(self, timeout: float) -> None:
        """Wait until every queued frame is written, up to ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self._closed and (self._busy or self._queue):
            if not self._busy:
                self._pump()  # frames waiting for the coalescing tick go now
                continue
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            task = self._task
            if task is not None and not task.done():
                await asyncio.wait([task], timeout=remaining)
            else:
                await asyncio.sleep(0)

    def close(self, reason: str = "closed") -> None:
        """Take no more frames and abandon the queued ones, each reported dropped
        for ``reason``; a second close does nothing.

        A write already in flight is left to finish (within ``write_timeout``);
        nothing is written after it. Waiters for room wake up.
        """
        if not self._closed:
            self._abandon(reason)
