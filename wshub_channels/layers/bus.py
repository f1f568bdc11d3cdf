"""The ``Bus`` contract: what a backend supplies to carry envelopes between nodes.

A bus moves bytes between processes. It never decodes envelopes, fans out,
or knows what a group or room is; the core (:mod:`.node`, :mod:`.base`) does
all of that, identically for every backend. A bus:

- connects and closes, and says how its connection is (:meth:`Bus.status`);
- publishes bytes to a subject, and subscribes to and unsubscribes from
  subjects, handing each incoming message to ``sink(subject, data)``;
- answers requests: :meth:`Bus.request` sends bytes to a subject and returns
  the replies gathered within a timeout, and the request handler the core
  installs answers requests arriving on subscribed subjects. A bus with
  only publish/subscribe builds these on
  :class:`~wshub_channels.layers.inbox.PubSubRequests`; a bus with native
  requests (NATS) uses those;
- reports what happens to the connection (down, up, dropped by the broker,
  messages lost by a slow subscriber) through ``report(event, error)``,
  which the core counts and passes on;
- says how large one message may be (:attr:`Bus.max_payload`), where the
  bus has a limit, so that the core refuses a larger send with
  ``MessageTooLarge`` instead of handing it to the bus.

What must outlive a node (normal-channel queues, stored group members) is
the other contract, :class:`~wshub_channels.layers.store.BrokerStore`. A bus
whose clients belong to one event loop runs its methods there with
:func:`~wshub_channels.layers.homeloop.on_home`.
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

__all__ = ["Bus", "BusStatus", "NoResponders", "Reporter", "RequestHandler", "Sink"]

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


class NoResponders(LookupError):
    """A request found nobody subscribed to its subject (the node is gone)."""


@dataclass(frozen=True, slots=True)
class BusStatus:
    """Whether the bus connection is up, and the last error seen on it."""

    connected: bool
    last_error: str | None = None


class Bus(abc.ABC):
    """Publish/subscribe and request/reply between nodes; see the module docstring."""

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

        It is what the broker takes less the backend's own framing, so the
        core can check an envelope (or a queued message) against it. A bus
        that learns its limit on connecting returns None until then.
        """
        return None

    @abc.abstractmethod
    async def publish(self, subject: str, data: bytes) -> None:
        """Publish ``data`` on ``subject`` once, fire-and-forget."""

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


def _ignore(event: str, error: BaseException | None) -> None:
    """The reporter before the core installs its own."""


def _drop(subject: str, data: bytes) -> None:
    """The sink before the core installs its own."""
