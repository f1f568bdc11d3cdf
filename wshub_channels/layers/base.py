"""The shared core of every hub layer: Channels semantics, interest, fan-out.

:class:`HubLayer` is a complete Channels layer written once for every bus.
Subclasses only build a :class:`~wshub_channels.layers.transport.Transport`.
The core owns:

- the local ``!`` channels of this node (one bounded queue each, so capacity
  is per channel and one slow consumer never blocks its neighbours);
- membership and interest: a node subscribes to a group's (or room's, or
  user's) subject only while it has a local member, so every send is one
  publish and only interested nodes receive it;
- local fan-out: the payload is decoded once per node and shared;
- echo suppression (a node ignores envelopes it published itself; it has
  already delivered those locally);
- forwarding of ``group_add``/``group_discard`` for channels owned by other
  nodes, as acknowledged requests;
- freeing a channel's memberships when its reader goes away.

Event loops: the core keeps no loop-bound state of its own beyond per-call
futures, so one layer instance serves any number of loops in turn (test
suites that give each test its own loop work). Transports that hold
loop-bound clients handle that themselves.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import msgpack
from channels.exceptions import ChannelFull, MessageTooLarge
from channels.layers import BaseChannelLayer

from .. import errors
from ..log import Throttle
from ..tasks import spawn
from .channelqueue import ChannelQueue
from .envelope import (
    Envelope,
    Kind,
    UnknownEnvelopeVersion,
    decode_envelope,
    encode_envelope,
    pack_message,
    unpack_message,
)
from .interest import Interest
from .names import channel_node, make_node_id, random_token, subject_token
from .transport import BusStatus, NoResponders, Transport

__all__ = ["GROUPS", "HubLayer", "LayerStats"]

logger = logging.getLogger("wshub_channels.layers")

GROUPS = "g"
Op = Callable[..., Awaitable[Any]]
HubSink = Callable[[Envelope], None]
BusListener = Callable[[str, BaseException | None], None]


@dataclass
class LayerStats:
    """Counters of everything the layer drops or rejects; never decremented."""

    full_drops: int = 0  # group_send or remote send skipped a channel at capacity
    expired: int = 0  # messages that expired unread (counted when noticed)
    no_channel_drops: int = 0  # direct sends to a local channel that no longer exists
    unknown_version: int = 0  # envelopes from an unknown major version
    bad_envelopes: int = 0  # undecodable bus messages
    publish_errors: int = 0  # publishes the transport failed
    bus_down: int = 0  # times the bus connection was lost
    bus_up: int = 0  # times it was (re)established
    subscriber_dropped: int = 0  # times the broker cut our subscriber off (output buffer)

    def snapshot(self) -> dict[str, int]:
        return asdict(self)


class HubLayer(BaseChannelLayer):
    """A Channels layer that knows about nodes, groups, rooms and users.

    Config (``CHANNEL_LAYERS[alias]["CONFIG"]``): ``expiry`` (60 s),
    ``capacity`` (100 per channel), ``channel_capacity`` (glob or regex ->
    capacity, compiled here), ``group_expiry`` (86400 s), ``prefix`` of bus
    subjects and keys (``"wshub"``), ``release_grace`` (2 s: how long a ``!``
    channel whose reader was cancelled keeps its memberships), ``node_id`` (a
    prefix for this node's random id; defaults to ``WSHUB["NODE_ID"]``),
    ``max_message_bytes`` (None: the transport's own limit), and
    ``request_timeout`` (5 s, for acknowledged calls to other nodes).
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
        super().__init__(capacity=capacity)
        self.expiry = expiry  # type: ignore[assignment]  # the stubs say int; any number works
        # Compiled here: stock layers store the raw dict and fail at first send.
        self.channel_capacity = self.compile_capacities(channel_capacity or {})  # type: ignore[assignment]
        self.group_expiry = group_expiry
        self.prefix = prefix
        self.release_grace = release_grace
        self.request_timeout = request_timeout
        if node_id is None:
            from ..conf import get_settings

            node_id = get_settings().node_id
        self.node_id = make_node_id(node_id)
        self.max_message_bytes = max_message_bytes or self.transport_max_bytes
        self.stats = LayerStats()
        self._channels: dict[str, ChannelQueue] = {}
        self._interest = Interest()
        # subject -> True once subscribed, or the pending subscribe future.
        self._subs: dict[str, asyncio.Future[None] | bool] = {}
        self._release_timers: dict[str, asyncio.TimerHandle] = {}
        self._ops: dict[str, Op] = {
            "group_add": self.group_add,
            "group_discard": self.group_discard,
        }
        self._hub_sink: HubSink | None = None
        self._bus_listener: BusListener | None = None
        self._next_sweep = time.monotonic() + self.expiry
        self._drop_log = Throttle(logger, 10.0)
        self._started = False
        self.transport = self.make_transport()
        self.transport.set_sink(self._on_bus)
        self.transport.set_request_handler(self._on_request)
        self.transport.set_reporter(self._on_transport_event)

    def make_transport(self) -> Transport:
        """Build this backend's transport (the only thing a backend supplies)."""
        raise NotImplementedError

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
        """Connect the transport and subscribe to this node's own subjects (idempotent)."""
        if self._started:
            return
        self._started = True
        try:
            await self.transport.connect()
            await self._subscribe(self.node_subject(self.node_id))
            await self._subscribe(self.cluster_subject)
        except BaseException:
            self._started = False
            raise

    async def close(self) -> None:
        """Drop every subscription and close the transport. The layer can start again."""
        for handle in self._release_timers.values():
            handle.cancel()
        self._release_timers.clear()
        self._subs.clear()
        self._started = False
        await self.transport.close()

    def bus_status(self) -> BusStatus:
        return self.transport.status()

    # -- Channels API: channels ----------------------------------------------------

    async def new_channel(self, prefix: str = "specific.") -> str:
        """Return a new ``!`` channel owned by this node: ``<prefix>.<node_id>!<random>``.

        Starts the node first, so the channel is reachable from other nodes.
        """
        await self.start()
        sep = "" if prefix.endswith(".") else "."
        name = f"{prefix}{sep}{self.node_id}!{random_token(12)}"
        self.require_valid_channel_name(name)
        self._channels[name] = self._new_queue(name)
        self._maybe_sweep(time.monotonic())
        return name

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        """Send to one channel; raise ``ChannelFull`` where this node can know."""
        self.require_valid_channel_name(channel)
        data = self._encode(message)
        if "!" in channel:
            node = channel_node(channel)
            if node is not None and node != self.node_id and self.transport.shared:
                await self.start()
                env = encode_envelope(Kind.DIRECT, self.node_id, channel, data)
                await self._publish(self.node_subject(node), env)
                return
            now = time.monotonic()
            queue = self._local_queue(channel)
            if not queue.put(unpack_message(data), now):
                raise ChannelFull(f"channel {channel!r} is at capacity ({queue.capacity})")
            self._maybe_sweep(now)
            return
        await self.start()
        if not await self.transport.queue_push(
            channel, data, self.get_capacity(channel), self.expiry
        ):
            raise ChannelFull(f"channel {channel!r} is at capacity ({self.get_capacity(channel)})")

    async def receive(self, channel: str) -> dict[str, Any]:
        """Return the next message of ``channel``, waiting for one.

        A cancelled receive on a ``!`` channel frees the channel and its
        memberships after ``release_grace`` seconds, unless a new receive on it
        starts first.
        """
        self.require_valid_channel_name(channel)
        if "!" not in channel:
            await self.start()
            return unpack_message(await self.transport.queue_pop(channel))
        queue = self._local_queue(channel)
        timer = self._release_timers.pop(channel, None)
        if timer is not None:
            timer.cancel()
        try:
            message: dict[str, Any] = await queue.get()
        except asyncio.CancelledError:
            self._schedule_release(channel)
            raise
        return message

    # -- Channels API: groups ------------------------------------------------------

    async def group_add(self, group: str, channel: str) -> None:
        """Add ``channel`` to ``group``; forwarded to the owning node if remote."""
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        if "!" not in channel:
            await self.start()
            await self.transport.store_group_add(group, channel, self.group_expiry)
            return
        node = self._remote_owner(channel)
        if node is not None:
            await self._forward_membership(node, "group_add", group, channel)
            return
        self._local_queue(channel)
        await self.add_interest(GROUPS, group, channel)

    async def group_discard(self, group: str, channel: str) -> None:
        """Remove ``channel`` from ``group``; forwarded to the owning node if remote."""
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        if "!" not in channel:
            await self.start()
            await self.transport.store_group_discard(group, channel)
            return
        node = self._remote_owner(channel)
        if node is not None:
            await self._forward_membership(node, "group_discard", group, channel)
            return
        await self.discard_interest(GROUPS, group, channel)

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        """Send to every member of ``group`` with one publish; full members are skipped."""
        self.require_valid_group_name(group)
        data = self._encode(message)
        await self.start()
        sending = None
        if self.transport.shared:
            sending = await self.start_publish(self.subject(GROUPS, group), Kind.GROUP, group, data)
        self._fanout_group(group, data, time.monotonic())
        if sending is not None:
            await sending
        members = await self.transport.store_group_members(group)
        for channel in members:
            pushed = await self.transport.queue_push(
                channel, data, self.get_capacity(channel), self.expiry
            )
            if not pushed:
                self._count_full_drop(group)

    async def flush(self) -> None:
        """Empty the layer: every queue and group membership, here and in the broker."""
        for handle in self._release_timers.values():
            handle.cancel()
        self._release_timers.clear()
        for name, queue in list(self._channels.items()):
            queue.items.clear()
            if not queue.waiters:
                del self._channels[name]
        for ns, name in self._interest.all_keys():
            if ns == GROUPS:
                for member in list(self._interest.members(ns, name) or ()):
                    self._interest.discard(ns, name, member)
                await self._unsubscribe(self.subject(ns, name))
        await self.transport.flush()

    # -- interest (shared with the hub) --------------------------------------------

    async def add_interest(self, ns: str, name: str, member: str) -> None:
        """Make ``member`` a local member of ``name``; subscribe on the first one."""
        subject = self.subject(ns, name)
        if self._interest.add(ns, name, member, time.monotonic()) or subject not in self._subs:
            await self.start()
            await self._subscribe(subject)

    async def discard_interest(self, ns: str, name: str, member: str) -> None:
        """Remove a local membership; unsubscribe when the last member leaves."""
        if self._interest.discard(ns, name, member):
            await self._unsubscribe(self.subject(ns, name))

    def local_members(self, ns: str, name: str) -> dict[str, float] | None:
        """Return the live table of local members of ``name`` (member -> joined time)."""
        return self._interest.members(ns, name)

    def local_names(self, ns: str) -> list[str]:
        """Return every name in ``ns`` with a local member."""
        return self._interest.names(ns)

    async def release_channel(self, channel: str) -> None:
        """Free a local ``!`` channel now: its queue and every membership.

        A reader still waiting on the channel is left alone (its consumer may be
        closing and will cancel it on exit); it simply receives nothing more.
        """
        timer = self._release_timers.pop(channel, None)
        if timer is not None:
            timer.cancel()
        self._channels.pop(channel, None)
        for ns, name in self._interest.remove_member(channel):
            await self._unsubscribe(self.subject(ns, name))

    def set_bus_listener(self, listener: BusListener | None) -> None:
        """Install the hub's handler of bus events: what the transport reports
        ("down", "up", "dropped", "expired", "bad_frame") and "publish_failed"."""
        self._bus_listener = listener

    def set_hub_sink(self, sink: HubSink | None) -> None:
        """Install the hub's handler for room, user, broadcast and client envelopes."""
        self._hub_sink = sink

    def register_op(self, name: str, op: Op) -> None:
        """Register a coroutine other nodes may call with :meth:`remote_call`."""
        self._ops[name] = op

    async def publish(self, subject: str, kind: int, target: str, payload: bytes) -> None:
        """Publish one envelope on the bus (the hub's entry to the transport)."""
        await self.start()
        await self._publish(subject, encode_envelope(kind, self.node_id, target, payload))

    async def start_publish(
        self, subject: str, kind: int, target: str, payload: bytes
    ) -> asyncio.Future[None]:
        """Put one envelope on the wire and return the publish still in flight.

        The caller does its local fan-out while the broker and the other nodes
        work, then awaits the returned future (which raises
        :class:`~wshub_channels.errors.BusUnavailable` if the publish failed).
        Local delivery never waits for the bus: a dead or hung broker only
        delays the final await, by at most the transport's own timeout.
        """
        env = encode_envelope(kind, self.node_id, target, payload)
        sending = asyncio.ensure_future(self._publish(subject, env))
        await asyncio.sleep(0)  # one loop turn: the publish's first step writes it out
        return sending

    async def publish_and_deliver(
        self,
        subject: str,
        kind: int,
        target: str,
        payload: bytes,
        deliver: Callable[[], Awaitable[None]],
    ) -> None:
        """Publish for the other nodes, deliver here meanwhile, then await the publish."""
        if not self.transport.shared:
            await deliver()
            return
        sending = await self.start_publish(subject, kind, target, payload)
        try:
            await deliver()
        finally:
            await sending

    def sizes(self) -> dict[str, int]:
        """Internal table sizes; all zero on an idle layer (used by leak tests)."""
        sizes = self._interest.sizes()
        sizes["channels"] = len(self._channels)
        sizes["release_timers"] = len(self._release_timers)
        own = {self.node_subject(self.node_id), self.cluster_subject}
        sizes["interest_subscriptions"] = sum(1 for subject in self._subs if subject not in own)
        return sizes

    # -- remote calls ---------------------------------------------------------------

    async def remote_call(
        self, node: str, op: str, *args: Any, timeout: float | None = None
    ) -> Any:
        """Run ``op`` on another node and return its result, raising its typed error.

        Raises :class:`~wshub_channels.layers.transport.NoResponders` when the
        bus knows nobody listens on that node's subject (the node is gone), and
        :class:`~wshub_channels.errors.HubTimeout` when no answer comes.
        """
        await self.start()
        wait = self.request_timeout if timeout is None else timeout
        body = msgpack.packb([op, list(args)], use_bin_type=True)
        try:
            replies = await self.transport.request(self.node_subject(node), body, wait, 1)
        except (NoResponders, errors.HubError):
            raise
        except Exception as exc:
            self.stats.publish_errors += 1
            raise errors.BusUnavailable(f"calling node {node} failed: {exc!r}") from exc
        if not replies:
            raise errors.HubTimeout(f"node {node} did not answer {op!r} within {wait:g}s")
        ok, result, message = msgpack.unpackb(replies[0], raw=False)
        if ok:
            return result
        raise _error_from_name(result, message)

    async def _forward_membership(self, node: str, op: str, group: str, channel: str) -> None:
        """Forward a group change to the node owning ``channel``; a gone node needs none."""
        try:
            await self.remote_call(node, op, group, channel)
        except NoResponders:
            logger.debug("%s for %s skipped: its node %s is gone", op, channel, node)

    async def _on_request(self, subject: str, data: bytes) -> bytes | None:
        try:
            op_name, args = msgpack.unpackb(data, raw=False)
            op = self._ops[op_name]
        except Exception:
            self.stats.bad_envelopes += 1
            return msgpack.packb([False, "ValueError", "malformed request"], use_bin_type=True)  # type: ignore[no-any-return]
        try:
            result = await op(*args)
        except Exception as exc:
            reply = [False, type(exc).__name__, str(exc)]
        else:
            reply = [True, result, None]
        return msgpack.packb(reply, use_bin_type=True)  # type: ignore[no-any-return]

    # -- delivery ---------------------------------------------------------------------

    def _on_bus(self, subject: str, data: bytes) -> None:
        """The transport's sink: decode once, drop echoes, deliver locally."""
        try:
            env = decode_envelope(data)
        except UnknownEnvelopeVersion as exc:
            self.stats.unknown_version += 1
            self._drop_log.warning("ignoring bus message on %s: %s", subject, exc)
            return
        except ValueError as exc:
            self.stats.bad_envelopes += 1
            self._drop_log.warning("ignoring bus message on %s: %s", subject, exc)
            return
        if env.origin == self.node_id:
            return
        kind = env.kind
        if kind == Kind.GROUP:
            self._fanout_group(env.target, env.payload, time.monotonic())
        elif kind == Kind.DIRECT:
            self._deliver_direct(env.target, env.payload)
        elif self._hub_sink is not None:
            self._hub_sink(env)

    def _fanout_group(self, group: str, data: bytes, now: float) -> None:
        members = self._interest.members(GROUPS, group)
        if not members:
            return
        message = unpack_message(data)
        oldest = now - self.group_expiry
        channels = self._channels
        stale = []
        for channel, joined in tuple(members.items()):
            queue = channels.get(channel)
            if joined < oldest or queue is None:
                stale.append(channel)
            elif not queue.put(dict(message), now):
                self._count_full_drop(group)
        for channel in stale:
            self._interest.discard(GROUPS, group, channel)

    def _deliver_direct(self, channel: str, data: bytes) -> None:
        queue = self._channels.get(channel)
        if queue is None:
            self.stats.no_channel_drops += 1
            self._drop_log.warning("dropped a message for unknown local channel %s", channel)
        elif not queue.put(unpack_message(data), time.monotonic()):
            self.stats.full_drops += 1
            self._drop_log.warning("dropped a message for full channel %s", channel)

    def _count_full_drop(self, group: str) -> None:
        self.stats.full_drops += 1
        self._drop_log.info("group_send to %s skipped a channel at capacity", group)

    async def _publish(self, subject: str, data: bytes) -> None:
        try:
            await self.transport.publish(subject, data)
        except Exception as exc:
            self.stats.publish_errors += 1
            self._drop_log.warning("publish on %s failed: %r", subject, exc)
            if self._bus_listener is not None:
                self._bus_listener("publish_failed", exc)
            raise errors.BusUnavailable(f"the bus did not take a publish: {exc!r}") from exc

    def _on_transport_event(self, event: str, error: BaseException | None) -> None:
        """Count what the transport reports and pass it to the hub."""
        if event == "down":
            self.stats.bus_down += 1
            logger.warning("bus connection lost: %r", error)
        elif event == "up":
            self.stats.bus_up += 1
            logger.info("bus connection established")
        elif event == "dropped":
            self.stats.subscriber_dropped += 1
            logger.error("the broker dropped this node's subscriber: %s", error)
        elif event == "expired":
            self.stats.expired += 1
        elif event == "bad_frame":
            self.stats.bad_envelopes += 1
            self._drop_log.warning("ignoring a malformed bus frame: %r", error)
        if self._bus_listener is not None:
            self._bus_listener(event, error)

    # -- helpers ----------------------------------------------------------------------

    def _encode(self, message: dict[str, Any]) -> bytes:
        data = pack_message(message)
        limit = self.max_message_bytes
        if limit is not None and len(data) > limit:
            raise MessageTooLarge(f"message is {len(data)} bytes encoded; the limit is {limit}")
        return data

    def _new_queue(self, name: str) -> ChannelQueue:
        return ChannelQueue(name, self.get_capacity(name), self.expiry)

    def _local_queue(self, channel: str) -> ChannelQueue:
        queue = self._channels.get(channel)
        if queue is None:
            queue = self._channels[channel] = self._new_queue(channel)
        return queue

    def _remote_owner(self, channel: str) -> str | None:
        node = channel_node(channel)
        if node is None or node == self.node_id or not self.transport.shared:
            return None
        return node

    def _schedule_release(self, channel: str) -> None:
        loop = asyncio.get_running_loop()
        old = self._release_timers.pop(channel, None)
        if old is not None:
            old.cancel()
        self._release_timers[channel] = loop.call_later(
            self.release_grace, self._release_later, channel
        )

    def _release_later(self, channel: str) -> None:
        self._release_timers.pop(channel, None)
        queue = self._channels.get(channel)
        if queue is not None and queue.waiters:
            return  # a new reader arrived meanwhile
        spawn(self.release_channel(channel), "channel release")

    def _maybe_sweep(self, now: float) -> None:
        """Drop orphan local channels: empty, unread, in no group, idle past expiry."""
        if now < self._next_sweep:
            return
        self._next_sweep = now + max(self.expiry / 2, 1.0)
        idle_before = now - self.expiry
        for name, queue in list(self._channels.items()):
            queue.purge_expired(now)
            if (
                not queue.items
                and not queue.waiters
                and queue.last_active < idle_before
                and name not in self._release_timers
                and not self._interest.names_of(name, GROUPS)
            ):
                del self._channels[name]

    async def _subscribe(self, subject: str) -> None:
        state = self._subs.get(subject)
        if state is True:
            return
        if state is None or state is False:
            state = self._subs[subject] = asyncio.ensure_future(self.transport.subscribe(subject))
        try:
            await asyncio.shield(state)
        except BaseException:
            if state.done() and self._subs.get(subject) is state:
                del self._subs[subject]
            raise
        if self._subs.get(subject) is state:
            self._subs[subject] = True

    async def _unsubscribe(self, subject: str) -> None:
        state = self._subs.pop(subject, None)
        if state is None:
            return
        if not isinstance(state, bool):
            await asyncio.shield(state)
        await self.transport.unsubscribe(subject)


def _error_from_name(name: str, message: str) -> Exception:
    cls = getattr(errors, name, None)
    if isinstance(cls, type) and issubclass(cls, Exception):
        return cls(message)
    builtin = {"TypeError": TypeError, "ValueError": ValueError, "ChannelFull": ChannelFull}
    return builtin.get(name, errors.HubError)(message)
