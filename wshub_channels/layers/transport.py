"""The transport a backend supplies: the only thing that differs per bus.

A transport moves bytes. It never decodes envelopes, fans out, or knows what
a group or room is; the core in :mod:`wshub_channels.layers.base` does all of
that, identically for every backend. A transport:

- connects and closes;
- publishes bytes to a subject, and subscribes to and unsubscribes from
  subjects, handing each incoming message to ``sink(subject, data)``;
- answers requests: ``request`` sends bytes to a subject and returns the
  replies gathered within a timeout, and ``set_request_handler`` installs the
  coroutine that answers requests arriving on subscribed subjects;
- keeps the broker queues of normal channels (the ones without ``!``), and
  the membership of normal channels in groups, which must outlive any node.
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

__all__ = ["BusStatus", "RequestHandler", "Sink", "Transport"]

Sink = Callable[[str, bytes], None]
RequestHandler = Callable[[str, bytes], Awaitable[bytes | None]]


@dataclass(frozen=True, slots=True)
class BusStatus:
    """Whether the bus connection is up, and the last error seen on it."""

    connected: bool
    last_error: str | None = None


class Transport(abc.ABC):
    """Abstract bus transport; see the module docstring for the contract."""

    #: True when other processes may share this bus (Redis, NATS, a named memory bus).
    shared: bool = False

    def __init__(self) -> None:
        self.sink: Sink = _drop
        self.request_handler: RequestHandler | None = None

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

        Returns as soon as ``max_replies`` replies are in (None: wait the whole
        timeout and gather every reply).
        """

    @abc.abstractmethod
    async def queue_push(self, channel: str, data: bytes, capacity: int, expiry: float) -> bool:
        """Append to a normal channel's broker queue; False when it is full."""

    @abc.abstractmethod
    async def queue_pop(self, channel: str) -> bytes:
        """Wait for and remove the oldest live message of a normal channel."""

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


def _drop(subject: str, data: bytes) -> None:
    """The sink before the core installs its own."""
