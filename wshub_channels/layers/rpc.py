"""Request/reply and scatter-gather over publish/subscribe, written once.

Two pieces, one on each side of the transport:

- :class:`RemoteOps` is the core's: the registry of ops other nodes may call,
  the request handler that runs them, and :meth:`RemoteOps.call`, which runs
  an op on another node through the transport's ``request`` and returns its
  result or raises its typed error. A call travels as ``[op, args]`` and its
  answer as ``[ok, result or error class name, message]``.
- :class:`PubSubRequests` is for a transport whose bus has only publish and
  subscribe (Redis). A request is published on the target's subject as a
  frame that starts with the byte ``0x00``, and answered on the requester's
  private inbox subject with a frame that starts with ``0x01``; no msgpack
  envelope starts with either byte. The transport gives it a publish that
  returns how many subscribers received the frame, so a request nobody
  listens to fails at once with :class:`NoResponders` and a gather waits
  only for the listeners that exist (:class:`Gather`). A bus with native
  requests and no-responders (NATS) implements ``Transport.request`` itself
  instead.

The codecs and :class:`Gather` are pure. :class:`RemoteOps` keeps no loop
state. A :class:`PubSubRequests` belongs to its transport's home loop: call
it from that loop only.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, NamedTuple

import msgpack
from channels.exceptions import ChannelFull, MessageTooLarge

from .. import errors
from ..tasks import spawn
from .transport import NoResponders, RequestHandler

__all__ = [
    "REPLY",
    "REQUEST",
    "CountingPublish",
    "Gather",
    "Op",
    "PubSubRequests",
    "RemoteOps",
    "Reply",
    "Request",
    "Requester",
    "decode_answer",
    "decode_call",
    "decode_frame",
    "encode_call",
    "encode_error",
    "encode_reply_frame",
    "encode_request_frame",
    "encode_result",
    "error_from_name",
]

logger = logging.getLogger("wshub_channels.layers")

#: First byte of a request frame; a reply frame starts with :data:`REPLY`.
REQUEST = 0x00
REPLY = 0x01

Op = Callable[..., Awaitable[Any]]
#: ``request(subject, data, timeout, max_replies)``, as ``Transport.request``.
Requester = Callable[[str, bytes, float, int | None], Awaitable[list[bytes]]]
#: Publishes one frame and returns how many subscribers received it.
CountingPublish = Callable[[str, bytes], Awaitable[int]]

_BUILTIN_ERRORS: dict[str, type[Exception]] = {
    "TypeError": TypeError,
    "ValueError": ValueError,
    "ChannelFull": ChannelFull,
}


# -- the op codec ------------------------------------------------------------------


def encode_call(op: str, args: Sequence[Any]) -> bytes:
    """Return the body of a call of ``op`` with ``args``."""
    return _pack([op, list(args)])


def decode_call(body: bytes) -> tuple[str, list[Any]]:
    """Decode :func:`encode_call`; raise ``ValueError`` on malformed input."""
    fields = _unpack(body, "call")
    if not isinstance(fields, list) or len(fields) != 2:
        raise ValueError("malformed call")
    op, args = fields
    if not isinstance(op, str) or not isinstance(args, list):
        raise ValueError("malformed call")
    return op, args


def encode_result(result: Any) -> bytes:
    """Return the answer carrying an op's result."""
    return _pack([True, result, None])


def encode_error(error: BaseException) -> bytes:
    """Return the answer carrying an op's error, by class name and message."""
    return _pack([False, type(error).__name__, str(error)])


def decode_answer(body: bytes) -> Any:
    """Return the result an answer carries, or raise the error it carries.

    The error is rebuilt by :func:`error_from_name`. Raises ``ValueError`` when
    the answer itself is malformed.
    """
    fields = _unpack(body, "answer")
    if not isinstance(fields, list) or len(fields) != 3:
        raise ValueError("malformed answer")
    ok, result, message = fields
    if ok is True:
        return result
    if ok is not False or not isinstance(result, str):
        raise ValueError("malformed answer")
    raise error_from_name(result, str(message))


def error_from_name(name: str, message: str) -> Exception:
    """Rebuild a remote error: a hub error, a few builtins, else ``HubError``."""
    cls = getattr(errors, name, None)
    if isinstance(cls, type) and issubclass(cls, Exception):
        return cls(message)
    return _BUILTIN_ERRORS.get(name, errors.HubError)(message)


# -- the core side: ops --------------------------------------------------------------


class RemoteOps:
    """The ops this node answers, and calls of ops on other nodes.

    ``on_bad_request`` runs for each undecodable or unknown call received;
    ``on_bus_error`` for each call the bus failed to carry.
    """

    def __init__(
        self, on_bad_request: Callable[[], None], on_bus_error: Callable[[], None]
    ) -> None:
        self._ops: dict[str, Op] = {}
        self._on_bad_request = on_bad_request
        self._on_bus_error = on_bus_error

    def register(self, name: str, op: Op) -> None:
        """Make ``op`` callable by other nodes under ``name`` (replacing any before)."""
        self._ops[name] = op

    def __contains__(self, name: object) -> bool:
        return name in self._ops

    async def handle(self, subject: str, body: bytes) -> bytes:
        """Run the call in ``body`` and return its answer: the transport's request handler."""
        try:
            name, args = decode_call(body)
            op = self._ops[name]
        except (ValueError, KeyError):
            self._on_bad_request()
            return encode_error(ValueError("malformed request"))
        try:
            result = await op(*args)
        except Exception as exc:
            return encode_error(exc)
        return encode_result(result)

    async def call(
        self,
        request: Requester,
        subject: str,
        op: str,
        args: Sequence[Any],
        timeout: float,
        node: str,
    ) -> Any:
        """Call ``op`` on the one node listening on ``subject`` and return its result.

        Raises :class:`NoResponders` when the bus knows nobody listens,
        :class:`~wshub_channels.errors.HubTimeout` when no answer comes within
        ``timeout``, :class:`~wshub_channels.errors.BusUnavailable` when the bus
        fails, and otherwise the op's own error, rebuilt by class name.
        """
        try:
            replies = await request(subject, encode_call(op, args), timeout, 1)
        except (NoResponders, errors.HubError, MessageTooLarge):
            raise
        except Exception as exc:
            self._on_bus_error()
            raise errors.BusUnavailable(f"calling node {node} failed: {exc!r}") from exc
        if not replies:
            raise errors.HubTimeout(f"node {node} did not answer {op!r} within {timeout:g}s")
        return decode_answer(replies[0])


# -- the transport side: requests over publish/subscribe ---------------------------


class Request(NamedTuple):
    """A request frame: where to answer, which request, and its body."""

    inbox: str
    request_id: int
    body: bytes


class Reply(NamedTuple):
    """A reply frame; ``body`` is None when the handler had no answer."""

    request_id: int
    body: bytes | None


def encode_request_frame(inbox: str, request_id: int, body: bytes) -> bytes:
    return bytes([REQUEST]) + _pack([inbox, request_id, body])


def encode_reply_frame(request_id: int, body: bytes | None) -> bytes:
    return bytes([REPLY]) + _pack([request_id, body])


def decode_frame(data: bytes) -> Request | Reply | None:
    """Decode a request or reply frame; None for any other message.

    Raises ``ValueError`` for a frame with a request or reply marker that is
    malformed.
    """
    marker = data[0] if data else None
    if marker == REQUEST:
        fields = _unpack(data[1:], "request frame")
        if (
            isinstance(fields, list)
            and len(fields) == 3
            and isinstance(fields[0], str)
            and isinstance(fields[1], int)
            and isinstance(fields[2], bytes)
        ):
            return Request(fields[0], fields[1], fields[2])
        raise ValueError("malformed request frame")
    if marker == REPLY:
        fields = _unpack(data[1:], "reply frame")
        if (
            isinstance(fields, list)
            and len(fields) == 2
            and isinstance(fields[0], int)
            and (fields[1] is None or isinstance(fields[1], bytes))
        ):
            return Reply(fields[0], fields[1])
        raise ValueError("malformed reply frame")
    return None


class Gather:
    """The replies to one request, complete once ``want`` listeners answered.

    ``want`` is unknown until the publish says how many listeners got the
    request, and replies may come before that: :meth:`expect` sets it later.
    An answer without a body counts as answered but adds no reply.
    """

    __slots__ = ("answers", "replies", "want")

    def __init__(self) -> None:
        self.replies: list[bytes] = []
        self.answers = 0
        self.want: int | None = None

    @property
    def complete(self) -> bool:
        return self.want is not None and self.answers >= self.want

    def add(self, reply: bytes | None) -> bool:
        """Count one answer; return True if the gather is now complete."""
        self.answers += 1
        if reply is not None:
            self.replies.append(reply)
        return self.complete

    def expect(self, want: int) -> bool:
        """Set how many answers complete the gather; return True if it already is."""
        self.want = want
        return self.complete


class PubSubRequests:
    """Requests and replies on a publish/subscribe bus, for one transport.

    The transport subscribes to ``inbox``, passes every incoming message to
    :meth:`handle` before its sink, and implements ``Transport.request`` with
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

        ``own`` says this transport itself subscribes to ``subject`` (it never
        answers itself, so it is not counted). Returns once ``max_replies``
        replies are in (None: every listener's). Raises :class:`NoResponders`
        when nobody else listens; a publish error propagates.
        """
        request_id = next(self._ids)
        gather = Gather()
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = (gather, done)
        try:
            frame = encode_request_frame(self.inbox, request_id, data)
            listeners = await self._publish(subject, frame) - (1 if own else 0)
            if listeners <= 0:
                raise NoResponders(subject)
            if not gather.expect(listeners if max_replies is None else min(listeners, max_replies)):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(done), timeout)
            # Answers that came in before this task resumed may exceed the count.
            return gather.replies if max_replies is None else gather.replies[:max_replies]
        finally:
            self._pending.pop(request_id, None)

    def cancel_all(self) -> None:
        """Cancel every request in flight (the transport is closing)."""
        for _, done in self._pending.values():
            done.cancel()
        self._pending.clear()


def _pack(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)  # type: ignore[no-any-return]


def _unpack(data: bytes, what: str) -> Any:
    try:
        return msgpack.unpackb(data, raw=False)
    except Exception as exc:
        raise ValueError(f"undecodable {what}: {exc}") from exc
