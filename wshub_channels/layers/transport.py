"""The transport a backend supplies: the only thing that differs per bus.

A transport moves bytes. It never decodes envelopes, fans out, or knows what
a group or room is; the core in :mod:`wshub_channels.layers.base` does all of
that, identically for every backend. A transport:

- connects and closes;
- publishes bytes to a subject, and subscribes to and unsubscribes from
  subjects, handing each incoming message to ``sink(subject, data)``;
- answers requests: ``request`` sends bytes to a subject and returns the
  replies gathered within a timeout, and ``set_request_handler`` installs the
  coroutine that answers requests arriving on subscribed subjects. A bus
  with only publish/subscribe builds these on
  :class:`~wshub_channels.layers.inbox.PubSubRequests`; a bus with native
  requests (NATS) uses those;
- keeps the broker queues of normal channels (the ones without ``!``), and
  the membership of normal channels in groups, which must outlive any node.
  A push and a pop both get the channel's capacity (the same on every node),
  so a bus that keeps channels of different capacities apart (NATS: one
  stream per capacity) finds the queue without a lookup;
- does a ``group_send``'s bus work in as few round trips as the bus allows:
  ``publish_group`` publishes and returns the group's live stored members in
  one step (one round trip on Redis), and ``queue_push_many`` pushes one
  message to several normal channels at once;
- reports what happens to the connection (down, up, dropped by the broker,
  messages lost by a slow subscriber) through ``report(event, error)``,
  which the core counts and passes on;
- says how large one message may be (:attr:`Transport.max_payload`), where
  the bus has a limit, so that the core refuses a larger send with
  ``MessageTooLarge`` instead of handing it to the bus.

Transports whose clients belong to one event loop subclass
:class:`LoopBoundTransport`, which runs every call on the owning loop.
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = [
    "BusStatus",
    "NoResponders",
    "Popped",
    "Reporter",
    "RequestHandler",
    "Sink",
    "Transport",
]

Sink = Callable[[str, bytes], None]
RequestHandler = Callable[[str, bytes], Awaitable[bytes | None]]
#: ``report(event, error)``: event is "down", "up", "dropped" (the broker cut the
#: subscriber off, e.g. at its output-buffer limit), "slow_consumer" (the client
#: dropped a message because this node read too slowly), "expired" (a queued
#: message), "bad_frame" (a transport-level frame that could not be read), and for
#: normal-channel receives: "put_back" (a cancelled receive gave its message back),
#: "receive_lost" (it could not), "hold_recovered" (a dead receiver's messages went
#: back to their queue) or "ack_timeout" (the broker did not confirm an ack).
Reporter = Callable[[str, BaseException | None], None]
R = TypeVar("R")


class Popped(bytes):
    """A message a pop returned, with what its transport needs to settle it (``receipt``)."""

    receipt: Any = None


class NoResponders(LookupError):
    """A request found nobody subscribed to its subject (the node is gone)."""


@dataclass(frozen=True, slots=True)
class BusStatus:
    """Whether the bus connection is up, and the last error seen on it."""

    connected: bool
    last_error: str | None = None


class Transport(abc.ABC):
    """Abstract bus transport; see the module docstring for the contract."""

    #: True when other processes may share this bus (Redis, NATS, a named memory bus).
    shared: bool = False
    #: Said after the limit when a message is over :attr:`max_payload`: how to raise it.
    payload_limit_hint: str = ""

    def __init__(self) -> None:
        self.sink: Sink = _drop
        self.request_handler: RequestHandler | None = None
        self.report: Reporter = _ignore

    def set_reporter(self, report: Reporter) -> None:
        self.report = report

    def set_sink(self, sink: Sink) -> None:
        self.sink = sink

    def set_request_handler(self, handler: RequestHandler) -> None:
        self.request_handler = handler

    @abc.abstractmethod
    async def connect(self) -> None:
        """Open the bus connection (idempotent)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Close the bus connection and drop every subscription."""

    @abc.abstractmethod
    def status(self) -> BusStatus:
        """Return the current bus status without I/O."""

    @property
    def max_payload(self) -> int | None:
        """The most bytes one publish or queue push may carry; None when unlimited or unknown.

        It is what the broker takes less the transport's own framing, so the
        core can check an envelope (or a queued message) against it. A bus
        that learns its limit on connecting returns None until then.
        """
        return None

    @abc.abstractmethod
    async def publish(self, subject: str, data: bytes) -> None:
        """Publish ``data`` on ``subject`` once, fire-and-forget."""

    @abc.abstractmethod
    async def publish_group(self, subject: str, data: bytes, group: str) -> list[str]:
        """Publish ``data`` on ``subject`` and return the live stored members of ``group``.

        This is a ``group_send``'s bus work, and the hot path of every group
        send: a bus that can do both in one round trip must (Redis pipelines
        them). A failed publish raises, as :meth:`publish` does.
        """

    @abc.abstractmethod
    async def subscribe(self, subject: str) -> None:
        """Start delivering ``subject`` to the sink; returns once it is in place."""

    @abc.abstractmethod
    async def unsubscribe(self, subject: str) -> None:
        """Stop delivering ``subject``."""

    @abc.abstractmethod
    async def request(
        self, subject: str, data: bytes, timeout: float, max_replies: int | None = 1
    ) -> list[bytes]:
        """Send a request and return the replies received within ``timeout``.

        Returns as soon as ``max_replies`` replies are in (None: gather every
        reply until the timeout, or until every listener answered where the
        bus can count them). Raises :class:`NoResponders` when the bus knows
        nobody listens on ``subject``.
        """

    @abc.abstractmethod
    async def queue_push(self, channel: str, data: bytes, capacity: int, expiry: float) -> bool:
        """Append to a normal channel's broker queue; False when it is full (``capacity``)."""

    async def queue_push_many(
        self, pushes: Sequence[tuple[str, int]], data: bytes, expiry: float
    ) -> list[bool]:
        """Push ``data`` to each ``(channel, capacity)``; return which pushes fitted.

        Override to do it in one round trip; this default pushes one by one.
        """
        return [await self.queue_push(channel, data, cap, expiry) for channel, cap in pushes]

    @abc.abstractmethod
    async def queue_pop(self, channel: str, capacity: int) -> bytes:
        """Wait for and remove the oldest live message of a normal channel.

        ``capacity`` is the channel's, as given to :meth:`queue_push`. A pop
        cancelled while it waits loses no message: one it had taken from the
        broker goes back.
        """

    def queue_delivered(self, data: bytes) -> None:
        """The caller of :meth:`queue_pop` has ``data`` now (NATS acks it here)."""
        return None

    def queue_unpop(self, data: bytes) -> None:
        """``data`` came back from :meth:`queue_pop` to a caller cancelled meanwhile.

        Put it back when the bus can; this default counts it as lost.
        """
        self.report("receive_lost", LookupError("a popped message whose receive was cancelled"))

    @abc.abstractmethod
    async def store_group_add(self, group: str, channel: str, expiry: float) -> None:
        """Record a normal channel as a member of ``group`` for ``expiry`` seconds."""

    @abc.abstractmethod
    async def store_group_discard(self, group: str, channel: str) -> None:
        """Forget a normal channel's membership of ``group``."""

    @abc.abstractmethod
    async def store_group_members(self, group: str) -> list[str]:
        """Return the live normal-channel members of ``group``."""

    @abc.abstractmethod
    async def flush(self) -> None:
        """Delete every broker queue and stored membership under this prefix."""


def _ignore(event: str, error: BaseException | None) -> None:
    """The reporter before the core installs its own."""


def _drop(subject: str, data: bytes) -> None:
    """The sink before the core installs its own."""
