"""The driver that writes one connection's send queue to the ASGI ``send``.

Every frame to a client goes through its :class:`Outbound`. The queue itself,
its drop policies and coalescing are the pure
:class:`~wshub_channels.sendqueue.SendQueue`; this module only drives writes:

- While nothing is queued or in flight, ``push`` steps the ASGI ``send``
  coroutine right away, inside the caller. A server whose ``send`` completes
  without suspending (daphne, and uvicorn while the socket takes data) costs
  no task and no wake-up, and a fan-out writes each idle client as it goes.
- Only a write that suspends (real backpressure) becomes a task. Frames pushed
  meanwhile wait in the queue, and that task writes them, in order, once the
  suspended write is done.
- With coalescing on, frames always go through the queue and are written
  once the current loop iteration ends, so a burst leaves as few frames.

A fan-out therefore never waits on one slow client. A full queue applies the
drop policy; every dropped frame is reported through ``on_drop``, and the
``DISCONNECT`` policy, like a write that takes longer than
``Config.write_timeout``, calls ``on_overflow_disconnect`` (once).

Not thread-safe: use from the connection's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from .config import Config
from .errors import ConnectionClosed, SendBufferFull
from .sendqueue import Frame, Offer, SendQueue
from .types import AsgiMessage, AsgiSend

__all__ = [
    "AsgiMessage",
    "AsgiSend",
    "DropHandler",
    "Outbound",
    "data_size",
    "frame_payload",
    "text_frame",
]

DropHandler = Callable[[Frame], None]


def text_frame(data: str | bytes) -> AsgiMessage:
    """Return the ASGI message for ``data``: text for ``str``, binary for ``bytes``."""
    if isinstance(data, str):
        return {"type": "websocket.send", "text": data}
    return {"type": "websocket.send", "bytes": data}


def data_size(data: str | bytes) -> int:
    """The size of a frame's payload on the wire, in bytes."""
    return len(data.encode("utf-8")) if isinstance(data, str) else len(data)


def frame_payload(message: AsgiMessage) -> Frame:
    """The text or bytes a ``websocket.send`` message carries."""
    text: str | None = message.get("text")
    if text is not None:
        return text
    data: bytes | None = message.get("bytes")
    return b"" if data is None else data


class Outbound:
    """One connection's send queue and the writes that empty it."""

    __slots__ = (
        "_busy",
        "_closed",
        "_coalesce",
        "_disconnect_requested",
        "_flush_scheduled",
        "_queue",
        "_room_waiters",
        "_send",
        "_task",
        "_write_timeout",
        "on_drop",
        "on_overflow_disconnect",
        "sent",
    )

    def __init__(
        self,
        send: AsgiSend,
        config: Config,
        on_drop: DropHandler,
        on_overflow_disconnect: Callable[[], None],
    ) -> None:
        self._send = send
        self._queue = SendQueue.from_config(config)
        self._coalesce = config.coalesce_writes
        self._write_timeout = config.write_timeout or None
        self.on_drop = on_drop
        self.on_overflow_disconnect = on_overflow_disconnect
        self._busy = False  # a write is in flight, or a task is writing the queue
        self._closed = False
        self.sent = 0  # messages accepted for sending (a drop is not counted)
        self._disconnect_requested = False
        self._flush_scheduled = False
        self._room_waiters: deque[asyncio.Future[None]] = deque()
        self._task: asyncio.Future[None] | None = None

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def queued(self) -> int:
        """How many frames wait in the queue (a write in flight is not counted)."""
        return len(self._queue)

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
            self._write_now(message)
            return True
        accepted = self._apply(self._queue.offer(frame_payload(message)))
        self.sent += accepted
        return accepted

    async def put(self, message: AsgiMessage, timeout: float | None = None) -> None:
        """Queue ``message``; with ``timeout``, wait for room instead of dropping.

        Raises ``SendBufferFull`` if the queue stays full for ``timeout`` seconds,
        and ``ConnectionClosed`` once the connection is closed. Without a timeout
        a full queue applies the drop policy, as ``push`` does.
        """
        if timeout is not None and not await self._wait_for_room(timeout):
            if self._closed:
                raise ConnectionClosed("the connection is closed")
            raise SendBufferFull(f"outbound queue stayed full for {timeout:g}s")
        self.push(message)

    async def offer(self, message: AsgiMessage, timeout: float) -> None:
        """Queue ``message``, waiting up to ``timeout`` for room; never raises.

        If the queue is still full after ``timeout``, the drop policy applies
        as in ``push``: the dropped message goes to ``on_drop`` like any drop.
        Once the connection is closed this does nothing.
        """
        if self._closed:
            return
        await self._wait_for_room(timeout)
        if not self._closed:
            self.push(message)

    def _apply(self, offer: Offer) -> bool:
        if offer.dropped is not None:
            self.on_drop(offer.dropped)
        if offer.disconnect:
            self._request_disconnect()
        if offer.queued:
            self._kick()
        return offer.queued

    async def _wait_for_room(self, timeout: float) -> bool:
        """True once the queue has room; False after ``timeout`` or once closed."""
        queue = self._queue
        if queue.full and not self._closed:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            while queue.full and not self._closed and loop.time() < deadline:
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
        return not queue.full and not self._closed

    def _room(self) -> None:
        """Wake every coroutine waiting for room; each checks again."""
        waiters = self._room_waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)

    def _request_disconnect(self) -> None:
        if not self._disconnect_requested:
            self._disconnect_requested = True
            self.on_overflow_disconnect()

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
            self._write_now(text_frame(frame))

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
                    await self._send(text_frame(frame))
        except BaseException as exc:
            self._fail(exc)
        finally:
            self._busy = False
            self._task = None

    def _fail(self, exc: BaseException) -> None:
        """A write failed: the connection takes no more frames."""
        self._busy = False
        self._task = None
        self._closed = True
        self._queue.clear()
        self._room()
        if isinstance(exc, TimeoutError):
            # A write took longer than write_timeout: the client is stuck.
            self._request_disconnect()

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

    def close(self) -> None:
        """Take no more frames and abandon the queued ones.

        A write already in flight is left to finish (within ``write_timeout``);
        nothing is written after it. Waiters for room wake up.
        """
        self._closed = True
        self._queue.clear()
        self._room()


async def _resume(coro: Coroutine[Any, Any, None], yielded: Any) -> None:
    """Drive a send coroutine that suspended once to its end, as a Task would."""
    while True:
        try:
            if yielded is None:
                await asyncio.sleep(0)
            else:
                await asyncio.wait([yielded])
        except asyncio.CancelledError:
            # Abandon the write: let the send coroutine clean up, then stop it.
            with contextlib.suppress(BaseException):
                coro.throw(asyncio.CancelledError())
            coro.close()
            raise
        try:
            yielded = coro.send(None)
        except StopIteration:
            return
