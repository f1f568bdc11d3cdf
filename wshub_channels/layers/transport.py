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
  :class:`~wshub_channels.layers.rpc.PubSubRequests`; a bus with native
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
import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from ..publisher import forward, target_loop

__all__ = [
    "BusStatus",
    "LoopBoundTransport",
    "NoResponders",
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
#: message) or "bad_frame" (a transport-level frame that could not be read).
Reporter = Callable[[str, BaseException | None], None]
R = TypeVar("R")


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


class LoopBoundTransport(Transport):
    """A transport whose clients belong to one event loop: the home loop.

    Subclasses implement the ``_``-prefixed methods, which always run on the
    home loop. A call from another running loop is forwarded there; when the
    home loop has stopped (a test's loop ended, say) the next caller's loop
    becomes home: :meth:`_abandon` drops the dead loop's clients and
    :meth:`_open` connects again, subscribing to every subject in
    :attr:`subjects`. Calls from ``async_to_sync``'s temporary loops go to the
    publisher loop (:mod:`wshub_channels.publisher`).
    """

    def __init__(self) -> None:
        super().__init__()
        self.home: asyncio.AbstractEventLoop | None = None
        #: Every subject subscribed to, kept across reconnects and new home loops.
        self.subjects: set[str] = set()
        self._opened = False
        self._opening: asyncio.Future[None] | None = None  # the open in progress, if any

    async def _on_home(self, fn: Callable[..., Coroutine[Any, Any, R]], *args: Any) -> R:
        here = asyncio.get_running_loop()
        if self.home is here:
            if not self._opened:
                await self._connect_here()
            return await fn(*args)
        home = target_loop(self.home, here)
        if home is not here:
            return await forward(home, self._on_home(fn, *args))
        if self.home is not None:
            self._abandon()
            self._opened = False
            self._opening = None
        self.home = here
        await self._connect_here()
        return await fn(*args)

    async def _connect_here(self) -> None:
        """Open on the home loop once: concurrent first callers share one open."""
        if self._opening is None:
            self._opening = asyncio.ensure_future(self._open_once())
        await asyncio.shield(self._opening)

    async def _open_once(self) -> None:
        try:
            await self._open()
            self._opened = True
        finally:
            self._opening = None  # a failed open is tried again by the next call

    async def connect(self) -> None:
        await self._on_home(_nothing)

    async def close(self) -> None:
        here = asyncio.get_running_loop()
        home = self.home
        self.subjects.clear()
        if home is None or not self._opened:
            return
        if home is here:
            self._opened = False
            await self._shut()
        elif home.is_running() and not home.is_closed():
            await forward(home, self.close())
        else:
            self._opened = False
            self._abandon()

    async def publish(self, subject: str, data: bytes) -> None:
        if self.home is asyncio.get_running_loop() and self._opened:
            await self._publish(subject, data)  # the hot path: no extra frame
        else:
            await self._on_home(self._publish, subject, data)

    async def publish_group(self, subject: str, data: bytes, group: str) -> list[str]:
        if self.home is asyncio.get_running_loop() and self._opened:
            return await self._publish_group(subject, data, group)
        return await self._on_home(self._publish_group, subject, data, group)

    async def subscribe(self, subject: str) -> None:
        self.subjects.add(subject)
        await self._on_home(self._subscribe, subject)

    async def unsubscribe(self, subject: str) -> None:
        self.subjects.discard(subject)
        await self._on_home(self._unsubscribe, subject)

    async def request(
        self, subject: str, data: bytes, timeout: float, max_replies: int | None = 1
    ) -> list[bytes]:
        return await self._on_home(self._request, subject, data, timeout, max_replies)

    async def queue_push(self, channel: str, data: bytes, capacity: int, expiry: float) -> bool:
        return await self._on_home(self._queue_push, channel, data, capacity, expiry)

    async def queue_push_many(
        self, pushes: Sequence[tuple[str, int]], data: bytes, expiry: float
    ) -> list[bool]:
        return await self._on_home(self._queue_push_many, pushes, data, expiry)

    async def queue_pop(self, channel: str, capacity: int) -> bytes:
        return await self._on_home(self._queue_pop, channel, capacity)

    async def store_group_add(self, group: str, channel: str, expiry: float) -> None:
        await self._on_home(self._store_group_add, group, channel, expiry)

    async def store_group_discard(self, group: str, channel: str) -> None:
        await self._on_home(self._store_group_discard, group, channel)

    async def store_group_members(self, group: str) -> list[str]:
        return await self._on_home(self._store_group_members, group)

    async def flush(self) -> None:
        await self._on_home(self._flush)

    # -- what a loop-bound backend implements (always called on the home loop) --

    @abc.abstractmethod
    async def _open(self) -> None:
        """Connect on the home loop and subscribe to :attr:`subjects`."""

    @abc.abstractmethod
    async def _shut(self) -> None:
        """Close every client and task on the home loop."""

    @abc.abstractmethod
    def _abandon(self) -> None:
        """Forget the clients of a home loop that has stopped, without I/O."""

    @abc.abstractmethod
    async def _publish(self, subject: str, data: bytes) -> None: ...

    @abc.abstractmethod
    async def _publish_group(self, subject: str, data: bytes, group: str) -> list[str]: ...

    @abc.abstractmethod
    async def _subscribe(self, subject: str) -> None: ...

    @abc.abstractmethod
    async def _unsubscribe(self, subject: str) -> None: ...

    @abc.abstractmethod
    async def _request(
        self, subject: str, data: bytes, timeout: float, max_replies: int | None
    ) -> list[bytes]: ...

    @abc.abstractmethod
    async def _queue_push(
        self, channel: str, data: bytes, capacity: int, expiry: float
    ) -> bool: ...

    async def _queue_push_many(
        self, pushes: Sequence[tuple[str, int]], data: bytes, expiry: float
    ) -> list[bool]:
        return [await self._queue_push(channel, data, cap, expiry) for channel, cap in pushes]

    @abc.abstractmethod
    async def _queue_pop(self, channel: str, capacity: int) -> bytes: ...

    @abc.abstractmethod
    async def _store_group_add(self, group: str, channel: str, expiry: float) -> None: ...

    @abc.abstractmethod
    async def _store_group_discard(self, group: str, channel: str) -> None: ...

    @abc.abstractmethod
    async def _store_group_members(self, group: str) -> list[str]: ...

    @abc.abstractmethod
    async def _flush(self) -> None: ...


async def _nothing() -> None:
    """Used by :meth:`LoopBoundTransport.connect`: connecting is all it does."""


def _ignore(event: str, error: BaseException | None) -> None:
    """The reporter before the core installs its own."""


def _drop(subject: str, data: bytes) -> None:
    """The sink before the core installs its own."""
