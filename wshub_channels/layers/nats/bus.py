"""``NatsBus``: the NATS connection of one node, and core NATS subjects over it.

The bus only moves bytes; fan-out, echo suppression, envelopes and
names are the core's (:mod:`wshub_channels.layers.base`).

- **Subjects** are core NATS subjects (the core makes them safe tokens), one
  subscription each on one supervised client (:mod:`.connection`); a
  subscribe returns once the server has it (:func:`.client.confirm`).
- **Publishes** go out without waiting. While the server is away the
  client keeps them in its pending buffer (``pending_size`` bytes) and
  sends them on reconnect; a full buffer, or a publish stuck longer than
  ``request_timeout``, fails at once (``BusUnavailable`` in the core).
- **Requests** are native (:mod:`.requests`). Requests arriving on
  subscribed subjects are answered by the core's request handler on their
  reply subject; a node never answers its own.
- **Normal channels and stored group members** live in JetStream, in the
  bus's :class:`~.store.NatsStore` (the ``BrokerStore``), which the bus
  attaches to each new client and closes with the connection.

Loop safety: every client belongs to the home loop, which the bus and its
store share (:mod:`..homeloop`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from ...core.names import process_inbox
from ...tasks import spawn
from ..bus import Bus, BusStatus, RequestHandler
from ..homeloop import HomeLoop, on_home
from .client import Client, ConnectOptions, Msg, Subscription, confirm
from .connection import Connection
from .requests import request
from .store import NatsStore

__all__ = ["NatsBus"]

logger = logging.getLogger("wshub_channels.layers.nats")

#: Bytes a queued message carries besides its data (its deadline).
QUEUE_FRAMING = 8


class NatsBus(Bus):
    """Core NATS pub/sub and requests for one node; its :attr:`store` keeps the rest."""

    shared = True
    payload_limit_hint = (
        "NATS refuses a message over the server's max_payload, and a server at the "
        "1 MB default cannot carry a 1 MB Channels message plus its envelope: raise "
        "max_payload in the nats-server config (e.g. max_payload: 8MB)"
    )

    def __init__(
        self,
        options: ConnectOptions,
        prefix: str,
        name: str,
        request_timeout: float = 5.0,
        expiry: float = 60.0,
        group_expiry: float = 86400.0,
        storage: str = "file",
    ) -> None:
        super().__init__()
        self.prefix = prefix
        self.name = name
        self.connect_timeout = options.connect_timeout
        self.request_timeout = request_timeout
        self.inbox_prefix = process_inbox(f"_INBOX.{name}")
        self._subs: dict[str, Subscription | None] = {}  # None: being subscribed
        #: Every subject subscribed to, kept across reconnects and new home loops.
        self.subjects: set[str] = set()
        self.home = HomeLoop(self._open, self._shut, self._abandon)

        def report(event: str, error: BaseException | None) -> None:
            self.report(event, error)  # late bound: the core installs its reporter after us

        self.store = NatsStore(
            self.home,
            connected=lambda: self._conn.connected(),
            current=lambda client: self._conn.client is client,
            prefix=prefix,
            request_timeout=request_timeout,
            expiry=expiry,
            group_expiry=group_expiry,
            storage=storage,
        )
        self._conn = Connection(
            options,
            name=f"wshub-{name}",
            inbox_prefix=self.inbox_prefix,
            on_connected=self._on_connected,
            on_reconnected=self._on_reconnected,
            report=report,
        )

    # -- connection --------------------------------------------------------------

    async def connect(self) -> None:
        await self.home.connect()

    async def close(self) -> None:
        self.subjects.clear()
        await self.home.close()

    @property
    def client(self) -> Client | None:
        """The current client (None before the first connect and while closed)."""
        return self._conn.client

    @property
    def max_payload(self) -> int | None:
        client = self._conn.client
        return None if client is None else client.max_payload - QUEUE_FRAMING

    def status(self) -> BusStatus:
        return BusStatus(connected=self._conn.up, last_error=self._conn.last_error)

    async def _open(self) -> None:
        self.inbox_prefix = process_inbox(f"_INBOX.{self.name}")  # after a fork: ours
        self._conn.use_inbox_prefix(self.inbox_prefix)
        self._conn.start()
        if not await self._conn.wait_up(self.connect_timeout):
            # Keep supervising: the bus counts as down until NATS answers.
            logger.warning("NATS is not answering yet: %s", self._conn.last_error)

    async def _shut(self) -> None:
        await self.store.shut()  # acks of delivered messages first
        await self._conn.stop()
        self._subs.clear()

    def _abandon(self) -> None:
        self.store.abandon()
        self._conn.abandon()
        self._subs.clear()

    async def _on_connected(self, client: Client) -> None:
        """A new client: subscribe to every subject, then open JetStream."""
        self._subs.clear()
        for subject in sorted(self.subjects):
            await self._add_sub(client, subject)
        await self._on_reconnected(client, first=True)
        await confirm(client, self.connect_timeout)

    async def _on_reconnected(self, client: Client, first: bool = False) -> None:
        """nats-py resubscribed by itself; the store's streams and watch may be gone."""
        await self.store.attach(client, first)

    # -- pub/sub -------------------------------------------------------------------

    async def _add_sub(self, client: Client, subject: str) -> None:
        if subject in self._subs:
            return
        self._subs[subject] = None
        sub = await client.subscribe(subject, cb=self._on_msg)
        pending = subject in self._subs and self._subs[subject] is None
        if pending and self._conn.client is client:
            self._subs[subject] = sub
        else:  # unsubscribed, or the client replaced, meanwhile
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def _on_msg(self, msg: Msg) -> None:
        if msg.reply:
            handler = self.request_handler
            if handler is not None and not msg.reply.startswith(self.inbox_prefix + "."):
                spawn(self._answer(handler, msg), "bus request")
            return
        try:
            self.sink(msg.subject, msg.data)
        except (ValueError, TypeError) as exc:
            self.report("bad_frame", exc)
        except Exception:
            logger.exception("delivering a message from %s failed", msg.subject)

    async def _answer(self, handler: RequestHandler, msg: Msg) -> None:
        reply = await handler(msg.subject, msg.data)
        if reply is None:
            return
        try:
            await self._conn.connected().publish(msg.reply, reply)
        except Exception as exc:
            logger.warning("could not answer a request on %s: %r", msg.subject, exc)

    @on_home
    async def publish(self, subject: str, data: bytes) -> None:
        client = self._conn.client
        if client is None:
            raise ConnectionError(f"NATS is not connected: {self._conn.last_error}")
        try:
            # A half-open socket leaves nats-py's flusher stuck: bound it, then reconnect.
            async with asyncio.timeout(self.request_timeout):
                await client.publish(subject, data)
        except TimeoutError:
            spawn(client.force_reconnect(), "nats reconnect after a stuck publish")
            raise ConnectionError(
                f"NATS did not take a publish within {self.request_timeout:g}s"
            ) from None

    @on_home
    async def subscribe(self, subject: str) -> None:
        self.subjects.add(subject)
        client = self._conn.client
        if client is None:
            return  # subscribed when the client connects
        await self._add_sub(client, subject)
        if client.is_connected:
            await confirm(client, self.connect_timeout)

    @on_home
    async def unsubscribe(self, subject: str) -> None:
        self.subjects.discard(subject)
        sub = self._subs.pop(subject, None)
        if sub is not None:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    # -- requests (see .requests) ---------------------------------------------------

    @on_home
    async def request(
        self, subject: str, data: bytes, timeout: float, max_replies: int | None = 1
    ) -> list[bytes]:
        return await request(self._conn.connected(), subject, data, timeout, max_replies)
