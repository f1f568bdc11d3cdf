"""The shared core of every hub layer: the Channels layer over one node of the bus.

:class:`HubLayer` is a complete Channels layer written once for every bus.
Subclasses only build a :class:`~wshub_channels.layers.node.Backend`: a
:class:`~wshub_channels.layers.bus.Bus` and a
:class:`~wshub_channels.layers.store.BrokerStore`.
It is a :class:`~wshub_channels.layers.node.BusNode` (interest routing, the
one publish-then-deliver sequence, remote calls, echo suppression: what the
hub uses) that adds the Channels spec:

- the local ``!`` channels of this node (:mod:`.local`: one bounded queue
  each, freed when their reader goes away);
- normal channels and their group memberships, kept in the broker by the
  store so they outlive any node (receives: :mod:`.receives`);
- groups: local fan-out that decodes the message once per node, one publish
  per ``group_send``, and ``group_add``/``group_discard`` for channels owned
  by other nodes forwarded to them as acknowledged requests.

Request/reply lives in :mod:`.rpc` and every codec in :mod:`wshub_channels.core.wire`.

Event loops: the core keeps no loop-bound state of its own beyond per-call
futures and release timers, so one layer instance serves any number of loops
in turn (test suites that give each test its own loop work). Backends that
hold loop-bound clients handle that themselves (:mod:`.homeloop`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, ClassVar

from channels.exceptions import ChannelFull, MessageTooLarge
from channels.layers import BaseChannelLayer

from ..core.names import channel_node, check_layer_name, random_token
from ..core.wire import Envelope, Kind, pack_message, unpack_message
from ..errors import ForeignChannel, LayerClosed
from .bus import NoResponders
from .local import LocalChannels
from .node import BusNode
from .receives import BrokerReceives
from .stats import LayerStats

__all__ = ["GROUPS", "HubLayer", "LayerStats"]

logger = logging.getLogger("wshub_channels.layers")

#: The interest namespace of Channels groups (rooms and users have their own).
GROUPS = "g"
#: The key Channels' routing sets on messages; a message sent with it is refused.
RESERVED_KEY = "__asgi_channel__"


class HubLayer(BusNode, BaseChannelLayer):
    """A Channels layer that knows about nodes, groups, rooms and users.

    Config (``CHANNEL_LAYERS[alias]["CONFIG"]``): ``expiry`` (60 s),
    ``capacity`` (100 per channel), ``channel_capacity`` (glob or regex ->
    capacity, compiled here), ``group_expiry`` (86400 s), ``prefix`` of bus
    subjects and keys (``"wshub"``), ``release_grace`` (2 s: how long a ``!``
    channel whose reader was cancelled keeps its memberships), ``node_id`` (a
    prefix for this node's random id; defaults to ``WSHUB["NODE_ID"]``),
    ``max_message_bytes`` (None: the backend's own limit), and
    ``request_timeout`` (5 s, for acknowledged calls to other nodes).

    A message is checked against ``max_message_bytes`` when it is encoded,
    and, once the node has started, what goes on the bus is checked against
    the bus's own limit (``Bus.max_payload``, e.g. a NATS server's
    ``max_payload``): both raise ``MessageTooLarge`` before anything is sent.
    """

    extensions: ClassVar[list[str]] = ["groups", "flush"]
    #: The largest encoded message the bus carries; None means no limit.
    transport_max_bytes: ClassVar[int | None] = None

    def __init__(
        self,
        expiry: float = 60,
        capacity: int = 100,
        channel_capacity: dict[Any, int] | None = None,
        group_expiry: float = 86400,
        prefix: str = "wshub",
        release_grace: float = 2.0,
        node_id: str | None = None,
        max_message_bytes: int | None = None,
        request_timeout: float = 5.0,
    ) -> None:
        BaseChannelLayer.__init__(self, capacity=capacity)
        self.expiry = expiry  # type: ignore[assignment]  # the stubs say int; any number works
        # Compiled here: stock layers store the raw dict and fail at first send.
        self.channel_capacity = self.compile_capacities(channel_capacity or {})  # type: ignore[assignment]
        self.group_expiry = group_expiry
        self.release_grace = release_grace
        self.max_message_bytes = max_message_bytes or self.transport_max_bytes
        BusNode.__init__(self, prefix, node_id, request_timeout)
        self._local = LocalChannels(
            self.get_capacity,
            expiry,
            release_grace,
            self.release_channel,
            self._in_a_group,
            self._count_expired,
        )
        self._receives = BrokerReceives(self.store, _closed)
        self.register_op("group_add", self.group_add)
        self.register_op("group_discard", self.group_discard)

    async def close(self) -> None:
        """Close the layer; it starts again on the next call.

        Receives waiting on it end at once with
        :class:`~wshub_channels.errors.LayerClosed`: those on ``!`` channels, and
        those on normal channels (their broker wait is cancelled first, so a
        message it had already taken goes back to the queue). Then every
        subscription is dropped and the bus closed.
        """
        self._local.cancel_all_releases()
        self._local.fail_readers(_closed)
        await self._receives.cancel_all(self.request_timeout)
        await super().close()

    # -- Channels API: names and channels -------------------------------------------

    def require_valid_channel_name(self, name: object, receive: bool = False) -> bool:
        """Channels' check plus strict UTF-8; :class:`InvalidLayerName` (a TypeError)."""
        return check_layer_name(name, "channel name", super().require_valid_channel_name, receive)

    def require_valid_group_name(self, name: object) -> bool:
        """Channels' check plus strict UTF-8; :class:`InvalidLayerName` (a TypeError)."""
        return check_layer_name(name, "group name", super().require_valid_group_name)

    async def new_channel(self, prefix: str = "specific.") -> str:
        """Return a new ``!`` channel owned by this node: ``<prefix>.<node_id>!<random>``.

        Starts the node first, so the channel is reachable from other nodes.
        """
        await self.start()
        sep = "" if prefix.endswith(".") else "."
        name = f"{prefix}{sep}{self.node_id}!{random_token(12)}"
        self.require_valid_channel_name(name)
        self._local.create(name)
        self._local.maybe_sweep(time.monotonic())
        return name

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        """Send to one channel; raise ``ChannelFull`` where this node can know."""
        self.require_valid_channel_name(channel)
        data = self._encode(message)
        if "!" in channel:
            node = self._remote_owner(channel)
            if node is not None:
                await self.start()
                env = self.envelope(Kind.DIRECT, channel, data)
                await self._publish(self.node_subject(node), env)
                return
            now = time.monotonic()
            queue = self._local.open(channel)
            if not queue.put(unpack_message(data), now):
                raise ChannelFull(f"channel {channel!r} is at capacity ({queue.capacity})")
            self._local.maybe_sweep(now)
            return
        await self.start()
        self.check_wire_size(data)
        if not await self.store.queue_push(channel, data, self.get_capacity(channel), self.expiry):
            raise ChannelFull(f"channel {channel!r} is at capacity ({self.get_capacity(channel)})")

    async def receive(self, channel: str) -> dict[str, Any]:
        """Return the next message of ``channel``, waiting for one.

        A cancelled receive on a ``!`` channel frees the channel and its
        memberships after ``release_grace`` seconds, unless a new receive on it
        starts first. A ``!`` channel this layer's :meth:`new_channel` did not
        hand out (it names another node, or no node at all) raises
        :class:`~wshub_channels.errors.ForeignChannel` at once: nobody here
        could ever fill it. :meth:`close` ends a waiting receive with
        :class:`~wshub_channels.errors.LayerClosed`.
        """
        self.require_valid_channel_name(channel)
        if "!" not in channel:
            await self.start()
            data = await self._receives.receive(channel, self.get_capacity(channel))
            return unpack_message(data)
        node = channel_node(channel)
        if node != self.node_id:
            raise _foreign(channel, node)
        queue = self._local.open(channel)
        self._local.cancel_release(channel)
        try:
            message: dict[str, Any] = await queue.get()
        except asyncio.CancelledError:
            self._local.schedule_release(channel)
            raise
        return message

    # -- Channels API: groups ------------------------------------------------------

    async def group_add(self, group: str, channel: str) -> None:
        """Add ``channel`` to ``group``; forwarded to the owning node if remote."""
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        if "!" not in channel:
            await self.start()
            await self.store.group_add(group, channel, self.group_expiry)
            return
        node = self._remote_owner(channel)
        if node is not None:
            await self._forward_membership(node, "group_add", group, channel)
            return
        self._local.open(channel)
        await self.add_interest(GROUPS, group, channel)

    async def group_discard(self, group: str, channel: str) -> None:
        """Remove ``channel`` from ``group``; forwarded to the owning node if remote."""
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        if "!" not in channel:
            await self.start()
            await self.store.group_discard(group, channel)
            return
        node = self._remote_owner(channel)
        if node is not None:
            await self._forward_membership(node, "group_discard", group, channel)
            return
        await self.discard_interest(GROUPS, group, channel)

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        """Send to every member of ``group`` with one publish; full members are skipped.

        On a shared bus the publish and the lookup of stored (normal-channel)
        members are one store call; stored members cost one more, for all
        of them together.
        """
        self.require_valid_group_name(group)
        data = self._encode(message)

        async def deliver() -> None:
            self._fanout_group(group, data, time.monotonic())

        subject = self.subject(GROUPS, group)
        stored = await self._publish_around(subject, Kind.GROUP, group, data, deliver, group)
        if stored:
            pushes = [(channel, self.get_capacity(channel)) for channel in stored]
            for pushed in await self.store.queue_push_many(pushes, data, self.expiry):
                if not pushed:
                    self._count_full_drop(group)

    async def flush(self) -> None:
        """Empty the layer: every queue, group membership and room history, here and in
        the broker."""
        self._local.clear()
        for ns, name in self._interest.all_keys():
            if ns == GROUPS:
                for member in list(self._interest.members(ns, name) or ()):
                    self._interest.discard(ns, name, member)
                await self._subs.unsubscribe(self.subject(ns, name))
        await self.store.flush()
        await self.history.flush()

    async def release_channel(self, channel: str) -> None:
        """Free a local ``!`` channel now: its queue and every membership.

        A reader still waiting on the channel is left alone (its consumer may be
        closing and will cancel it on exit); it simply receives nothing more.
        """
        self._local.drop(channel)
        await super().release_channel(channel)

    def sizes(self) -> dict[str, int]:
        """Internal table sizes; all zero on an idle layer (used by leak tests)."""
        sizes = super().sizes()
        sizes["channels"] = len(self._local)
        sizes["release_timers"] = self._local.pending_releases
        return sizes

    async def _forward_membership(self, node: str, op: str, group: str, channel: str) -> None:
        """Forward a group change to the node owning ``channel``; a gone node needs none."""
        try:
            await self.remote_call(node, op, group, channel)
        except NoResponders:
            logger.debug("%s for %s skipped: its node %s is gone", op, channel, node)

    # -- delivery ---------------------------------------------------------------------

    def _on_envelope(self, env: Envelope) -> None:
        kind = env.kind
        if kind == Kind.GROUP:
            self._fanout_group(env.target, env.payload, time.monotonic())
        elif kind == Kind.DIRECT:
            self._deliver_direct(env.target, env.payload)
        else:
            super()._on_envelope(env)

    def _fanout_group(self, group: str, data: bytes, now: float) -> None:
        """Give each local member of ``group`` its own copy of the message.

        The bytes are decoded once; members get a shallow copy of that when
        no value is a list or dict, and a fresh decode otherwise, so no two
        members (nor the sender) ever share a mutable value.
        """
        members = self._interest.members(GROUPS, group)
        if not members:
            return
        message = unpack_message(data)
        flat = not any(isinstance(value, (list, dict)) for value in message.values())
        oldest = now - self.group_expiry
        queues = self._local.queues
        stale = []
        for channel, joined in tuple(members.items()):
            queue = queues.get(channel)
            if joined < oldest or queue is None:
                stale.append(channel)
            elif not queue.put(dict(message) if flat else unpack_message(data), now):
                self._count_full_drop(group)
        for channel in stale:
            self._interest.discard(GROUPS, group, channel)

    def _deliver_direct(self, channel: str, data: bytes) -> None:
        message = unpack_message(data)  # first: a bad payload is a bad envelope
        queue = self._local.get(channel)
        if queue is None:
            self.stats.no_channel_drops += 1
            self._drop_log.warning("dropped a message for unknown local channel %s", channel)
        elif not queue.put(message, time.monotonic()):
            self.stats.full_drops += 1
            self._drop_log.warning("dropped a message for full channel %s", channel)

    def _count_full_drop(self, group: str) -> None:
        self.stats.full_drops += 1
        self._drop_log.info("group_send to %s skipped a channel at capacity", group)

    def _count_expired(self) -> None:
        self.stats.expired += 1

    # -- helpers ----------------------------------------------------------------------

    def _encode(self, message: dict[str, Any]) -> bytes:
        if isinstance(message, dict) and RESERVED_KEY in message:
            raise ValueError(
                f"message carries the reserved key {RESERVED_KEY!r}: Channels sets it "
                "itself when it routes a message to a consumer; do not send it"
            )
        data = pack_message(message)
        limit = self.max_message_bytes
        if limit is not None and len(data) > limit:
            raise MessageTooLarge(f"message is {len(data)} bytes encoded; the limit is {limit}")
        return data

    def _in_a_group(self, channel: str) -> bool:
        return bool(self._interest.names_of(channel, GROUPS))

    def _remote_owner(self, channel: str) -> str | None:
        node = channel_node(channel)
        if node is None or node == self.node_id or not self.shared:
            return None
        return node


def _foreign(channel: str, node: str | None) -> ForeignChannel:
    if node is None:
        return ForeignChannel(
            f"channel {channel!r} was not made by this layer's new_channel (it names no "
            "node), so nothing here could ever receive on it"
        )
    return ForeignChannel(
        f"channel {channel!r} belongs to another node ({node}); "
        "only the node that made it can receive on it"
    )


def _closed() -> LayerClosed:
    return LayerClosed("the channel layer was closed while this receive waited")
