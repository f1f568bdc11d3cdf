"""The Hub: the public API for sending, membership and lookups.

One hub exists per hub layer (so per process and ``WSHUB["CHANNEL_LAYER"]``);
:func:`get_hub` returns it. Every send goes through the layer: one envelope
is published for the other nodes when the bus is shared, and the local
clients are served from this node's :class:`~wshub_channels.core.membership.Registry`
by one delivery loop, so a cluster behaves as one hub.

Event loops: the hub belongs to the loop it started on (the server's). A
call from another running loop, such as ``async_to_sync`` in a worker thread,
is forwarded to that loop, so client sockets are only ever touched there.
The hub never imports the consumer: it sees clients through
:class:`~wshub_channels.types.Client`.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Iterable, Iterator
from typing import Any

from channels.layers import get_channel_layer
from django.core.exceptions import ImproperlyConfigured

from ..conf import get_settings
from ..core.frames import data_size, text_frame
from ..core.membership import ROOMS, USERS, OutboundQueue
from ..core.names import channel_node, validate_room, validate_user_id
from ..core.wire import Envelope, Kind, decode_hub_payload, encode_hub_payload
from ..errors import AlreadyInRoom, ClientNotFound, ConnectionClosed, NotInRoom
from ..layers import HubLayer, NoResponders
from ..message import check_text, dump_json
from ..publisher import on_home_loop
from ..types import Client, Connection, Data
from .cluster import ClusterQueries
from .events import HubStats

__all__ = ["Hub", "HubStats", "get_hub"]

#: Where each kind of hub envelope is delivered: an interest namespace, or everyone.
_NAMESPACE: dict[int, str | None] = {Kind.ROOM: ROOMS, Kind.USER: USERS, Kind.BROADCAST: None}


class Hub(ClusterQueries):
    """The hub of one node. Use :func:`get_hub` rather than building one.

    Global counts and cluster-wide queries (``global_client_count``,
    ``find_client``, ``cluster_clients``, ``nodes`` ...) come from
    :class:`~wshub_channels.hub.cluster.ClusterQueries`; start, drain, shutdown
    and health from :class:`~wshub_channels.hub.lifecycle.Lifecycle`.
    """

    # -- sends -----------------------------------------------------------------------

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

    @on_home_loop
    async def send_to_client(self, client: Any, data: Data, timeout: float | None = None) -> None:
        """Send ``data`` to one client anywhere; raise ``ClientNotFound`` if no node has it."""
        if isinstance(data, str):
            check_text(data)
        local, client_id, node = await self._resolve(client)
        if local is not None:
            await local.send_data(data, timeout=timeout)
        else:
            await self._remote(node, "send_to_client", client_id, data)

    @on_home_loop
    async def _send(
        self,
        kind: Kind,
        target: str,
        subject: str,
        data: Data,
        exclude: Iterable[Any],
        timeout: float | None,
    ) -> None:
        if isinstance(data, str):
            check_text(data)  # InvalidFrame before anyone gets anything
        elif not isinstance(data, bytes):
            raise TypeError(f"data must be str or bytes, not {type(data).__name__}")
        await self.start()
        excluded = {c if isinstance(c, str) else c.id for c in exclude}
        payload = encode_hub_payload(data, excluded) if self.layer.shared else b""

        async def deliver() -> None:
            await self._deliver(_NAMESPACE[kind], target, data, excluded, timeout)

        await self.layer.publish_and_deliver(subject, kind, target, payload, deliver)

    def _recipients(
        self, ns: str | None, name: str, excluded: set[str] | frozenset[str]
    ) -> Iterator[OutboundQueue]:
        """The one local delivery loop: the open queues of a room, a user or everyone."""
        for client_id, queue in self.registry.queues(ns, name):
            if client_id not in excluded and not queue.closed:
                yield queue

    async def _deliver(
        self,
        ns: str | None,
        name: str,
        data: Data,
        excluded: set[str] | frozenset[str],
        timeout: float | None,
    ) -> None:
        """Queue ``data`` for local recipients; with ``timeout``, wait that long for room."""
        if timeout is None:
            self._push(ns, name, data, excluded)
            return
        started = time.perf_counter()
        message = text_frame(data)
        waits = [queue.offer(message, timeout) for queue in self._recipients(ns, name, excluded)]
        accepted = sum(await asyncio.gather(*waits)) if waits else 0
        self._count_sent(accepted, data, started)

    def _push(
        self, ns: str | None, name: str, data: Data, excluded: set[str] | frozenset[str]
    ) -> None:
        started = time.perf_counter()
        message = text_frame(data)  # one dict shared by every recipient
        sent = 0
        for queue in self._recipients(ns, name, excluded):
            sent += queue.push(message)  # a frame the drop policy refused is not sent
        self._count_sent(sent, data, started)

    def _count_sent(self, sent: int, data: Data, started: float) -> None:
        metrics = self.metrics
        metrics.increment_messages_sent(sent)
        if sent and self.counts_bytes:
            metrics.record_bytes_sent(sent * data_size(data))
        metrics.record_broadcast_duration(time.perf_counter() - started)

    def _on_envelope(self, env: Envelope) -> None:
        """Deliver a room, user or broadcast envelope (or a heartbeat) from another node."""
        if env.kind == Kind.PRESENCE:
            self.heartbeat.receive(env.payload)
            return
        if env.kind == Kind.ROOM_EVENT:
            self.room_events.receive(env)
            return
        if env.kind not in _NAMESPACE:
            self.layer.stats.bad_envelopes += 1
            return
        try:
            data, excluded = decode_hub_payload(env.payload)
        except ValueError:
            self.layer.stats.bad_envelopes += 1
            return
        self._push(_NAMESPACE[env.kind], env.target, data, frozenset(excluded))

    # -- membership ---------------------------------------------------------------------

    @on_home_loop
    async def join_room(self, client: Any, room: str) -> None:
        """Add a client (local or on another node) to ``room``."""
        local, client_id, node = await self._resolve(client)
        if local is not None:
            await self.local_join(local, room)
        else:
            await self._remote(node, "join_room", client_id, room)

    @on_home_loop
    async def leave_room(self, client: Any, room: str) -> None:
        """Remove a client (local or on another node) from ``room``."""
        local, client_id, node = await self._resolve(client)
        if local is not None:
            await self.local_leave(local, room)
        else:
            await self._remote(node, "leave_room", client_id, room)

    @on_home_loop
    async def leave_all_rooms(self, client: Any) -> None:
        local, client_id, node = await self._resolve(client)
        if local is not None:
            await self.local_leave_all(local)
        else:
            await self._remote(node, "leave_all_rooms", client_id)

    @on_home_loop
    async def disconnect(self, client: Any, code: int = 1000) -> None:
        local, client_id, node = await self._resolve(client)
        if local is not None:
            await local.close(code=code)
        else:
            await self._remote(node, "disconnect", client_id, code)

    async def local_join(self, client: Connection, room: str) -> None:
        """Join a client of this node to ``room``: limits, hooks, interest, signal.

        Raises ``AlreadyInRoom``, ``EmptyRoomName``, ``InvalidName``,
        ``MaxRoomsReached``, ``RoomFull``, ``ConnectionClosed``, or what a
        ``before_room_join`` hook raises.
        """
        room = validate_room(room)
        if client.is_closed or client.id not in self.registry:
            raise ConnectionClosed("the connection is closed")
        if client.in_room(room):
            raise AlreadyInRoom(f"already in room {room!r}")
        self.registry.check_join(client.id, room, self.limits)
        await self.events.check(client, "room_join", room)
        first = not self.registry.room_size(room)
        await self.layer.add_interest(ROOMS, room, client.id)
        self.heartbeat.touch(room)
        self.metrics.increment_room_joins()
        if first:
            self.metrics.increment_rooms()
        await self.events.notify(client, "room_join", room, room=room)
        await self.room_events.announce(client, room, "joined")

    async def local_leave(self, client: Connection, room: str) -> None:
        """Take a client of this node out of ``room``; raises ``NotInRoom`` or a hook's error."""
        room = validate_room(room)
        if not client.in_room(room):
            raise NotInRoom(f"not in room {room!r}")
        await self.events.check(client, "room_leave", room)
        await self.layer.discard_interest(ROOMS, room, client.id)
        self.heartbeat.touch(room)
        self.metrics.increment_room_leaves()
        if not self.registry.room_size(room):
            self.metrics.decrement_rooms()
        await self.events.notify(client, "room_leave", room, room=room)
        await self.room_events.announce(client, room, "left")

    async def _left_rooms(self, client: Connection, rooms: frozenset[str]) -> None:
        for room in sorted(rooms):
            await self.room_events.announce(client, room, "left")

    async def local_leave_all(self, client: Connection) -> None:
        for room in sorted(client.rooms):
            await self.local_leave(client, room)

    async def _resolve(self, client: Any) -> tuple[Connection | None, str, str]:
        client_id = client if isinstance(client, str) else getattr(client, "id", None)
        if not isinstance(client_id, str):
            raise TypeError(f"expected a client or a client id, not {type(client).__name__}")
        await self.start()
        local = self.registry.get(client_id)
        if local is not None:
            return local, client_id, self.node_id
        node = channel_node(client_id)
        if node is None or node == self.node_id or not self.layer.shared:
            raise ClientNotFound(f"no client {client_id!r}")
        return None, client_id, node

    async def _remote(self, node: str, op: str, *args: Any) -> None:
        try:
            await self.layer.remote_call(node, op, *args)
        except NoResponders as exc:
            raise ClientNotFound(f"no client {args[0]!r}: its node {node} is gone") from exc

    def _register_ops(self) -> None:
        """Let other nodes call the membership and send operations on our clients."""

        def local(client_id: str) -> Connection:
            found = self.registry.get(client_id)
            if found is None:
                raise ClientNotFound(f"no client {client_id!r}")
            return found

        async def send_to_client(client_id: str, data: Data) -> None:
            await local(client_id).send_data(data)

        async def join_room(client_id: str, room: str) -> None:
            await self.local_join(local(client_id), room)

        async def leave_room(client_id: str, room: str) -> None:
            await self.local_leave(local(client_id), room)

        async def leave_all_rooms(client_id: str) -> None:
            await self.local_leave_all(local(client_id))

        async def disconnect(client_id: str, code: int) -> None:
            await local(client_id).close(code=code)

        for op in (send_to_client, join_room, leave_room, leave_all_rooms, disconnect):
            self.layer.register_op(op.__name__, op)
        if self.mode == "server":  # a publisher hosts no clients: it stays out of gathers
            self._register_query_ops()

    # -- local lookups (this node, no bus) ----------------------------------------------

    def clients(self) -> list[Client]:
        return list(self.registry.clients())

    def client_count(self) -> int:
        return len(self.registry)

    def get_client(self, client_id: str) -> Client | None:
        return self.registry.get(client_id)

    def get_client_by_user_id(self, user_id: str) -> Client | None:
        clients = self.registry.user_clients(user_id)
        return clients[0] if clients else None

    def get_clients_by_user_id(self, user_id: str) -> list[Client]:
        return list(self.registry.user_clients(user_id))

    def room_clients(self, room: str) -> list[Client]:
        return list(self.registry.room_clients(validate_room(room)))

    def room_count(self, room: str) -> int:
        return self.registry.room_size(validate_room(room))

    def room_names(self) -> list[str]:
        return self.registry.room_names()

    def room_exists(self, room: str) -> bool:
        return self.room_count(room) > 0


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
