"""Request/reply and gathers over plain publish/subscribe, for buses without their own.

:class:`PubSubRequests` serves a :class:`~wshub_channels.layers.bus.Bus` that
has only publish and subscribe (Redis). A request is published on the
target's subject as a request frame, and answered on the requester's private
inbox subject with a reply frame (the frame codec is the core's:
:func:`~wshub_channels.core.wire.encode_request_frame` and its kin). The bus
gives it a publish that returns how many subscribers received the frame, so
a request nobody listens to fails at once with
:class:`~wshub_channels.layers.bus.NoResponders` and a gather waits only for
the listeners that exist (:class:`Gather`). A bus with native requests and
no-responders (NATS) implements ``Bus.request`` itself.

:class:`Gather` is pure. A :class:`PubSubRequests` belongs to its bus's home
loop: call it from that loop only.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Awaitable, Callable

from ..core.wire import Request, decode_frame, encode_reply_frame, encode_request_frame
from ..tasks import spawn
from .bus import NoResponders, RequestHandler

__all__ = ["CountingPublish", "Gather", "PubSubRequests"]

logger = logging.getLogger("wshub_channels.layers")

#: Publishes one frame and returns how many subscribers received it.
CountingPublish = Callable[[str, bytes], Awaitable[int]]


class Gather:
    """The replies to one request: complete once every listener answered, or once
    ``max_replies`` replies with a body came in.

    How many listeners got the request is known only after the publish, and
    answers may come before that: :meth:`expect` sets it later. An answer
    without a body (a process without the op) counts as answered but is not a
    reply, so it never takes the place of one.
    """

    __slots__ = ("answers", "listeners", "max_replies", "replies")

    def __init__(self, max_replies: int | None = None) -> None:
        self.replies: list[bytes] = []
        self.answers = 0
        self.listeners: int | None = None
        self.max_replies = max_replies

    @property
    def complete(self) -> bool:
        if self.max_replies is not None and len(self.replies) >= self.max_replies:
            return True
        return self.listeners is not None and self.answers >= self.listeners

    def add(self, reply: bytes | None) -> bool:
        """Count one answer; return True if the gather is now complete."""
        self.answers += 1
        if reply is not None:
            self.replies.append(reply)
        return self.complete

    def expect(self, listeners: int) -> bool:
        """Say how many listeners got the request; return True if all already answered."""
        self.listeners = listeners
        return self.complete


class PubSubRequests:
    """Requests and replies on a publish/subscribe bus, for one bus.

    The bus subscribes to ``inbox``, passes every incoming message to
    :meth:`handle` before its sink, and implements ``Bus.request`` with
    :meth:`request`.
    """

    def __init__(self, inbox: str, publish: CountingPublish) -> None:
        self.inbox = inbox
        self._publish = publish
        self._pending: dict[int, tuple[Gather, asyncio.Future[None]]] = {}
        self._ids = itertools.count(1)

    def handle(self, subject: str, data: bytes, handler: RequestHandler | None) -> bool:
        """Take a request or reply frame; return False for any other message.

        A request is answered by ``handler`` in a task of its own (a node never
        answers its own requests). Raises ``ValueError`` for a malformed frame.
        """
        frame = decode_frame(data)
        if frame is None:
            return False
        if isinstance(frame, Request):
            if frame.inbox != self.inbox and handler is not None:
                spawn(self._answer(handler, subject, frame), "bus request")
            return True
        pending = self._pending.get(frame.request_id)
        if pending is not None:
            gather, done = pending
            if gather.add(frame.body) and not done.done():
                done.set_result(None)
        return True

    async def _answer(self, handler: RequestHandler, subject: str, request: Request) -> None:
        reply = await handler(subject, request.body)
        try:
            await self._publish(request.inbox, encode_reply_frame(request.request_id, reply))
        except Exception as exc:
            logger.warning("could not answer a request on %s: %r", subject, exc)

    async def request(
        self,
        subject: str,
        data: bytes,
        timeout: float,
        max_replies: int | None,
        *,
        own: bool = False,
    ) -> list[bytes]:
        """Publish a request and return the replies received within ``timeout``.

        ``own`` says this bus itself subscribes to ``subject`` (it never
        answers itself, so it is not counted). Returns once ``max_replies``
        replies are in (None: every listener's). Raises :class:`NoResponders`
        when nobody else listens; a publish error propagates.
        """
        request_id = next(self._ids)
        gather = Gather(max_replies)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = (gather, done)
        try:
            frame = encode_request_frame(self.inbox, request_id, data)
            listeners = await self._publish(subject, frame) - (1 if own else 0)
            if listeners <= 0:
                raise NoResponders(subject)
            if not gather.expect(listeners):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(done), timeout)
            # Answers that came in before this task resumed may exceed the count.
            return gather.replies if max_replies is None else gather.replies[:max_replies]
        finally:
            self._pending.pop(request_id, None)

    def cancel_all(self) -> None:
        """Cancel every request in flight (the bus is closing)."""
        for _, done in self._pending.values():
            done.cancel()
        self._pending.clear()
