"""Room membership and the calls on one client, wherever it is: one "local or remote" path.

:class:`Membership` joins and leaves rooms for the clients of this node
(limits, ``before_room_*`` hooks, interest, metrics, ``on_room_*`` hooks and
signals, room presence events). The hub's calls on one client
(``send_to_client``, ``join_room``, ``leave_room``, ``leave_all_rooms``,
``disconnect``) go through :meth:`Membership.call`: a client of this node is
served here, one of another node through that node's op of the same name.
One table (:attr:`Membership.ops`) holds what each op does to a local
client, and serves both sides. Runs on the hub's loop.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from ..core.history import Position, Recovery
from ..core.membership import ROOMS, Registry
from ..core.names import channel_node, validate_room
from ..errors import AlreadyInRoom, ClientNotFound, ConnectionClosed, NotInRoom
from ..layers import HubBus, NoResponders
from ..types import Client, LocalClient
from .heartbeat import Heartbeat
from .history import RoomHistory
from .policy import Policy
from .roomevents import RoomEvents

__all__ = ["Membership"]

#: What an op does to a client of this node, given the op's arguments.
Op = Callable[..., Awaitable[Any]]


class Membership:
    """Joins and leaves of local clients, and the per-client calls across the cluster."""

    def __init__(
        self,
        layer: HubBus,
        policy: Policy,
        registry: Registry,
        heartbeat: Heartbeat,
        room_events: RoomEvents,
        history: RoomHistory,
    ) -> None:
        self.layer = layer
        self.policy = policy
        self.registry = registry
        self._heartbeat = heartbeat
        self._room_events = room_events
        self.history = history
        #: op name -> what it does to a local client; the remote side runs the same.
        self.ops: dict[str, Op] = {
            "send_to_client": _send,
            "join_room": self._join_op,
            "leave_room": self.leave_local,
            "leave_all_rooms": self.leave_all_local,
            "disconnect": _disconnect,
        }

    # -- clients of this node --------------------------------------------------------

    async def join_local(
        self, client: LocalClient, room: str, since: Position | None = None
    ) -> Recovery:
        """Join a client of this node to ``room``: limits, hooks, interest, signal.

        In a history room, ``since`` (the position of the last message the
        client saw) replays what it missed before any live message (see
        :mod:`.history`). Raises ``AlreadyInRoom``, ``EmptyRoomName``,
        ``InvalidName``, ``MaxRoomsReached``, ``RoomFull``,
        ``ConnectionClosed``, ``BusUnavailable`` (a history room whose store
        cannot be read: the client is not joined), or what a
        ``before_room_join`` hook raises.
        """
        room = validate_room(room)
        if since is not None and not isinstance(since, Position):
            raise TypeError(f"since is a Position or None, not {type(since).__name__}")
        registry, policy = self.registry, self.policy
        if client.is_closed or client.id not in registry:
            raise ConnectionClosed("the connection is closed")
        if client.in_room(room):
            raise AlreadyInRoom(f"already in room {room!r}")
        registry.check_join(client.id, room, policy.limits)
        await policy.events.check(client, "room_join", room)
        first = not registry.room_size(room)
        history = self.history if self.history.rule_for(room) is not None else None
        if history is None:
            await self.layer.add_interest(ROOMS, room, client.id)
            recovery = Recovery(False, None)
        else:
            history.before_join(room, client.id, first, since)
            try:
                await self.layer.add_interest(ROOMS, room, client.id)
                recovery = await history.recover(room, client.id, since)
            except BaseException:
                history.cancel_join(room, client.id)
                await self.layer.discard_interest(ROOMS, room, client.id)
                raise
        self._heartbeat.touch(room)
        policy.metrics.increment_room_joins()
        if first:
            policy.metrics.increment_rooms()
        await policy.events.notify(client, "room_join", room, room=room)
        await self._room_events.announce(client, room, "joined")
        return recovery

    async def _join_op(
        self, client: LocalClient, room: str, since: list[Any] | None = None
    ) -> list[Any]:
        """``join_room`` as an op: ``since`` and the result travel as plain lists."""
        at = None if since is None else Position(int(since[0]), str(since[1]))
        recovery = await self.join_local(client, room, at)
        position = recovery.position
        where = None if position is None else [position.offset, position.epoch]
        return [recovery.recovered, where, recovery.replayed]

    async def leave_local(self, client: LocalClient, room: str) -> None:
        """Take a client of this node out of ``room``; raises ``NotInRoom`` or a hook's error."""
        room = validate_room(room)
        policy = self.policy
        if not client.in_room(room):
            raise NotInRoom(f"not in room {room!r}")
        await policy.events.check(client, "room_leave", room)
        await self.layer.discard_interest(ROOMS, room, client.id)
        self._heartbeat.touch(room)
        policy.metrics.increment_room_leaves()
        if not self.registry.room_size(room):
            policy.metrics.decrement_rooms()
            self.history.left(room)
        await policy.events.notify(client, "room_leave", room, room=room)
        await self._room_events.announce(client, room, "left")

    async def leave_all_local(self, client: LocalClient) -> None:
        for room in sorted(client.rooms):
            await self.leave_local(client, room)

    # -- any client of the cluster ----------------------------------------------------

    async def join(
        self, client: Client | str, room: str, since: Position | None = None
    ) -> Recovery:
        """``hub.join_room``: join any client of the cluster, here or on its node."""
        if since is not None and not isinstance(since, Position):
            raise TypeError(f"since is a Position or None, not {type(since).__name__}")
        at = None if since is None else [since.offset, since.epoch]
        recovered, where, replayed = await self.call(client, "join_room", room, at)
        position = None if where is None else Position(int(where[0]), str(where[1]))
        return Recovery(bool(recovered), position, int(replayed))

    async def call(self, client: Client | str, op: str, *args: Any) -> Any:
        """Run ``op`` on ``client``: here if it is local, else on its node.

        Raises ``ClientNotFound`` when no node has it (its node is gone, or
        the id names no other node), and whatever the op raises, local or remote.
        """
        client_id = client if isinstance(client, str) else getattr(client, "id", None)
        if not isinstance(client_id, str):
            raise TypeError(f"expected a client or a client id, not {type(client).__name__}")
        local = self.registry.get(client_id)
        if local is not None:
            return await self.ops[op](local, *args)
        node = channel_node(client_id)
        if node is None or node == self.layer.node_id or not self.layer.shared:
            raise ClientNotFound(f"no client {client_id!r}")
        try:
            return await self.layer.remote_call(node, op, client_id, *args)
        except NoResponders as exc:
            raise ClientNotFound(f"no client {client_id!r}: its node {node} is gone") from exc

    def register_ops(self) -> None:
        """Let other nodes run :attr:`ops` on the clients of this node."""
        for name, op in self.ops.items():
            self.layer.register_op(name, self._served(op))

    def _served(self, op: Op) -> Callable[..., Awaitable[Any]]:
        registry = self.registry

        async def serve(client_id: str, *args: Any) -> Any:
            found = registry.get(client_id)
            if found is None:
                raise ClientNotFound(f"no client {client_id!r}")
            return await op(found, *args)

        return serve


async def _send(client: LocalClient, data: str | bytes, timeout: float | None = None) -> None:
    await client.send_data(data, timeout=timeout)


async def _disconnect(client: LocalClient, code: int = 1000) -> None:
    await client.close(code=code)
