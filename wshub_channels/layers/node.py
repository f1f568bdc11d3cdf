"""One node on the bus: interest routing, publishing, remote calls and inbound envelopes.

:class:`BusNode` is the part of every hub layer that the hub uses directly
(the :class:`~wshub_channels.layers.face.HubBus` face), written once for
every backend over its :class:`~wshub_channels.layers.bus.Bus` and
:class:`~wshub_channels.layers.store.BrokerStore` (:class:`Backend`). It owns:

- interest routing: a node subscribes to a group's (or room's, or user's)
  subject only while it has a local member, so every send is one publish
  and only interested nodes receive it;
- the one "publish, deliver locally, then await the publish" sequence
  (:meth:`BusNode.publish_and_deliver`), shared by ``group_send`` and every
  hub send;
- calls of ops on other nodes (:mod:`.rpc`);
- inbound envelopes: decoded once per node, echoes of this node's own
  publishes dropped (it delivered those locally already), unknown versions
  counted and skipped; the rest goes to :meth:`BusNode._on_envelope`;
- the size check against the bus's own limit (``Bus.max_payload``):
  an envelope the bus would refuse raises ``MessageTooLarge`` before
  anything is published or delivered.

:class:`~wshub_channels.layers.base.HubLayer` adds the Channels layer on top.

Event loops: a node keeps no loop-bound state beyond per-call futures, so
one instance serves any number of loops in turn (a test suite that gives
each test its own loop, or ``async_to_sync`` callers); backends that hold
loop-bound clients run their calls on their home loop themselves
(:mod:`.homeloop`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Coroutine
from typing import Any, NamedTuple, TypeVar

from .. import errors
from ..core.membership import Interest
from ..core.names import current_pid, make_node_id, subject_token
from ..core.wire import (
    Envelope,
    UnknownEnvelopeVersion,
    decode_envelope,
    encode_envelope,
)
from ..log import Throttle
from .bus import Bus, BusStatus
from .face import BusListener, Deliver, HubSink
from .historyops import HistoryOps
from .historystore import HistoryStore, NoHistory
from .limits import answer_within_limit, check_wire_size
from .rpc import Op, RemoteOps
from .stats import LayerStats
from .store import BrokerStore
from .subscriptions import Subscriptions

__all__ = ["Backend", "BusNode"]

logger = logging.getLogger("wshub_channels.layers")

T = TypeVar("T")


class Backend(NamedTuple):
    """What a backend supplies: its bus, its store and its room history (they may share
    a connection). A backend without room history leaves ``history`` None."""

    bus: Bus
    store: BrokerStore
    history: HistoryStore | None = None


class BusNode(HistoryOps):
    """A node's bus side: subjects, interest, publishing, remote calls, inbound envelopes.

    ``prefix`` starts every subject; ``node_id`` is a prefix for this node's
    random id (default ``WSHUB["NODE_ID"]``); ``request_timeout`` bounds
    :meth:`remote_call`.
    """

    def __init__(
        self, prefix: str = "wshub", node_id: str | None = None, request_timeout: float = 5.0
    ) -> None:
        self.prefix = prefix
        self.request_timeout = request_timeout
        if node_id is None:
            from ..conf import get_settings

            node_id = get_settings().node_id
        self.node_id = make_node_id(node_id)
        self.stats = LayerStats()
        self._interest = Interest()
        self._rpc = RemoteOps(
            self.count_bad_envelope, self._count_publish_error, self.cluster_subject
        )
        self._hub_sink: HubSink | None = None
        self._bus_listener: BusListener | None = None
        self._drop_log = Throttle(logger, 10.0)
        self._started = False
        backend = self.make_backend()
        self.bus, self.store = backend.bus, backend.store
        self.history = backend.history or NoHistory(type(self).__name__)
        self._subs = Subscriptions(self.bus)
        self.bus.set_sink(self._on_bus)
        self.bus.set_request_handler(self._answer)
        self.bus.set_reporter(self._on_bus_event)
        self.store.set_reporter(self._on_bus_event)

    def make_backend(self) -> Backend:
        """Build this backend's bus and store (the only thing a backend supplies)."""
        raise NotImplementedError

    @property
    def transport(self) -> Bus:
        """The bus, by its old name; the hub reads :attr:`max_payload` instead."""
        return self.bus

    @property
    def shared(self) -> bool:
        """True when other processes may share this bus, so every send must publish."""
        return self.bus.shared

    @property
    def max_payload(self) -> int | None:
        """The most bytes one bus message may carry; None when unlimited or not yet known."""
        return self.bus.max_payload

    # -- subjects -----------------------------------------------------------------

    def subject(self, ns: str, name: str) -> str:
        """Return the bus subject of ``name`` in namespace ``ns``."""
        return f"{self.prefix}.{ns}.{subject_token(name)}"

    def node_subject(self, node_id: str) -> str:
        return f"{self.prefix}.n.{node_id}"

    @property
    def cluster_subject(self) -> str:
        return f"{self.prefix}.all"

    # -- lifecycle ----------------------------------------------------------------

    async def start(self) -> None:
        """Connect the bus and subscribe to this node's own subjects (idempotent)."""
        if self._started:
            return
        self._started = True
        try:
            await self.bus.connect()
            await self._subs.subscribe(self.node_subject(self.node_id))
            await self._subs.subscribe(self.cluster_subject)
        except BaseException:
            self._started = False
            raise

    async def close(self) -> None:
        """Drop every subscription and close the bus. The node can start again."""
        self._subs.clear()
        self._started = False
        await self.bus.close()

    def bus_status(self) -> BusStatus:
        return self.bus.status()

    def stats_snapshot(self) -> dict[str, int]:
        """The layer's counters (:class:`~wshub_channels.layers.stats.LayerStats`), copied."""
        return self.stats.snapshot()

    def set_bus_listener(self, listener: BusListener | None) -> None:
        """Install the hub's handler of bus events: what the bus and store report ("down",
        "up", "dropped", "slow_consumer", "expired", "bad_frame") and "publish_failed"."""
        self._bus_listener = listener

    def set_hub_sink(self, sink: HubSink | None) -> None:
        """Install the hub's handler for room, user, broadcast and presence envelopes."""
        self._hub_sink = sink

    # -- interest -------------------------------------------------------------------

    async def add_interest(self, ns: str, name: str, member: str) -> None:
        """Make ``member`` a local member of ``name``; subscribe on the first one."""
        subject = self.subject(ns, name)
        if self._interest.add(ns, name, member, time.monotonic()) or subject not in self._subs:
            await self.start()
            await self._subs.subscribe(subject)

    async def discard_interest(self, ns: str, name: str, member: str) -> None:
        """Remove a local membership; unsubscribe when the last member leaves."""
        if self._interest.discard(ns, name, member):
            await self._subs.unsubscribe(self.subject(ns, name))

    @property
    def interest(self) -> Interest:
        """This node's membership table, for the hub's registry to read.

        Change it only through :meth:`add_interest`, :meth:`discard_interest`
        and :meth:`release_channel`, which keep the subscriptions in step.
        """
        return self._interest

    def local_members(self, ns: str, name: str) -> dict[str, float] | None:
        """Return the live table of local members of ``name`` (member -> joined time)."""
        return self._interest.members(ns, name)

    async def release_channel(self, channel: str) -> None:
        """Drop every local membership of ``channel``, unsubscribing where it was the last."""
        for ns, name in self._interest.remove_member(channel):
            await self._subs.unsubscribe(self.subject(ns, name))

    def sizes(self) -> dict[str, int]:
        """Internal table sizes; all zero on an idle node (used by leak tests)."""
        sizes = self._interest.sizes()
        own = {self.node_subject(self.node_id), self.cluster_subject}
        sizes["interest_subscriptions"] = self._subs.count_except(own)
        return sizes

    # -- publishing -----------------------------------------------------------------

    async def publish(self, subject: str, kind: int, target: str, payload: bytes) -> None:
        """Publish one envelope on the bus (the hub's entry to the bus)."""
        await self.start()
        await self._publish(subject, self.envelope(kind, target, payload))

    async def publish_and_deliver(
        self, subject: str, kind: int, target: str, payload: bytes, deliver: Deliver
    ) -> None:
        """Publish one envelope, run ``deliver`` (this node's fan-out), then await the publish.

        On a bus nobody else shares, only ``deliver`` runs. Otherwise the
        publish goes on the wire first (one loop turn), so the broker and the
        other nodes work while this node delivers locally; local delivery
        never waits for the bus. The publish is awaited even when ``deliver``
        raised, and raises :class:`~wshub_channels.errors.BusUnavailable` if it
        failed.
        """
        await self._publish_around(subject, kind, target, payload, deliver, None)

    async def _publish_around(
        self,
        subject: str,
        kind: int,
        target: str,
        payload: bytes,
        deliver: Deliver,
        group: str | None,
    ) -> list[str]:
        """The one copy of the send sequence; with ``group``, also return its stored members.

        The members come from the same store call as the publish
        (``BrokerStore.publish_group``), or from a lookup when the bus is not shared.
        """
        await self.start()
        bus = self.bus
        if not bus.shared:
            await deliver()
            return [] if group is None else await self.store.group_members(group)
        env = self.envelope(kind, target, payload)
        wire: Coroutine[Any, Any, list[str] | None]
        if group is None:
            wire = self._on_wire(subject, bus.publish(subject, env))
        else:
            wire = self._on_wire(subject, self.store.publish_group(bus, subject, env, group))
        sending = asyncio.ensure_future(wire)
        await asyncio.sleep(0)  # one loop turn: the publish's first step writes it out
        try:
            await deliver()
        finally:
            stored = await sending
        return stored or []

    def envelope(self, kind: int, target: str, payload: bytes) -> bytes:
        """One envelope from this process; ``MessageTooLarge`` if the bus cannot carry it."""
        env = encode_envelope(kind, self.node_id, target, payload, current_pid())
        self.check_wire_size(env)
        return env

    async def _publish(self, subject: str, data: bytes) -> None:
        await self._on_wire(subject, self.bus.publish(subject, data))

    def check_wire_size(self, data: bytes) -> None:
        """Raise ``MessageTooLarge`` if ``data`` (an envelope, or a queued message) is
        more than the bus takes in one message; call it once the node has started."""
        check_wire_size(self.bus, data)

    async def _on_wire(self, subject: str, sending: Awaitable[T]) -> T:
        """Await a bus publish; count it, and report and wrap its failure."""
        self.stats.publishes += 1
        try:
            return await sending
        except Exception as exc:
            self.stats.publish_errors += 1
            self._drop_log.warning("publish on %s failed: %r", subject, exc)
            if self._bus_listener is not None:
                self._bus_listener("publish_failed", exc)
            raise errors.BusUnavailable(f"the bus did not take a publish: {exc!r}") from exc

    # -- remote calls ---------------------------------------------------------------

    def register_op(self, name: str, op: Op) -> None:
        """Register a coroutine other nodes may call with :meth:`remote_call`."""
        self._rpc.register(name, op)

    async def remote_call(
        self, node: str, op: str, *args: Any, timeout: float | None = None
    ) -> Any:
        """Run ``op`` on another node and return its result, raising its typed error.

        Raises :class:`~wshub_channels.layers.bus.NoResponders` when the
        bus knows nobody listens on that node's subject (the node is gone),
        :class:`~wshub_channels.errors.HubTimeout` when no answer comes,
        :class:`~wshub_channels.errors.BusUnavailable` when the bus fails, and
        ``MessageTooLarge`` when the call (its arguments) is more than the bus carries.
        """
        await self.start()
        wait = self.request_timeout if timeout is None else timeout
        return await self._rpc.call(self._request, self.node_subject(node), op, args, wait, node)

    async def gather_call(
        self, op: str, *args: Any, expect: int | None = None, timeout: float | None = None
    ) -> list[Any]:
        """Run ``op`` on every other node (scatter-gather) and return their answers.

        Pass ``expect``, the number of other nodes presence knows, so that the
        gather ends as soon as they all answered instead of waiting out
        ``timeout`` (default ``request_timeout``). A node's error comes back as
        an exception in the list. See :meth:`RemoteOps.gather
        <wshub_channels.layers.rpc.RemoteOps.gather>`.
        """
        await self.start()
        wait = self.request_timeout if timeout is None else timeout
        return await self._rpc.gather(self._request, self.cluster_subject, op, args, wait, expect)

    async def _answer(self, subject: str, body: bytes) -> bytes | None:
        """The bus's request handler: an op's answer, or an error the bus can carry.

        An answer larger than the bus takes becomes a ``MessageTooLarge`` answer,
        so the caller hears at once instead of waiting out its timeout.
        """
        answer = await self._rpc.handle(subject, body)
        if answer is None:
            return None
        answer, too_large = answer_within_limit(self.bus, answer)
        if too_large is not None:
            self._drop_log.warning("answer on %s not sent: %s", subject, too_large)
        return answer

    async def _request(
        self, subject: str, data: bytes, timeout: float, max_replies: int | None = 1
    ) -> list[bytes]:
        """A bus request, refused with ``MessageTooLarge`` when the bus cannot carry it."""
        self.check_wire_size(data)
        return await self.bus.request(subject, data, timeout, max_replies)

    # -- inbound --------------------------------------------------------------------

    def _on_bus(self, subject: str, data: bytes) -> None:
        """The bus's sink: decode once, drop echoes, then :meth:`_on_envelope`.

        A bad envelope (or payload) never raises out of here: it is counted in
        ``bad_envelopes`` and logged, throttled, without a traceback.
        """
        try:
            env = decode_envelope(data)
            if env.origin == self.node_id and (env.sender is None or env.sender == current_pid()):
                return  # our own echo; a twin (our node id, another pid) is presence's
            self._on_envelope(env)
        except UnknownEnvelopeVersion as exc:
            self.stats.unknown_version += 1
            self._drop_log.warning("ignoring bus message on %s: %s", subject, exc)
        except (ValueError, TypeError, KeyError) as exc:
            self.stats.bad_envelopes += 1
            self._drop_log.warning("ignoring a bad bus message on %s: %r", subject, exc)

    def _on_envelope(self, env: Envelope) -> None:
        """Deliver an envelope from another node; here, everything goes to the hub."""
        if self._hub_sink is not None:
            self._hub_sink(env)

    def _on_bus_event(self, event: str, error: BaseException | None) -> None:
        """Count what the bus and the store report and pass it to the hub."""
        self.stats.record_event(event, error, self._drop_log)
        if self._bus_listener is not None:
            self._bus_listener(event, error)

    def count_bad_envelope(self) -> None:
        """Count one envelope that could not be read (``bad_envelopes``)."""
        self.stats.bad_envelopes += 1

    def _count_publish_error(self) -> None:
        self.stats.publish_errors += 1
