"""This node's clients: by id with their send queues, by user and by room.

Pure bookkeeping, no I/O. The registry keeps each local client with its
outbound queue, so a fan-out goes from the hub straight to the queues. Who
is in which room, and which connections a user has, is read from the
layer's interest table (namespaces :data:`ROOMS` and :data:`USERS`): the
layer keeps those memberships anyway to route the bus, and the registry
never holds a second copy. It also enforces the per-node ``Limits`` and the
connection slots held by handshakes in progress.

Not thread-safe: the hub uses it from its own event loop.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Protocol

from .config import Limits
from .errors import MaxConnectionsReached, MaxRoomsReached, MaxUserConnectionsReached, RoomFull
from .layers.interest import Interest
from .types import AsgiMessage, Connection

__all__ = ["ROOMS", "USERS", "OutboundQueue", "Registry"]

#: The interest namespace of hub rooms (never the Channels group namespace).
ROOMS = "r"
#: The interest namespace of user ids.
USERS = "u"


class OutboundQueue(Protocol):
    """What the fan-out needs of a connection's outbound queue."""

    @property
    def closed(self) -> bool: ...

    @property
    def queued(self) -> int: ...

    def push(self, message: AsgiMessage) -> bool: ...

    async def offer(self, message: AsgiMessage, timeout: float) -> bool: ...


class Registry:
    """Local clients, their queues, users and rooms, limits and reservations."""

    __slots__ = ("_clients", "_interest", "_pending", "_pending_users", "_queues")

    def __init__(self, interest: Interest) -> None:
        self._interest = interest
        self._clients: dict[str, Connection] = {}
        self._queues: dict[str, OutboundQueue] = {}
        self._pending = 0  # handshakes holding a connection slot
        self._pending_users: dict[str, int] = {}

    # -- clients ---------------------------------------------------------------------

    def add(self, client: Connection, queue: OutboundQueue) -> None:
        self._clients[client.id] = client
        self._queues[client.id] = queue

    def remove(self, client_id: str) -> Connection | None:
        """Forget a client; return it, or None if it was not registered."""
        self._queues.pop(client_id, None)
        return self._clients.pop(client_id, None)

    def get(self, client_id: str) -> Connection | None:
        return self._clients.get(client_id)

    def __contains__(self, client_id: object) -> bool:
        return client_id in self._clients

    def __len__(self) -> int:
        return len(self._clients)

    def clients(self) -> list[Connection]:
        return list(self._clients.values())

    # -- users and rooms (read from the interest table) ----------------------------------

    def user_clients(self, user_id: str) -> list[Connection]:
        return self._resolve(self._interest.members(USERS, user_id) or ())

    def user_count(self) -> int:
        """The number of distinct user ids with a connection here."""
        return len(self._interest.names(USERS))

    def user_names(self) -> list[str]:
        """The distinct user ids with a connection here."""
        return self._interest.names(USERS)

    def room_clients(self, room: str) -> list[Connection]:
        return self._resolve(self._interest.members(ROOMS, room) or ())

    def room_size(self, room: str) -> int:
        return len(self._interest.members(ROOMS, room) or ())

    def room_names(self) -> list[str]:
        return self._interest.names(ROOMS)

    def rooms_of(self, client_id: str) -> frozenset[str]:
        return frozenset(self._interest.names_of(client_id, ROOMS))

    def _resolve(self, ids: Iterable[str]) -> list[Connection]:
        clients = self._clients
        return [c for c in map(clients.get, tuple(ids)) if c is not None]

    # -- fan-out targets -----------------------------------------------------------------

    def queue_depths(self) -> list[int]:
        """How many messages wait in each local client's outbound queue."""
        return [queue.queued for queue in self._queues.values()]

    def queues(self, ns: str | None, name: str = "") -> Iterator[tuple[str, OutboundQueue]]:
        """Yield ``(client id, queue)`` of every client (``ns`` None) or of one room or user."""
        queues = self._queues
        if ns is None:
            yield from tuple(queues.items())
            return
        members = self._interest.members(ns, name)
        if not members:
            return
        for client_id in tuple(members):
            queue = queues.get(client_id)
            if queue is not None:
                yield client_id, queue

    # -- limits and reservations ---------------------------------------------------------

    def reserve(self, user_id: str | None, limits: Limits) -> None:
        """Hold a connection slot for a handshake, or raise the limit it would break."""
        cap = limits.max_connections
        if cap and len(self._clients) + self._pending >= cap:
            raise MaxConnectionsReached(f"this node holds {cap} connections")
        if user_id is not None:
            held = self._pending_users.get(user_id, 0)
            self.check_user_limit(user_id, limits, pending=held)
            self._pending_users[user_id] = held + 1
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

    def check_user_limit(self, user_id: str, limits: Limits, pending: int = 0) -> None:
        """Raise ``MaxUserConnectionsReached`` if ``user_id`` has no slot left here."""
        cap = limits.max_connections_per_user
        if cap and len(self._interest.members(USERS, user_id) or ()) + pending >= cap:
            raise MaxUserConnectionsReached(f"user {user_id!r} has {cap} connections here")

    def check_join(self, client_id: str, room: str, limits: Limits) -> None:
        """Raise ``MaxRoomsReached`` or ``RoomFull`` if ``client_id`` may not join ``room``."""
        cap = limits.max_rooms_per_client
        if cap and len(self._interest.names_of(client_id, ROOMS)) >= cap:
            raise MaxRoomsReached(f"already in {cap} rooms")
        cap = limits.max_clients_per_room
        if cap and self.room_size(room) >= cap:
            raise RoomFull(f"room {room!r} has {cap} clients here")
