"""Normal channels on NATS: pushes and pops on the JetStream work queues of :mod:`.streams`.

- **Pushes** publish to JetStream and wait for its acknowledgement; a full
  channel's stream refuses the message, which is ``ChannelFull`` in the
  core. Pushes to several channels (a group's stored members) go out
  together: one round trip for all of them.
- **Expiry.** A message carries its deadline (8 bytes, ms since the epoch)
  before its data; a pop acks and skips expired ones and reports each as
  "expired" (the stream's ``max_age`` drops the rest unseen).
- **Pops** make their own pull subscription on the channel's consumer and
  ask for one message at a time. A message is acked only once the receive's
  caller has it (:meth:`WorkQueues.delivered`, in the background); an ack
  the server does not confirm within the timeout is reported as
  "ack_timeout" and not retried: if it never arrived, the server redelivers
  the message after ``ACK_WAIT``, a duplicate. A pop cancelled while it
  waits unsubscribes at once, so the server drops its pull request and the
  next message goes to another reader; a message it had fetched, or that
  came back to a caller cancelled meanwhile (:meth:`WorkQueues.unpop`), is
  nak'd, so it is redelivered at once; one still in flight when the
  subscription closed comes back after ``ACK_WAIT``. A pop waits through bus
  outages, binding again when the server lost the consumer (within
  ``POP_WAIT`` of the reconnect).

Loop safety: belongs to the bus's home loop; every method must run there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import time
from collections.abc import Sequence

from django.core.exceptions import ImproperlyConfigured

from ...log import Throttle
from ...tasks import spawn
from ..bus import Reporter
from ..store import Popped
from .client import JetStreamContext, Msg, js_errors, nats_errors
from .streams import JETSTREAM_MISSING, Streams, no_jetstream

__all__ = ["WorkQueues"]

logger = logging.getLogger("wshub_channels.layers.nats")

#: Seconds one pull request waits on the server before it is made again: a reader
#: waiting across a server restart asks the new server within this long.
POP_WAIT = 1.0
RETRY = 0.2  # seconds a pop waits before trying again after the bus failed it

_FRAME = struct.Struct(">Q")
_PER_SUBJECT_FULL = 10077  # "maximum messages per subject exceeded"


class WorkQueues:
    """Pushes and pops of the normal channels kept in ``streams``."""

    def __init__(self, streams: Streams, timeout: float, report: Reporter) -> None:
        self.streams = streams
        self.timeout = timeout
        self.report = report
        self._log = Throttle(logger, 10.0)
        self._settling: set[asyncio.Task[None]] = set()  # acks and naks in flight

    async def push(self, channel: str, data: bytes, capacity: int, expiry: float) -> bool:
        """Append to ``channel``; False when it holds ``capacity`` messages already."""
        frame = _FRAME.pack(int((time.time() + expiry) * 1000)) + data
        subject = self.streams.subject(channel, capacity)
        for attempt in (1, 2):
            await self.streams.ensure_stream(capacity)
            try:
                await self.streams.context().publish(subject, frame, timeout=self.timeout)
            except js_errors.NoStreamResponseError:
                # The stream is gone (deleted, or the server lost its store): make it again.
                self.streams.forget(capacity=capacity)
                if attempt == 2:
                    raise
                continue
            except js_errors.APIError as exc:
                if _channel_full(exc):
                    return False
                raise
            return True
        raise AssertionError("unreachable")  # pragma: no cover

    async def push_many(
        self, pushes: Sequence[tuple[str, int]], data: bytes, expiry: float
    ) -> list[bool]:
        """Push ``data`` to every ``(channel, capacity)`` at once: one round trip for all."""
        results = await asyncio.gather(
            *(self.push(channel, data, cap, expiry) for channel, cap in pushes),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return [bool(result) for result in results]

    async def pop(self, channel: str, capacity: int) -> bytes:
        """Wait for the next live message of ``channel``, through bus outages.

        The message is returned unacked, as :class:`~..store.Popped` with
        the NATS message as its receipt: :meth:`delivered` acks it and
        :meth:`unpop` naks it.
        """
        sub: JetStreamContext.PullSubscription | None = None
        popped: Popped | None = None
        try:
            while True:
                binding = False
                try:
                    if sub is None or not self.streams.bound(channel):
                        if sub is not None:
                            await self._drop(sub)
                        sub, binding = None, True
                        sub = await self.streams.bind(channel, capacity)
                        binding = False
                    msg = (await sub.fetch(1, timeout=POP_WAIT))[0]
                except nats_errors.TimeoutError:
                    continue
                except (ConnectionError, nats_errors.Error) as exc:
                    # Only the JetStream API answers "no JetStream"; a 503 to a fetch
                    # means the consumer is gone (a leader change, a restart): bind again.
                    if binding and no_jetstream(exc):
                        raise ImproperlyConfigured(JETSTREAM_MISSING) from exc
                    # The bus failed, or the consumer went away: bind again shortly.
                    self._log.warning("receive on %s: %r; trying again", channel, exc)
                    self.streams.forget(channel=channel)
                    await asyncio.sleep(RETRY)
                    continue
                # No await from here to the return: a cancellation cannot come between.
                if len(msg.data) < _FRAME.size:  # not ours: published by something else
                    self.ack_later(msg)
                    self.report("bad_frame", ValueError(f"short message on {msg.subject}"))
                    continue
                (deadline,) = _FRAME.unpack_from(msg.data)
                if deadline <= time.time() * 1000:
                    self.ack_later(msg)
                    self.report("expired", None)
                    continue
                popped = Popped(memoryview(msg.data)[_FRAME.size :])
                popped.receipt = msg
                return popped
        finally:
            if sub is not None and popped is None:
                # Ended while a pull request may be out: the server may still send its
                # message here. Keep listening (in the background) until the request
                # has expired, naking what comes, so nothing waits out ACK_WAIT.
                self._track(spawn(self._linger(sub), "nats receive wind-down"))
            elif sub is not None:
                await self._drop(sub)

    def delivered(self, popped: bytes) -> None:
        """The receive's caller has the message: ack it (in the background)."""
        msg = getattr(popped, "receipt", None)
        if msg is not None:
            self.ack_later(msg)

    def unpop(self, popped: bytes) -> None:
        """The receive was cancelled as the message came back: nak it, so it is redelivered."""
        msg = getattr(popped, "receipt", None)
        if msg is not None:
            self._track(spawn(self._nak(msg), "nats nak of a cancelled receive"))

    def ack_later(self, msg: Msg) -> None:
        """Ack ``msg`` in the background, once; a timeout is counted, not retried."""
        self._track(spawn(self._ack(msg), "nats ack"))

    async def settle(self) -> None:
        """Wait for the acks and naks still in flight (each bounded by the timeout)."""
        while self._settling:
            await asyncio.gather(*self._settling, return_exceptions=True)

    def _track(self, task: asyncio.Task[None]) -> None:
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)

    async def _ack(self, msg: Msg) -> None:
        try:
            await msg.ack_sync(timeout=self.timeout)
        except Exception as exc:
            # Not retried: the server redelivers an ack it never got, after ACK_WAIT.
            self.report("ack_timeout", exc)

    async def _nak(self, msg: Msg) -> None:
        try:
            await msg.nak()
        except Exception as exc:
            self._log.warning(
                "nak on %s failed: %r (redelivered after the ack wait)", msg.subject, exc
            )
            return
        self.report("put_back", None)

    async def _linger(self, sub: JetStreamContext.PullSubscription) -> None:
        """Nak what reaches ``sub`` until its last pull request expires, then drop it."""
        inner = getattr(sub, "_sub", None)
        end = time.monotonic() + POP_WAIT + RETRY
        while inner is not None and (left := end - time.monotonic()) > 0:
            try:
                msg = await inner.next_msg(timeout=left)
            except Exception:
                break  # timed out (the request expired) or the connection went
            if msg.reply and not JetStreamContext.is_status_msg(msg):
                await self._nak(msg)
        await self._drop(sub)

    async def _drop(self, sub: JetStreamContext.PullSubscription) -> None:
        """Unsubscribe, first naking what a cancelled fetch left in the subscription."""
        pending = getattr(getattr(sub, "_sub", None), "_pending_queue", None)
        while pending is not None and not pending.empty():
            msg = pending.get_nowait()
            if msg.reply and not JetStreamContext.is_status_msg(msg):
                await self._nak(msg)
        with contextlib.suppress(Exception):
            await sub.unsubscribe()

    async def flush(self) -> None:
        """Empty every normal channel under the prefix."""
        await self.streams.purge()


def _channel_full(error: js_errors.APIError) -> bool:
    """True for the one store failure that means "this channel is at capacity"."""
    description = str(getattr(error, "description", "") or "").lower()
    return getattr(error, "err_code", None) == _PER_SUBJECT_FULL and "per subject" in description
