"""The Hub: the public API for sending, membership and lookups.

One hub exists per hub layer (so per process and ``WSHUB["CHANNEL_LAYER"]``);
:func:`get_hub` returns it. Every send goes through the layer: local clients
are served directly from this node's registry, and one envelope is published
for the other nodes when the bus is shared, so a cluster behaves as one hub.

Event loops: the hub belongs to the loop it started on (the server's). A
call from another running loop, such as ``async_to_sync`` in a worker thread,
is forwarded to that loop, so client sockets are only ever touched there.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
import time
import weakref
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import msgpack
from channels.layers import get_channel_layer
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from . import signals
from .conf import HubSettings, get_settings
from .errors import (
    BusUnavailable,
    ClientNotFound,
    HubDraining,
    HubStopped,
    MaxConnectionsReached,
    MaxUserConnectionsReached,
)
from .hooks import Hooks
from .layers.base import HubLayer
from .layers.envelope import Envelope, Kind
from .layers.names import channel_node, validate_room, validate_user_id
from .layers.transport import BusStatus, NoResponders
from .message import Message
from .metrics import MetricsCollector, NoopMetrics
from .middleware import Handler, MiddlewareChain
from .outbound import text_frame
from .presence import NodeInfo, PresenceTable
from .publisher import forward, is_publisher_loop, target_loop
from .tasks import spawn

if TYPE_CHECKING:
    from .consumer import HubConsumer

__all__ = ["HealthStatus", "Hub", "HubStats", "get_hub"]

logger = logging.getLogger("wshub_channels.hub")

ROOMS = "r"
USERS = "u"
Data = str | bytes
P = ParamSpec("P")
R = TypeVar("R")


@dataclass
class HubStats:
    """Counters kept by the hub; never decremented."""

    send_dropped: int = 0
    handler_errors: int = 0
    hook_errors: int = 0
    signal_errors: int = 0
    oversized: int = 0
    rejected_handshakes: int = 0
    rate_limited: int = 0


@dataclass(frozen=True, slots=True)
class HealthStatus:
    """What ``/healthz`` and ``/readyz`` report."""

    alive: bool
    ready: bool
    state: str
    uptime_seconds: float
    clients: int
    node_id: str
    bus: BusStatus = field(default_factory=lambda: BusStatus(connected=False))


def _home(method: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    """Run a hub coroutine on the loop that owns the hub.

    That is the server's loop in a serving process; in a process with no
    server, calls from ``async_to_sync`` go to the publisher loop
    (:mod:`wshub_channels.publisher`).
    """

    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        hub: Hub = args[0]  # type: ignore[assignment]
        here = asyncio.get_running_loop()
        home = target_loop(hub._loop, here)
        if home is here:
            return await method(*args, **kwargs)
        return await forward(home, method(*args, **kwargs))

    return wrapper


class Hub:
    """The hub of one node. Use :func:`get_hub` rather than building one."""

    def __init__(self, layer: HubLayer, settings: HubSettings) -> None:
        self.layer = layer
        self.node_id = layer.node_id
        self.stats = HubStats()
        self.state = "new"
        self.mode = "server"  # or "publisher"; decided by the loop the hub starts on
        self.started_at: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._start_lock: asyncio.Lock | None = None
        self._clients: dict[str, HubConsumer] = {}
        self._users: dict[str, dict[str, HubConsumer]] = {}
        self._empty: asyncio.Event | None = None  # set when the last client leaves (drain)
        self._pending = 0  # handshakes holding a connection slot
        self._pending_users: dict[str, int] = {}
        self._idle_task: asyncio.Task[None] | None = None
        self._presence_task: asyncio.Task[None] | None = None
        self.presence = PresenceTable()
        self.apply_settings(settings)

    def apply_settings(self, settings: HubSettings) -> None:
        """Take config, limits, metrics, hooks and middleware from ``settings``.

        ``get_hub`` calls this when ``WSHUB`` changed (``override_settings`` in tests).
        """
        self.settings = settings
        self.config = settings.config
        self.limits = settings.limits
        self.metrics: MetricsCollector = _load_metrics(settings.metrics)
        self.hooks: Hooks | None = _load_hooks(settings.hooks)
        chain = MiddlewareChain(self._dispatch)
        for path in settings.middleware:
            factory = import_string(path)
            chain.use(factory())
        self.handler: Handler = chain.build()

    async def _dispatch(self, client: HubConsumer, msg: Message) -> None:
        """The innermost handler: hub-wide ``on_message`` hook, then the consumer's."""
        if self.hooks is not None:
            await self.hooks.on_message(client, msg)
        await client.on_message(msg)

    # -- lifecycle ------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.state in ("running", "draining")

    @_home
    async def start(self) -> None:
        """Start the hub on the running loop: connect the bus, install handlers (idempotent).

        On the publisher loop the hub runs in publisher mode: it sends, calls
        other nodes and reads presence, but it hosts no clients and does not
        heartbeat, so it never shows up as a node.
        """
        if self.state == "running" and self._loop is asyncio.get_running_loop():
            return
        if self.state == "stopped":
            raise HubStopped("the hub has shut down")
        loop = asyncio.get_running_loop()
        if self._loop is not loop and (self._loop is None or not self._loop.is_running()):
            self._loop, self._start_lock = loop, asyncio.Lock()
            self.state = "new"
        if self._loop is not loop:
            return  # another live loop owns the hub; calls are forwarded there
        assert self._start_lock is not None
        async with self._start_lock:
            if self.state == "running":
                return
            self._set_state("starting")
            try:
                await self.layer.start()
            except BaseException:
                self._set_state("new")
                raise
            self.layer.set_hub_sink(self._on_envelope)
            self.layer.set_bus_listener(self._on_bus_event)
            for name in ("send_to_client", "join_room", "leave_room", "leave_all_rooms"):
                self.layer.register_op(name, getattr(self, f"_op_{name}"))
            self.layer.register_op("disconnect", self._op_disconnect)
            self.started_at = time.monotonic()
            if self.config.idle_timeout > 0:
                self._idle_task = spawn(self._close_idle_clients(), "idle sweeper")
            self.mode = "publisher" if is_publisher_loop(loop) else "server"
            if self.layer.transport.shared and self.mode == "server":
                self._presence_task = spawn(self._presence_loop(), "presence heartbeat")
            self._set_state("running")

    async def _close_idle_clients(self) -> None:
        """Close clients that sent nothing for ``Config.idle_timeout`` seconds."""
        idle = self.config.idle_timeout
        loop = asyncio.get_running_loop()
        while self.state in ("running", "draining"):
            await asyncio.sleep(idle / 4)
            cutoff = loop.time() - idle
            for client in [c for c in self._clients.values() if c.last_seen < cutoff]:
                self.metrics.increment_errors("idle_timeout")
                await client.close(code=1000, reason="idle timeout")

    def _on_bus_event(self, event: str, error: BaseException | None) -> None:
        """Count bus trouble; losing the bus or being cut off also goes to ``hub_error``."""
        if event == "up":
            return
        self.metrics.increment_errors(f"bus_{event}")
        if event in ("down", "dropped") and signals.has_listeners(signals.hub_error, Hub):
            problem = BusUnavailable(f"bus {event}: {error!r}")
            spawn(signals.fire(signals.hub_error, Hub, client=None, error=problem), "bus signal")

    def _set_state(self, state: str) -> None:
        self.state = state
        if signals.has_listeners(signals.hub_state_changed, Hub):
            spawn(signals.fire(signals.hub_state_changed, Hub, state=state), "state signal")

    # -- presence ----------------------------------------------------------------------

    def node_info(self) -> NodeInfo:
        """This node as its heartbeat describes it (room counts up to 1,000 rooms)."""
        rooms = self.layer.local_names(ROOMS)
        counts = (
            {room: len(self.layer.local_members(ROOMS, room) or ()) for room in rooms}
            if len(rooms) <= 1000
            else {}
        )
        return NodeInfo(
            node_id=self.node_id,
            host=socket.gethostname(),
            pid=os.getpid(),
            clients=len(self._clients),
            users=len(self._users),
            rooms=counts,
        )

    async def _publish_presence(self, op: str) -> None:
        payload = msgpack.packb({"op": op, "info": self.node_info().to_wire()}, use_bin_type=True)
        await self.layer.publish(self.layer.cluster_subject, Kind.PRESENCE, op, payload)

    async def _presence_loop(self) -> None:
        """Heartbeat every ``PRESENCE_INTERVAL``; evict nodes that missed three beats."""
        interval = self.settings.presence_interval
        loop = asyncio.get_running_loop()
        while self.state in ("running", "draining"):
            try:
                await self._publish_presence("beat")
            except Exception as exc:
                self.metrics.increment_errors("presence_publish")
                logger.warning("presence heartbeat failed: %r", exc)
            for info in self.presence.expire(loop.time(), interval):
                self._node_event(signals.node_left, info)
            await asyncio.sleep(interval)

    def _on_presence(self, payload: bytes) -> None:
        try:
            body = msgpack.unpackb(payload, raw=False)
            info = NodeInfo.from_wire(body["info"])
        except Exception:
            self.layer.stats.bad_envelopes += 1
            return
        if body.get("op") == "bye":
            gone = self.presence.leave(info.node_id)
            if gone is not None:
                self._node_event(signals.node_left, gone)
        elif self.presence.beat(info, asyncio.get_running_loop().time()):
            self._node_event(signals.node_joined, info)
            # Answer a newcomer at once, so it need not wait a whole interval for us.
            spawn(self._publish_presence("beat"), "presence answer")

    def _node_event(self, signal: Any, info: NodeInfo) -> None:
        logger.info(
            "node %s %s", info.node_id, "joined" if signal is signals.node_joined else "left"
        )
        if signals.has_listeners(signal, Hub):
            spawn(signals.fire(signal, Hub, node=info), "node signal")

    def check_accepting(self) -> None:
        """Raise ``HubDraining`` or ``HubStopped`` if new handshakes are refused."""
        if self.state == "draining":
            raise HubDraining("the hub is draining")
        if self.state == "stopped":
            raise HubStopped("the hub has shut down")

    async def drain(self, timeout: float | None = None) -> None:
        """Refuse new handshakes; close clients still connected after ``timeout`` with 1001."""
        if self.state not in ("running", "draining"):
            return
        self._set_state("draining")
        limit = self.settings.drain_timeout if timeout is None else timeout
        if self._clients:
            self._empty = asyncio.Event()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._empty.wait(), limit)
        for client in list(self._clients.values()):
            await client.close(code=1001, reason="server draining")

    async def shutdown(self) -> None:
        """Close every client with 1001 (running their hooks), then leave the bus."""
        if self.state == "stopped":
            return
        self._set_state("draining")
        for client in list(self._clients.values()):
            await client.close(code=1001, reason="server shutting down")
            await client.finish(1001)
        for task in (self._idle_task, self._presence_task):
            if task is not None:
                task.cancel()
        if self.layer.transport.shared:
            with contextlib.suppress(Exception):
                await self._publish_presence("bye")
        await self.layer.close()
        self._set_state("stopped")

    def health(self) -> HealthStatus:
        bus = self.layer.bus_status()
        uptime = 0.0 if self.started_at is None else time.monotonic() - self.started_at
        return HealthStatus(
            alive=self.state != "stopped",
            ready=self.state == "running" and bus.connected,
            state=self.state,
            uptime_seconds=uptime,
            clients=len(self._clients),
            node_id=self.node_id,
            bus=bus,
        )

    # -- registry (called by HubConsumer) --------------------------------------------

    def reserve(self, user_id: str | None) -> None:
        """Hold a connection slot for a handshake, or raise the limit it would break."""
        limits = self.limits
        if limits.max_connections and len(self._clients) + self._pending >= limits.max_connections:
            self.metrics.increment_errors("connection_limit")
            raise MaxConnectionsReached(f"this node holds {limits.max_connections} connections")
        if user_id is not None:
            self.check_user_limit(user_id, pending=self._pending_users.get(user_id, 0))
            self._pending_users[user_id] = self._pending_users.get(user_id, 0) + 1
        self._pending += 1

    def unreserve(self, user_id: str | None) -> None:
        """Give back a slot taken by :meth:`reserve`."""
        self._pending -= 1
        if user_id is not None:
            left = self._pending_users.get(user_id, 1) - 1
            if left > 0:
                self._pending_users[user_id] = left
            else:
                self._pending_users.pop(user_id, None)

    def check_user_limit(self, user_id: str, pending: int = 0) -> None:
        """Raise ``MaxUserConnectionsReached`` if ``user_id`` has no slot left here."""
        cap = self.limits.max_connections_per_user
        if cap and len(self._users.get(user_id, ())) + pending >= cap:
            self.metrics.increment_errors("connection_limit")
            raise MaxUserConnectionsReached(f"user {user_id!r} has {cap} connections here")

    async def register(self, client: HubConsumer) -> None:
        self._clients[client.id] = client
        if client.user_id is not None:
            await self._index_user(client, client.user_id)

    async def unregister(self, client: HubConsumer) -> None:
        if self._clients.pop(client.id, None) is None:
            return
        if not self._clients and self._empty is not None:
            self._empty.set()
        user_id = client.user_id
        if user_id is not None:
            self._unindex_user(client, user_id)
        await self.layer.release_channel(client.id)
        for room in client.rooms:
            if not self.layer.local_members(ROOMS, room):
                self.metrics.decrement_rooms()

    async def _index_user(self, client: HubConsumer, user_id: str) -> None:
        self._users.setdefault(user_id, {})[client.id] = client
        await self.layer.add_interest(USERS, user_id, client.id)

    def _unindex_user(self, client: HubConsumer, user_id: str) -> None:
        clients = self._users.get(user_id)
        if clients is not None:
            clients.pop(client.id, None)
            if not clients:
                del self._users[user_id]

    async def change_user(self, client: HubConsumer, old: str | None, new: str | None) -> None:
        if client.id not in self._clients:
            return
        if old is not None:
            self._unindex_user(client, old)
            await self.layer.discard_interest(USERS, old, client.id)
        if new is not None:
            self.check_user_limit(new)
            await self._index_user(client, new)

    # -- sends -----------------------------------------------------------------------------

    async def broadcast(
        self, data: Data, exclude: Iterable[Any] = (), timeout: float | None = None
    ) -> None:
        """Send ``data`` to every client on every node (text for str, binary for bytes)."""
        await self._send(Kind.BROADCAST, "", self.layer.cluster_subject, data, exclude, timeout)

    async def broadcast_text(
        self, text: str, exclude: Iterable[Any] = (), timeout: float | None = None
    ) -> None:
        await self.broadcast(str(text), exclude, timeout)

    async def broadcast_json(
        self, obj: Any, exclude: Iterable[Any] = (), timeout: float | None = None
    ) -> None:
        """Encode ``obj`` once and broadcast it as a text frame."""
        from .consumer import dump_json

        await self.broadcast(dump_json(obj), exclude, timeout)

    async def broadcast_raw_json(
        self, raw: bytes | str, exclude: Iterable[Any] = (), timeout: float | None = None
    ) -> None:
        """Broadcast already-encoded JSON as a text frame."""
        await self.broadcast(
            raw.decode("utf-8") if isinstance(raw, bytes) else raw, exclude, timeout
        )

    async def broadcast_to_room(
        self, room: str, data: Data, exclude: Iterable[Any] = (), timeout: float | None = None
    ) -> None:
        """Send ``data`` to every member of ``room`` on every node."""
        room = validate_room(room)
        await self._send(Kind.ROOM, room, self.layer.subject(ROOMS, room), data, exclude, timeout)

    async def send_to_user(self, user_id: str, data: Data, timeout: float | None = None) -> None:
        """Send ``data`` to every connection of ``user_id``, on every node."""
        user_id = validate_user_id(user_id)
        await self._send(Kind.USER, user_id, self.layer.subject(USERS, user_id), data, (), timeout)

    @_home
    async def send_to_client(self, client: Any, data: Data, timeout: float | None = None) -> None:
        """Send ``data`` to one client anywhere; raise ``ClientNotFound`` if no node has it."""
        local, client_id, node = await self._resolve(client)
        if local is not None:
            await local.send_data(data, timeout=timeout)
        else:
            await self._remote(node, "send_to_client", client_id, data)

    @_home
    async def _send(
        self,
        kind: Kind,
        target: str,
        subject: str,
        data: Data,
        exclude: Iterable[Any],
        timeout: float | None,
    ) -> None:
        if not isinstance(data, (str, bytes)):
            raise TypeError(f"data must be str or bytes, not {type(data).__name__}")
        await self.start()
        excluded = _ids(exclude)
        if not self.layer.transport.shared:
            await self._fanout(kind, target, data, excluded, timeout)
            return
        payload = msgpack.packb([data, sorted(excluded)], use_bin_type=True)
        sending = await self.layer.start_publish(subject, kind, target, payload)
        try:
            await self._fanout(kind, target, data, excluded, timeout)
        finally:
            await sending

    def _targets(self, kind: int, target: str) -> Iterable[HubConsumer]:
        if kind == Kind.BROADCAST:
            return tuple(self._clients.values())
        if kind == Kind.ROOM:
            members = self.layer.local_members(ROOMS, target)
            if not members:
                return ()
            clients = self._clients
            return [c for c in map(clients.get, tuple(members)) if c is not None]
        if kind == Kind.USER:
            return tuple(self._users.get(target, {}).values())
        return ()

    async def _fanout(
        self, kind: int, target: str, data: Data, excluded: set[str], timeout: float | None
    ) -> None:
        message = text_frame(data)  # one dict shared by every recipient
        targets = self._targets(kind, target)
        started = time.perf_counter()
        if timeout is None:
            sent = 0
            for client in targets:
                if client.id not in excluded:
                    client.push_frame(message)
                    sent += 1
        else:
            waits = [c.put_frame(message, timeout) for c in targets if c.id not in excluded]
            sent = len(waits)
            if waits:
                await asyncio.gather(*waits)
        self.metrics.increment_messages_sent(sent)
        self.metrics.record_broadcast_duration(time.perf_counter() - started)

    def _on_envelope(self, env: Envelope) -> None:
        """Deliver a room, user or broadcast envelope (or a heartbeat) from another node."""
        if env.kind == Kind.PRESENCE:
            self._on_presence(env.payload)
            return
        try:
            data, excluded = msgpack.unpackb(env.payload, raw=False)
        except Exception:
            self.layer.stats.bad_envelopes += 1
            return
        message = text_frame(data)
        skip = set(excluded)
        sent = 0
        for client in self._targets(env.kind, env.target):
            if client.id not in skip:
                client.push_frame(message)
                sent += 1
        self.metrics.increment_messages_sent(sent)

    # -- membership ---------------------------------------------------------------------

    @_home
    async def join_room(self, client: Any, room: str) -> None:
        local, client_id, node = await self._resolve(client)
        if local is not None:
            await local.join_room(room)
        else:
            await self._remote(node, "join_room", client_id, room)

    @_home
    async def leave_room(self, client: Any, room: str) -> None:
        local, client_id, node = await self._resolve(client)
        if local is not None:
            await local.leave_room(room)
        else:
            await self._remote(node, "leave_room", client_id, room)

    @_home
    async def leave_all_rooms(self, client: Any) -> None:
        local, client_id, node = await self._resolve(client)
        if local is not None:
            await local.leave_all_rooms()
        else:
            await self._remote(node, "leave_all_rooms", client_id)

    @_home
    async def disconnect(self, client: Any, code: int = 1000) -> None:
        local, client_id, node = await self._resolve(client)
        if local is not None:
            await local.close(code=code)
        else:
            await self._remote(node, "disconnect", client_id, code)

    async def _resolve(self, client: Any) -> tuple[HubConsumer | None, str, str]:
        client_id = client if isinstance(client, str) else getattr(client, "id", None)
        if not isinstance(client_id, str):
            raise TypeError(f"expected a client or a client id, not {type(client).__name__}")
        await self.start()
        local = self._clients.get(client_id)
        if local is not None:
            return local, client_id, self.node_id
        node = channel_node(client_id)
        if node is None or node == self.node_id or not self.layer.transport.shared:
            raise ClientNotFound(f"no client {client_id!r}")
        return None, client_id, node

    async def _remote(self, node: str, op: str, *args: Any) -> None:
        try:
            await self.layer.remote_call(node, op, *args)
        except NoResponders as exc:
            raise ClientNotFound(f"no client {args[0]!r}: its node {node} is gone") from exc

    def _local(self, client_id: str) -> HubConsumer:
        client = self._clients.get(client_id)
        if client is None:
            raise ClientNotFound(f"no client {client_id!r}")
        return client

    async def _op_send_to_client(self, client_id: str, data: Data) -> None:
        await self._local(client_id).send_data(data)

    async def _op_join_room(self, client_id: str, room: str) -> None:
        await self._local(client_id).join_room(room)

    async def _op_leave_room(self, client_id: str, room: str) -> None:
        await self._local(client_id).leave_room(room)

    async def _op_leave_all_rooms(self, client_id: str) -> None:
        await self._local(client_id).leave_all_rooms()

    async def _op_disconnect(self, client_id: str, code: int) -> None:
        await self._local(client_id).close(code=code)

    # -- local lookups (this node, no bus) ----------------------------------------------

    def clients(self) -> list[HubConsumer]:
        return list(self._clients.values())

    def client_count(self) -> int:
        return len(self._clients)

    def get_client(self, client_id: str) -> HubConsumer | None:
        return self._clients.get(client_id)

    def get_client_by_user_id(self, user_id: str) -> HubConsumer | None:
        clients = self._users.get(user_id)
        return next(iter(clients.values())) if clients else None

    def get_clients_by_user_id(self, user_id: str) -> list[HubConsumer]:
        return list(self._users.get(user_id, {}).values())

    def room_clients(self, room: str) -> list[HubConsumer]:
        return list(self._targets(Kind.ROOM, validate_room(room)))

    def room_count(self, room: str) -> int:
        return len(self.layer.local_members(ROOMS, validate_room(room)) or ())

    def room_names(self) -> list[str]:
        return self.layer.local_names(ROOMS)

    def room_exists(self, room: str) -> bool:
        return self.room_count(room) > 0


def _ids(exclude: Iterable[Any]) -> set[str]:
    return {c if isinstance(c, str) else c.id for c in exclude}


def _load_metrics(path: str | None) -> MetricsCollector:
    if path is None:
        return NoopMetrics()
    found = import_string(path)
    collector: MetricsCollector = found() if isinstance(found, type) else found
    return collector


def _load_hooks(path: str | None) -> Hooks | None:
    if path is None:
        return None
    found = import_string(path)
    hooks: Hooks = found() if isinstance(found, type) else found
    return hooks


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
    elif hub.settings is not settings:
        hub.apply_settings(settings)
    return hub
