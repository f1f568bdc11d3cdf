"""The Hub: the public API for sending, membership and lookups, and ``get_hub``.

One hub exists per hub layer (so per process and ``WSHUB["CHANNEL_LAYER"]``);
:func:`get_hub` returns it. :class:`Hub` is a façade: it owns one component
per concept and forwards each public call to the one that answers it:

- :attr:`Hub.policy` (:mod:`.policy`): settings, metrics, hooks, middleware;
- :attr:`Hub.lifecycle` (:mod:`.lifecycle`): states, start, health, tasks;
- :attr:`Hub.connections` (:mod:`.connections`): admission and registration;
- :attr:`Hub.delivery` (:mod:`.delivery`): broadcasts, room and user sends;
- :attr:`Hub.membership` (:mod:`.membership`): joins, leaves, per-client calls;
- :attr:`Hub.cluster` (:mod:`.cluster`): global counts and cluster queries;
- :attr:`Hub.stopping` (:mod:`.stopping`): drain and shutdown;
- :attr:`Hub.heartbeat` (:mod:`.heartbeat`) and :attr:`Hub.room_events`
  (:mod:`.roomevents`): presence over the bus.

Every send goes through the layer: one envelope is published for the other
nodes when the bus is shared, and the local clients are served from this
node's registry by one delivery loop, so a cluster behaves as one hub.

Event loops: the hub belongs to the loop it started on (the server's). A
call from another running loop, such as ``async_to_sync`` in a worker thread,
is forwarded to that loop, so client sockets are only ever touched there.
The hub never imports the consumer: it sees clients through
:class:`~wshub_channels.types.Client`.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Iterable
from typing import Any

from channels.layers import get_channel_layer
from django.core.exceptions import ImproperlyConfigured

from ..conf import HubSettings, get_settings
from ..config import Config, Limits
from ..core.history import HistoryPage, Position, Recovery
from ..core.listing import ClientInfo, ClusterPage
from ..core.membership import ROOMS, USERS, Registry
from ..core.names import validate_room, validate_user_id
from ..core.presence import NodeInfo, PresenceTable
from ..core.wire import Kind
from ..layers import HubLayer
from ..message import check_text, dump_json
from ..metrics import MetricsCollector
from ..publisher import on_home_loop
from ..types import Client, Data
from .cluster import ClusterQueries
from .connections import Connections
from .delivery import Delivery
from .health import HealthStatus
from .heartbeat import Heartbeat
from .lifecycle import Lifecycle
from .membership import Membership
from .policy import Policy
from .roomevents import RoomEvents
from .stopping import Stopping

__all__ = ["Hub", "get_hub"]

Exclude = Iterable[Client | str]


class Hub:
    """The hub of one node. Use :func:`get_hub` rather than building one."""

    def __init__(self, layer: HubLayer, settings: HubSettings) -> None:
        self.layer = layer
        self.policy = policy = Policy(settings, type(self))
        self.lifecycle = lifecycle = Lifecycle(layer, policy)
        registry = Registry(layer.interest)
        self.heartbeat = Heartbeat(layer, registry, type(self), lambda: policy.metrics)
        self.room_events = RoomEvents(layer, registry, lambda: policy.metrics)
        parts = (layer, policy, registry, self.heartbeat, self.room_events)
        self.connections = Connections(*parts)
        self.delivery = Delivery(*parts)
        self.membership = Membership(*parts, self.delivery.history)
        self.cluster = ClusterQueries(layer, lifecycle, registry, self.heartbeat)
        self.stopping = Stopping(lifecycle, self.connections, self.heartbeat)
        self.stopping.register_ops()  # answered even before start: a drain of a new hub
        self._registry = registry

    # -- what the surfaces read ------------------------------------------------------

    @property
    def node_id(self) -> str:
        return self.layer.node_id

    @property
    def home_loop(self) -> asyncio.AbstractEventLoop | None:
        return self.lifecycle.home_loop

    @property
    def state(self) -> str:
        """``new``, ``starting``, ``running``, ``draining`` or ``stopped``."""
        return self.lifecycle.state

    @property
    def running(self) -> bool:
        return self.lifecycle.running

    @property
    def mode(self) -> str:
        """``server``, or ``publisher`` on the publisher loop (hosts no clients)."""
        return self.lifecycle.mode

    @property
    def settings(self) -> HubSettings:
        return self.policy.settings

    @property
    def config(self) -> Config:
        return self.policy.config

    @property
    def limits(self) -> Limits:
        return self.policy.limits

    @property
    def metrics(self) -> MetricsCollector:
        return self.policy.metrics

    @property
    def presence(self) -> PresenceTable:
        """The other nodes of the cluster, as their heartbeats describe them."""
        return self.heartbeat.table

    # -- lifecycle ---------------------------------------------------------------------

    @on_home_loop
    async def start(self) -> None:
        """Start the hub on the running loop: connect the bus, install handlers (idempotent).

        On the publisher loop the hub runs in publisher mode: it sends, calls
        other nodes and reads presence, but it hosts no clients and does not
        heartbeat, so it never shows up as a node.
        """
        await self.lifecycle.start(self._wire)

    def _wire(self) -> None:
        """Once the layer started: the sink, every component's ops, the tasks."""
        layer, lifecycle, config = self.layer, self.lifecycle, self.policy.config
        settings = self.policy.settings
        layer.set_hub_sink(self.delivery.receive)
        self.membership.register_ops()
        self.cluster.register_ops()
        self.heartbeat.listen(settings.presence_interval)
        if config.idle_timeout > 0:
            lifecycle.spawn_task(self.connections.close_idle(), "idle sweeper")
        if layer.shared and lifecycle.mode == "server":
            interval = settings.presence_interval
            lifecycle.spawn_task(self.heartbeat.run(interval), "presence heartbeat")
        if self.policy.metrics.sample_interval:
            lifecycle.spawn_task(lifecycle.sample_metrics(self.cluster.sample), "metrics sampler")

    def health(self) -> HealthStatus:
        return self.lifecycle.health(len(self._registry))

    @on_home_loop
    async def start_drain(self, timeout: float | None = None) -> bool:
        """Begin a drain (or join the one under way) without waiting for it.

        For callers on any loop (``/drainz``). Returns True if the hub is
        draining now, False if it is not running.
        """
        return self.stopping.begin(timeout) is not None

    @on_home_loop
    async def drain(self, timeout: float | None = None) -> None:
        """Drain this node: refuse new handshakes, then let its clients go.

        Clients keep being served while they leave by themselves. Those
        still connected after ``timeout`` (default ``WSHUB["DRAIN_TIMEOUT"]``)
        are closed with 1001 (4001 under daphne), their queued messages
        written first, in batches of ``WSHUB["DRAIN_BATCH"]`` every 0.2 s, and
        their disconnect hooks run. Returns once no client is left.
        Concurrent calls join one drain; the hub stays ``draining`` until
        :meth:`shutdown`.
        """
        await self.stopping.drain(timeout)

    @on_home_loop
    async def shutdown(self) -> None:
        """Stop the hub; idempotent, and concurrent calls join one shutdown.

        Closes every client still connected with 1001 (its queued frames
        first) and runs every disconnect hook and signal, says goodbye to
        the cluster, closes the layer, and enters ``stopped``. Call
        :meth:`drain` first to let clients leave on their own.
        """
        await self.stopping.shutdown()

    # -- sends -----------------------------------------------------------------------

    @on_home_loop
    async def broadcast(
        self, data: Data, exclude: Exclude = (), timeout: float | None = None
    ) -> None:
        """Send ``data`` to every client on every node (text for str, binary for bytes)."""
        await self.start()
        subject = self.layer.cluster_subject
        await self.delivery.send(Kind.BROADCAST, "", subject, data, exclude, timeout)

    async def broadcast_text(
        self, text: str, exclude: Exclude = (), timeout: float | None = None
    ) -> None:
        await self.broadcast(str(text), exclude, timeout)

    async def broadcast_json(
        self, obj: Any, exclude: Exclude = (), timeout: float | None = None
    ) -> None:
        """Encode ``obj`` once and broadcast it as a text frame."""
        await self.broadcast(dump_json(obj), exclude, timeout)

    async def broadcast_raw_json(
        self, raw: bytes | str, exclude: Exclude = (), timeout: float | None = None
    ) -> None:
        """Broadcast already-encoded JSON as a text frame."""
        await self.broadcast(
            raw.decode("utf-8") if isinstance(raw, bytes) else raw, exclude, timeout
        )

    @on_home_loop
    async def broadcast_to_room(
        self, room: str, data: Data, exclude: Exclude = (), timeout: float | None = None
    ) -> None:
        """Send ``data`` to every member of ``room`` on every node."""
        room = validate_room(room)
        await self.start()
        subject = self.layer.subject(ROOMS, room)
        await self.delivery.send(Kind.ROOM, room, subject, data, exclude, timeout)

    @on_home_loop
    async def send_to_user(self, user_id: str, data: Data, timeout: float | None = None) -> None:
        """Send ``data`` to every connection of ``user_id``, on every node."""
        user_id = validate_user_id(user_id)
        if timeout is None and self.lifecycle.running and not self.layer.shared:
            await self.delivery.send_local(USERS, user_id, data)  # no bus: a lookup, a push
            return
        await self.start()
        subject = self.layer.subject(USERS, user_id)
        await self.delivery.send(Kind.USER, user_id, subject, data, (), timeout)

    # -- one client, wherever it is -----------------------------------------------------

    @on_home_loop
    async def send_to_client(
        self, client: Client | str, data: Data, timeout: float | None = None
    ) -> None:
        """Send ``data`` to one client anywhere; raise ``ClientNotFound`` if no node has it."""
        local = self._registry.get(client if isinstance(client, str) else getattr(client, "id", ""))
        if local is not None:  # a client of this node: a lookup and a push (send_data checks)
            await local.send_data(data, timeout)
            return
        if isinstance(data, str):
            check_text(data)
        await self.start()
        args = (data,) if timeout is None else (data, timeout)
        await self.membership.call(client, "send_to_client", *args)

    @on_home_loop
    async def join_room(
        self, client: Client | str, room: str, since: Position | None = None
    ) -> Recovery:
        """Add a client (local or on another node) to ``room``; ``since``: see
        :meth:`HubClient.join_room <wshub_channels.connection.client.HubClient.join_room>`."""
        await self.start()
        return await self.membership.join(client, room, since)

    @on_home_loop
    async def history(
        self, room: str, since: Position | None = None, limit: int | None = None
    ) -> HistoryPage:
        """What ``room`` keeps after ``since`` (the newest ``limit`` without it): see
        :class:`~wshub_channels.core.history.HistoryPage`. Raises ``HistoryUnavailable``
        (the layer keeps none) or ``BusUnavailable``; no state reads ``Position(0, "")``."""
        room = validate_room(room)
        await self.start()
        return await self.delivery.history.read(room, since, limit)

    @on_home_loop
    async def leave_room(self, client: Client | str, room: str) -> None:
        """Remove a client (local or on another node) from ``room``."""
        await self.start()
        await self.membership.call(client, "leave_room", room)

    @on_home_loop
    async def leave_all_rooms(self, client: Client | str) -> None:
        await self.start()
        await self.membership.call(client, "leave_all_rooms")

    @on_home_loop
    async def disconnect(self, client: Client | str, code: int = 1000) -> None:
        await self.start()
        await self.membership.call(client, "disconnect", code)

    # -- local lookups (this node, no bus) ----------------------------------------------

    def clients(self) -> list[Client]:
        return list(self._registry.clients())

    def client_count(self) -> int:
        return len(self._registry)

    def get_client(self, client_id: str) -> Client | None:
        return self._registry.get(client_id)

    def get_client_by_user_id(self, user_id: str) -> Client | None:
        clients = self._registry.user_clients(user_id)
        return clients[0] if clients else None

    def get_clients_by_user_id(self, user_id: str) -> list[Client]:
        return list(self._registry.user_clients(user_id))

    def room_clients(self, room: str) -> list[Client]:
        return list(self._registry.room_clients(validate_room(room)))

    def room_count(self, room: str) -> int:
        return self._registry.room_size(validate_room(room))

    def room_names(self) -> list[str]:
        return self._registry.room_names()

    def room_exists(self, room: str) -> bool:
        return self.room_count(room) > 0

    # -- the whole cluster (see :mod:`.cluster`) ------------------------------------------

    @on_home_loop
    async def global_client_count(self, timeout: float | None = None) -> int:
        """How many clients the whole cluster has."""
        await self.start()
        return await self.cluster.global_client_count(timeout)

    @on_home_loop
    async def global_room_count(self, room: str, timeout: float | None = None) -> int:
        """How many clients are in ``room`` on every node."""
        room = validate_room(room)
        await self.start()
        return await self.cluster.global_room_count(room, timeout)

    @on_home_loop
    async def global_user_count(self, exact: bool = True, timeout: float | None = None) -> int:
        """How many distinct users are connected anywhere (see :mod:`.cluster`)."""
        await self.start()
        return await self.cluster.global_user_count(exact, timeout)

    @on_home_loop
    async def find_client(self, client_id: str, timeout: float | None = None) -> ClientInfo | None:
        """Describe client ``client_id`` wherever it is, or return None if no node has it."""
        await self.start()
        return await self.cluster.find_client(client_id, timeout)

    @on_home_loop
    async def cluster_clients(
        self,
        room: str | None = None,
        user_id: str | None = None,
        limit: int = 100,
        offset: int = 0,
        timeout: float | None = None,
        node: str | None = None,
    ) -> ClusterPage:
        """One page of the clients of the cluster, ordered by (node id, client id)."""
        room = None if room is None else validate_room(room)
        user_id = None if user_id is None else validate_user_id(user_id)
        await self.start()
        return await self.cluster.cluster_clients(room, user_id, limit, offset, timeout, node)

    @on_home_loop
    async def nodes(self, timeout: float | None = None) -> list[NodeInfo]:
        """Every node of the cluster (this one included when it serves), by node id."""
        await self.start()
        return await self.cluster.nodes(timeout)


_hubs: weakref.WeakKeyDictionary[HubLayer, Hub] = weakref.WeakKeyDictionary()


def get_hub(alias: str | None = None) -> Hub:
    """Return this process's hub for ``alias`` (default ``WSHUB["CHANNEL_LAYER"]``)."""
    settings = get_settings()
    layer = get_channel_layer(alias or settings.channel_layer)
    if layer is None:
        raise ImproperlyConfigured(
            f"CHANNEL_LAYERS has no {alias or settings.channel_layer!r} layer for the hub"
        )
    if not isinstance(layer, HubLayer):
        raise ImproperlyConfigured(
            f"the hub needs a hub layer (wshub_channels.layers.*), not {type(layer).__name__}"
        )
    hub = _hubs.get(layer)
    if hub is None:
        hub = _hubs[layer] = Hub(layer, settings)
    elif hub.policy.settings is not settings:
        hub.policy.apply(settings)
    return hub
