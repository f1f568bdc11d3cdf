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

__all__ = ["ROOMS", "USERS", "OutboundQueue", "Registry", "Slot"]

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


class Slot:
    """A connection slot held by one handshake, counted under ``user_id`` while ``held``.

    Only :class:`Registry` changes it: :meth:`Registry.move` when the user id
    changes during the handshake, :meth:`Registry.unreserve` once.
    """

    __slots__ = ("held", "user_id")

    def __init__(self, user_id: str | None) -> None:
        self.user_id = user_id
        self.held = True

    def __repr__(self) -> str:
        return f"Slot(user_id={self.user_id!r}, held={self.held})"


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

    @property
    def pending(self) -> int:
        """How many connection slots handshakes in progress hold."""
        return self._pending

    @property
    def pending_users(self) -> dict[str, int]:
        """User id -> slots held for it by handshakes in progress (a copy)."""
        return dict(self._pending_users)

    def reserve(self, user_id: str | None, limits: Limits) -> Slot:
        """Hold a connection slot for a handshake, or raise the limit it would break.

        The slot counts toward ``max_connections`` and, under ``user_id``,
        toward ``max_connections_per_user`` until :meth:`unreserve`.
        """
        cap = limits.max_connections
        if cap and len(self._clients) + self._pending >= cap:
            raise MaxConnectionsReached(f"this node holds {cap} connections")
        if user_id is not None:
            self.check_user_limit(user_id, limits)
            self._hold(user_id)
        self._pending += 1
        return Slot(user_id)

    def unreserve(self, slot: Slot) -> bool:
        """Give back ``slot`` (under the user id it is held for now); False if already given."""
        if not slot.held:
            return False
        slot.held = False
        self._pending -= 1
        if slot.user_id is not None:
            self._release(slot.user_id)
        return True

    def move(self, slot: Slot, user_id: str | None, limits: Limits) -> None:
        """Count ``slot`` under ``user_id`` from now on, or raise and change nothing.

        Raises ``MaxUserConnectionsReached`` when ``user_id`` has no slot left
        here. A slot already given back only records the new id.
        """
        if user_id == slot.user_id:
            return
        if slot.held:
            if user_id is not None:
                self.check_user_limit(user_id, limits)
                self._hold(user_id)
            if slot.user_id is not None:
                self._release(slot.user_id)
        slot.user_id = user_id

    def check_user_limit(self, user_id: str, limits: Limits) -> None:
        """Raise ``MaxUserConnectionsReached`` if ``user_id`` has no slot left here.

        A user's slots are its connections here and its handshakes in progress.
        """
        cap = limits.max_connections_per_user
        if not cap:
            return
        held = len(self._interest.members(USERS, user_id) or ())
        if held + self._pending_users.get(user_id, 0) >= cap:
            raise MaxUserConnectionsReached(f"user {user_id!r} has {cap} connections here")

    def _hold(self, user_id: str) -> None:
        self._pending_users[user_id] = self._pending_users.get(user_id, 0) + 1

    def _release(self, user_id: str) -> None:
        left = self._pending_users.get(user_id, 0) - 1
        if left > 0:
            self._pending_users[user_id] = left
        else:
            self._pending_users.pop(user_id, None)

    def check_join(self, client_id: str, room: str, limits: Limits) -> None:
        """Raise ``MaxRoomsReached`` or ``RoomFull`` if ``client_id`` may not join ``room``."""
        cap = limits.max_rooms_per_client
        if cap and len(self._interest.names_of(client_id, ROOMS)) >= cap:
            raise MaxRoomsReached(f"already in {cap} rooms")
        cap = limits.max_clients_per_room
        if cap and self.room_size(room) >= cap:
            raise RoomFull(f"room {room!r} has {cap} clients here")
