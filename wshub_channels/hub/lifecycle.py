"""The hub's lifecycle, and the admission of its connections.

:class:`Lifecycle` is the part of the :class:`~wshub_channels.hub.Hub` that
is not the send and lookup API: its settings (config, limits, metrics,
hooks, middleware), its states (``new``, ``starting``, ``running``,
``draining``, ``stopped``, each announced by ``hub_state_changed``), start,
drain and shutdown, health, the idle sweeper, and the registration of the
connections it serves (handshake slots, register, unregister, user ids).

Event loops: everything here runs on the hub's loop (see
:func:`~wshub_channels.publisher.on_home_loop`).
"""

from __future__ import annotations

import asyncio
import logging
import time

from .. import signals
from ..conf import HubSettings
from ..core.membership import USERS, OutboundQueue, Registry, Slot
from ..core.presence import PresenceTable
from ..core.ratelimit import clock
from ..core.wire import Envelope
from ..errors import BusUnavailable, HubDraining, HubStopped
from ..hooks import load_hooks
from ..layers import HubLayer
from ..message import Message
from ..metrics import HubSample, counts_bytes, load_metrics, set_active_collector
from ..middleware import MiddlewareChain
from ..publisher import is_publisher_loop, on_home_loop
from ..tasks import spawn
from ..types import Client, Connection, Handler
from .events import Events, HubStats
from .health import HealthStatus, assess
from .heartbeat import Heartbeat
from .roomevents import RoomEvents
from .stopping import Stopping

__all__ = ["Lifecycle"]

logger = logging.getLogger("wshub_channels")


class Lifecycle(Stopping):
    """Settings, states, start/drain/shutdown, health and connection admission."""

    def __init__(self, layer: HubLayer, settings: HubSettings) -> None:
        self.layer = layer
        self.node_id = layer.node_id
        self.stats = HubStats()
        self.state = "new"
        self.mode = "server"  # or "publisher"; decided by the loop the hub starts on
        self.started_at: float | None = None
        self.home_loop: asyncio.AbstractEventLoop | None = None
        self._start_lock: asyncio.Lock | None = None
        self.registry = Registry(layer.interest)
        self.heartbeat = Heartbeat(layer, self.registry, type(self), lambda: self.metrics)
        self.room_events = RoomEvents(layer, self.registry, lambda: self.metrics)
        self._empty: asyncio.Event | None = None  # set when the last client leaves (drain)
        self._idle_task: asyncio.Task[None] | None = None
        self._presence_task: asyncio.Task[None] | None = None
        self._sample_task: asyncio.Task[None] | None = None
        self.apply_settings(settings)
        self._announcing: asyncio.Task[None] | None = None  # the last hub_state_changed
        self.init_stopping()

    def apply_settings(self, settings: HubSettings) -> None:
        """Take config, limits, metrics, hooks and middleware from ``settings``.

        ``get_hub`` calls this when ``WSHUB`` changed (``override_settings`` in tests).
        """
        self.settings = settings
        self.config = settings.config
        self.limits = settings.limits
        self.metrics = load_metrics(settings.metrics)
        self.counts_bytes = counts_bytes(self.metrics)  # sizes are measured only if so
        set_active_collector(self.metrics)
        self.hooks = load_hooks(settings.hooks)
        self.events = Events(self.hooks, self.metrics, self.stats)
        self.handler: Handler = MiddlewareChain.from_paths(
            self._dispatch, settings.middleware
        ).build()

    async def _dispatch(self, client: Client, msg: Message) -> None:
        """The innermost handler: hub-wide ``on_message`` hook, then the consumer's."""
        if self.hooks is not None:
            await self.hooks.on_message(client, msg)
        await client.on_message(msg)

    @property
    def presence(self) -> PresenceTable:
        """The other nodes of the cluster, as their heartbeats describe them."""
        return self.heartbeat.table

    # -- what the hub supplies ------------------------------------------------------------

    def _register_ops(self) -> None:
        raise NotImplementedError

    async def _left_rooms(self, client: Connection, rooms: frozenset[str]) -> None:
        """A client that closed was in ``rooms`` (room presence events)."""
        raise NotImplementedError

    def _on_envelope(self, env: Envelope) -> None:
        raise NotImplementedError

    # -- states ---------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.state in ("running", "draining")

    def _set_state(self, state: str) -> asyncio.Task[None] | None:
        """Enter ``state`` and announce it with ``hub_state_changed`` (once per change).

        Announcements go out in order, one after another; the returned task
        (None when nobody listens) is done once this one has been delivered.
        """
        if state == self.state:
            return None
        self.state = state
        if not signals.has_listeners(signals.hub_state_changed, type(self)):
            return None
        previous = self._announcing
        if previous is not None and previous.get_loop() is not asyncio.get_running_loop():
            previous = None

        async def announce() -> None:
            if previous is not None:
                await asyncio.wait([previous])
            await signals.fire(signals.hub_state_changed, type(self), state=state)

        self._announcing = spawn(announce(), "state signal")
        return self._announcing

    @on_home_loop
    async def start(self) -> None:
        """Start the hub on the running loop: connect the bus, install handlers (idempotent).

        On the publisher loop the hub runs in publisher mode: it sends, calls
        other nodes and reads presence, but it hosts no clients and does not
        heartbeat, so it never shows up as a node.
        """
        loop = asyncio.get_running_loop()
        if self.running and self.home_loop is loop:
            return
        if self.state == "stopped":
            raise HubStopped("the hub has shut down")
        if self.home_loop is not loop and (
            self.home_loop is None or not self.home_loop.is_running()
        ):
            self.home_loop, self._start_lock = loop, asyncio.Lock()
            self.state = "new"
        if self.home_loop is not loop or self._start_lock is None:
            return  # another live loop owns the hub; calls are forwarded there
        async with self._start_lock:
            if self.running:  # a draining hub still runs: it is not started again
                return
            self._set_state("starting")
            try:
                await self.layer.start()
            except BaseException:
                self._set_state("new")
                raise
            self.mode = "publisher" if is_publisher_loop(loop) else "server"
            self.layer.set_hub_sink(self._on_envelope)
            self.layer.set_bus_listener(self._on_bus_event)
            self._register_ops()
            self.started_at = time.monotonic()
            self.heartbeat.listen(self.settings.presence_interval)
            if self.config.idle_timeout > 0:
                self._idle_task = spawn(self._close_idle_clients(), "idle sweeper")
            if self.layer.shared and self.mode == "server":
                interval = self.settings.presence_interval
                self._presence_task = spawn(self.heartbeat.run(interval), "presence heartbeat")
            if self.metrics.sample_interval:
                self._sample_task = spawn(self._sample_metrics(), "metrics sampler")
            self._set_state("running")

    async def _sample_metrics(self) -> None:
        """Give the collector a :class:`HubSample` every ``sample_interval`` seconds
        (or every ``PRESENCE_INTERVAL``, when that is shorter)."""
        seen = self.layer.stats.snapshot()
        while self.running:
            wanted = self.metrics.sample_interval or 5.0
            await asyncio.sleep(min(wanted, self.settings.presence_interval))
            now = self.layer.stats.snapshot()
            grown = {name: value - seen.get(name, 0) for name, value in now.items()}
            seen = now
            try:
                self.metrics.observe_hub(self.hub_sample(grown))
            except Exception:
                logger.exception("the metrics collector failed to take a sample")

    def hub_sample(self, bus: dict[str, int]) -> HubSample:
        raise NotImplementedError

    async def _close_idle_clients(self) -> None:
        """Close clients that sent nothing for ``Config.idle_timeout`` seconds."""
        idle = self.config.idle_timeout
        while self.running:
            await asyncio.sleep(idle / 4)
            cutoff = clock() - idle
            for client in [c for c in self.registry.clients() if c.last_seen < cutoff]:
                self.metrics.increment_errors("idle_timeout")
                await client.close(code=1000, reason="idle timeout")

    def _on_bus_event(self, event: str, error: BaseException | None) -> None:
        """Count bus trouble; losing the bus or being cut off also goes to ``hub_error``."""
        if event == "up":
            return
        self.metrics.increment_errors(f"bus_{event}")
        if event in ("down", "dropped", "slow_consumer") and signals.has_listeners(
            signals.hub_error, type(self)
        ):
            problem = BusUnavailable(f"bus {event}: {error!r}")
            fired = signals.fire(signals.hub_error, type(self), client=None, error=problem)
            spawn(fired, "bus signal")

    def check_accepting(self) -> None:
        """Raise ``HubDraining`` or ``HubStopped`` if new handshakes are refused."""
        if self.state == "draining":
            raise HubDraining("the hub is draining")
        if self.state == "stopped":
            raise HubStopped("the hub has shut down")

    def health(self) -> HealthStatus:
        uptime = 0.0 if self.started_at is None else time.monotonic() - self.started_at
        return assess(self.state, uptime, len(self.registry), self.node_id, self.layer.bus_status())

    # -- admission and registration (called by the consumer) --------------------------------

    def reserve(self, user_id: str | None) -> Slot:
        """Hold a connection slot for a handshake, or raise the limit it would break.

        The caller gives the slot back with :meth:`unreserve` or
        :meth:`register`, on every path (``try``/``finally``).
        """
        try:
            return self.registry.reserve(user_id, self.limits)
        except Exception:
            self.metrics.increment_errors("connection_limit")
            raise

    def unreserve(self, slot: Slot) -> None:
        """Give back a slot taken by :meth:`reserve` (again is a no-op)."""
        self.registry.unreserve(slot)

    def move_reservation(self, slot: Slot, user_id: str | None) -> None:
        """Count a handshake's slot under ``user_id``, or raise and change nothing."""
        try:
            self.registry.move(slot, user_id, self.limits)
        except Exception:
            self.metrics.increment_errors("connection_limit")
            raise

    async def register(
        self, client: Connection, queue: OutboundQueue, slot: Slot | None = None
    ) -> None:
        """Make an accepted client reachable: by id, by user, and through its queue.

        ``slot`` (the handshake's) becomes the connection in the same step, so
        no other handshake can take its place in between.
        """
        if slot is not None:
            self.registry.unreserve(slot)
        self.registry.add(client, queue)
        if client.user_id is not None:
            await self.layer.add_interest(USERS, client.user_id, client.id)

    async def unregister(self, client: Connection) -> None:
        """Forget a client at once: its lookups, its channel, its groups and rooms."""
        if client.id not in self.registry:
            return
        rooms = self.registry.rooms_of(client.id)
        self.registry.remove(client.id)
        if not len(self.registry) and self._empty is not None:
            self._empty.set()
        await self.layer.release_channel(client.id)
        for room in rooms:
            self.heartbeat.touch(room)
            if not self.registry.room_size(room):
                self.metrics.decrement_rooms()
        await self._left_rooms(client, rooms)

    async def change_user(self, client: Connection, old: str | None, new: str | None) -> None:
        """Move a registered client from user ``old`` to ``new`` (either may be None).

        Raises ``MaxUserConnectionsReached`` (counting ``new``'s handshakes in
        progress) before anything changes: a refused client stays under ``old``.
        """
        if client.id not in self.registry:
            return
        if new is not None:
            try:
                self.registry.check_user_limit(new, self.limits)
            except Exception:
                self.metrics.increment_errors("connection_limit")
                raise
            await self.layer.add_interest(USERS, new, client.id)
        if old is not None:
            await self.layer.discard_interest(USERS, old, client.id)
