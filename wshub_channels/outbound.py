"""The per-connection outbound path: a bounded queue, drop policies, coalescing.

Every frame to a client goes through its :class:`Outbound`. Two write
strategies exist; :data:`WRITE_MODE` selects one (the benchmark compares
them; see ``benchmarks/RESULTS.md``):

- ``"direct"`` (the default): when nothing is queued or in flight, the ASGI
  ``send`` coroutine is stepped right away, inside the caller. A server whose
  ``send`` completes without suspending (daphne, and uvicorn while the socket
  takes data) costs no task and no wake-up. Only a write that suspends (real
  backpressure) becomes a task, which then drains whatever queued behind it.
- ``"writer"``: one writer task per connection, woken for each batch.

Either way a fan-out never waits on one slow client: it only appends to a
bounded deque. When the deque is full, the :class:`~wshub_channels.config.DropPolicy`
applies and the drop is reported through ``on_drop``. With coalescing on,
text frames queued in the same loop iteration are joined with ``"\\n"`` up to
``coalesce_max_bytes``; binary frames are never joined.

Not thread-safe: use from the connection's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from .config import Config, DropPolicy
from .errors import ConnectionClosed, SendBufferFull

__all__ = ["WRITE_MODE", "Outbound", "text_frame"]

AsgiMessage = dict[str, Any]
AsgiSend = Callable[[AsgiMessage], Awaitable[None]]
DropHandler = Callable[[str | bytes], None]

#: "direct" or "writer"; an environment variable lets the benchmark compare both.
WRITE_MODE = os.environ.get("WSHUB_WRITE_MODE", "direct")


def text_frame(data: str | bytes) -> AsgiMessage:
    """Return the ASGI message for ``data``: text for ``str``, binary for ``bytes``."""
    if isinstance(data, str):
        return {"type": "websocket.send", "text": data}
    return {"type": "websocket.send", "bytes": data}


def _payload(message: AsgiMessage) -> str | bytes:
    text = message.get("text")
    return text if text is not None else message.get("bytes") or b""


class Outbound:
    """One connection's bounded outbound queue and its writer."""

    __slots__ = (
        "_busy",
        "_closed",
        "_coalesce",
        "_coalesce_max",
        "_flush_scheduled",
        "_policy",
        "_room_waiters",
        "_send",
        "_wake",
        "_write_timeout",
        "_writer",
        "dropped",
        "error",
        "maxsize",
        "on_drop",
        "on_overflow_disconnect",
        "queue",
    )

    def __init__(
        self,
        send: AsgiSend,
        config: Config,
        on_drop: DropHandler,
        on_overflow_disconnect: Callable[[], None],
    ) -> None:
        self._send = send
        self.maxsize = config.send_queue_size
        self._policy = config.drop_policy
        self._coalesce = config.coalesce_writes
        self._coalesce_max = config.coalesce_max_bytes
        self._write_timeout = config.write_timeout or None
        self.on_drop = on_drop
        self.on_overflow_disconnect = on_overflow_disconnect
        self.queue: deque[AsgiMessage] = deque()
        self._busy = False  # a write is in flight (direct mode) or the writer is draining
        self._closed = False
        self._flush_scheduled = False
        self._room_waiters: deque[asyncio.Future[None]] = deque()
        self._wake: asyncio.Event | None = None
        self._writer: asyncio.Task[None] | None = None
        self.dropped = 0
        self.error: BaseException | None = None

    @property
    def closed(self) -> bool:
        return self._closed

    def push(self, message: AsgiMessage) -> bool:
        """Queue one ASGI message without waiting; return False if it was dropped.

        Applies the drop policy when the queue is full. Never raises for a full
        queue; raises ``ConnectionClosed`` once the connection is closed.
        """
        if self._closed:
            raise ConnectionClosed("the connection is closed")
        queue = self.queue
        if len(queue) >= self.maxsize:
            policy = self._policy
            if policy is DropPolicy.DROP_OLDEST:
                self._drop(queue.popleft())
            elif policy is DropPolicy.DISCONNECT:
                self._drop(message)
                self.on_overflow_disconnect()
                return False
            else:
                self._drop(message)
                return False
        if (
            not self._busy
            and not queue
            and not self._coalesce
            and self._writer is None
            and WRITE_MODE == "direct"
        ):
            self._write_now(message)
            return True
        queue.append(message)
        self._kick()
        return True

    async def put(self, message: AsgiMessage, timeout: float | None = None) -> None:
        """Queue ``message``; with ``timeout``, wait for room instead of dropping.

        Raises ``SendBufferFull`` if the queue stays full for ``timeout`` seconds.
        """
        if timeout is None or len(self.queue) < self.maxsize:
            self.push(message)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(self.queue) >= self.maxsize:
            if self._closed:
                raise ConnectionClosed("the connection is closed")
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise SendBufferFull(f"outbound queue stayed full for {timeout:g}s")
            waiter: asyncio.Future[None] = loop.create_future()
            self._room_waiters.append(waiter)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(waiter), remaining)
        self.push(message)

    async def offer(self, message: AsgiMessage, timeout: float) -> None:
        """Queue ``message``, waiting up to ``timeout`` for room; then drop it (reported)."""
        if self._closed:
            return
        try:
            await self.put(message, timeout)
        except SendBufferFull:
            self._drop(message)
        except ConnectionClosed:
            return

    def _drop(self, message: AsgiMessage) -> None:
        self.dropped += 1
        self.on_drop(_payload(message))

    def _room(self) -> None:
        while self._room_waiters:
            waiter = self._room_waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)

    # -- writing ---------------------------------------------------------------------

    def _kick(self) -> None:
        if WRITE_MODE == "writer":
            if self._wake is None:
                self._wake = asyncio.Event()
                self._writer = asyncio.ensure_future(self._writer_loop())
            self._wake.set()
            return
        if self._busy:
            return
        if self._coalesce:
            if not self._flush_scheduled:
                self._flush_scheduled = True
                asyncio.get_running_loop().call_soon(self._flush_soon)
            return
        self._start_drain()

    def _flush_soon(self) -> None:
        self._flush_scheduled = False
        if not self._busy and self.queue and not self._closed:
            self._start_drain()

    def _start_drain(self) -> None:
        self._busy = True
        self._writer = asyncio.ensure_future(self._drain())

    def _write_now(self, message: AsgiMessage) -> None:
        """Step the ASGI send coroutine now; hand it to a task only if it suspends."""
        coro = self._send(message)
        if not isinstance(coro, Coroutine):
            self._busy = True
            self._writer = asyncio.ensure_future(self._finish_awaitable(coro))
            return
        try:
            yielded = coro.send(None)
        except StopIteration:
            return
        except BaseException as exc:
            self._fail(exc)
            return
        self._busy = True
        self._writer = asyncio.ensure_future(self._finish(coro, yielded))

    async def _finish(self, coro: Coroutine[Any, Any, None], yielded: Any) -> None:
        """Run a suspended send to completion, as a Task would, then drain the queue."""
        try:
            async with asyncio.timeout(self._write_timeout):
                await self._resume(coro, yielded)
        except BaseException as exc:
            self._fail(exc)
            self._writer = None
            return
        await self._drain()

    async def _resume(self, coro: Coroutine[Any, Any, None], yielded: Any) -> None:
        """Drive a suspended send coroutine to its end, as a Task would."""
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

    async def _finish_awaitable(self, pending: Awaitable[None]) -> None:
        try:
            await pending
        except BaseException as exc:
            self._fail(exc)
            self._writer = None
            return
        await self._drain()

    async def _write_queued(self) -> None:
        """Write queued messages in order (coalescing text if enabled) until empty."""
        queue = self.queue
        while queue and not self._closed:
            message = queue.popleft()
            if self._coalesce and "text" in message and queue:
                message = self._coalesce_from(message)
            self._room()
            async with asyncio.timeout(self._write_timeout):
                await self._send(message)

    async def _drain(self) -> None:
        try:
            await self._write_queued()
        except BaseException as exc:
            self._fail(exc)
        finally:
            self._busy = False
            self._writer = None
            if self.queue and not self._closed:
                self._kick()

    def _coalesce_from(self, first: AsgiMessage) -> AsgiMessage:
        parts = [first["text"]]
        size = len(parts[0])
        queue = self.queue
        while queue:
            text = queue[0].get("text")
            if text is None or size + 1 + len(text) > self._coalesce_max:
                break
            parts.append(text)
            size += 1 + len(text)
            queue.popleft()
        if len(parts) == 1:
            return first
        return {"type": "websocket.send", "text": "\n".join(parts)}

    async def _writer_loop(self) -> None:
        wake = self._wake
        if wake is None:  # pragma: no cover - set before the task starts
            return
        while not self._closed:
            await wake.wait()
            wake.clear()
            self._busy = True
            try:
                await self._write_queued()
            except asyncio.CancelledError:
                raise
            except BaseException as exc:
                self._fail(exc)
                return
            finally:
                self._busy = False

    def _fail(self, exc: BaseException) -> None:
        self.error = exc
        self._closed = True
        self.queue.clear()
        self._room()
        if isinstance(exc, TimeoutError):
            # A write took longer than write_timeout: the client is stuck.
            self.on_overflow_disconnect()

    async def flush(self, timeout: float) -> None:
        """Wait until queued messages are written, up to ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (self.queue or self._busy) and not self._closed and loop.time() < deadline:
            writer = self._writer
            if writer is not None and not writer.done():
                await asyncio.wait([writer], timeout=deadline - loop.time())
            else:
                await asyncio.sleep(0)

    def close(self) -> None:
        """Stop accepting messages; pending writes are abandoned."""
        self._closed = True
        self.queue.clear()
        self._room()
        writer = self._writer
        if writer is not None and not writer.done() and WRITE_MODE == "writer":
            writer.cancel()
        if self._wake is not None:
            self._wake.set()
