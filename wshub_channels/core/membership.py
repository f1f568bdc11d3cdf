"""Membership: who belongs to which group, room or user, and this node's clients.

Pure bookkeeping, no I/O, in two parts:

- :class:`Interest` keeps which local members belong to which name, in
  namespaces (``"g"`` for Channels groups, :data:`ROOMS` for rooms,
  :data:`USERS` for users) so that a room is never a group.
  :meth:`Interest.add` reports when a name gains its first local member and
  :meth:`Interest.discard` when it loses its last one: those are the moments
  the node subscribes to, or unsubscribes from, the name's bus subject.
- :class:`Registry` keeps each local client with its outbound queue, so a
  fan-out goes from the hub straight to the queues. Who is in which room,
  and which connections a user has, is read from the layer's interest table:
  the layer keeps those memberships anyway to route the bus, and the
  registry never holds a second copy. It also enforces the per-node
  ``Limits`` and the connection slots held by handshakes in progress
  (:class:`Slot`).

Not thread-safe: one owner (the hub's event loop, the layer's thread) uses each.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Protocol

from ..config import Limits
from ..errors import MaxConnectionsReached, MaxRoomsReached, MaxUserConnectionsReached, RoomFull
from ..types import AsgiMessage, LocalClient

__all__ = ["ROOMS", "USERS", "Interest", "OutboundQueue", "Registry", "Slot"]


class Interest:
    """Members per (namespace, name), with a reverse index per member."""

    __slots__ = ("_by_member", "_names")

    def __init__(self) -> None:
        self._names: dict[str, dict[str, dict[str, float]]] = {}
        self._by_member: dict[str, set[tuple[str, str]]] = {}

    def add(self, ns: str, name: str, member: str, now: float) -> bool:
        """Add (or refresh) ``member``; return True if ``name`` had no member before."""
        table = self._names.setdefault(ns, {})
        members = table.get(name)
        first = members is None
        if members is None:
            members = table[name] = {}
        members[member] = now
        self._by_member.setdefault(member, set()).add((ns, name))
        return first

    def discard(self, ns: str, name: str, member: str) -> bool:
        """Remove ``member``; return True if ``name`` has no member left."""
        table = self._names.get(ns)
        if table is None:
            return False
        members = table.get(name)
        if members is None or members.pop(member, None) is None:
            return False
        keys = self._by_member.get(member)
        if keys is not None:
            keys.discard((ns, name))
            if not keys:
                del self._by_member[member]
        if members:
            return False
        del table[name]
        return True

    def remove_member(self, member: str) -> list[tuple[str, str]]:
        """Remove ``member`` everywhere; return the (ns, name) pairs left empty."""
        emptied = []
        for ns, name in list(self._by_member.get(member, ())):
            if self.discard(ns, name, member):
                emptied.append((ns, name))
        self._by_member.pop(member, None)
        return emptied

    def members(self, ns: str, name: str) -> dict[str, float] | None:
        """Return the live member table of ``name`` (member -> joined time), or None."""
        table = self._names.get(ns)
        return None if table is None else table.get(name)

    def names_of(self, member: str, ns: str) -> list[str]:
        """Return the names in ``ns`` that ``member`` belongs to."""
        return [name for kind, name in self._by_member.get(member, ()) if kind == ns]

    def names(self, ns: str) -> list[str]:
        """Return every name in ``ns`` with at least one local member."""
        return list(self._names.get(ns, ()))

    def all_keys(self) -> list[tuple[str, str]]:
        """Return every (ns, name) with local members (used to resubscribe)."""
        return [(ns, name) for ns, table in self._names.items() for name in table]

    def clear(self) -> None:
        self._names.clear()
        self._by_member.clear()

    def sizes(self) -> dict[str, int]:
        """Return internal table sizes, for leak tests and debugging."""
        return {
            "names": sum(len(t) for t in self._names.values()),
            "memberships": sum(len(m) for t in self._names.values() for m in t.values()),
            "members": len(self._by_member),
        }


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

    def push(self, message: AsgiMessage) -> bool:
        """Queue or write at once, never waiting; a full queue applies the drop policy."""

    async def push_within(self, message: AsgiMessage, timeout: float) -> bool:
        """Wait up to ``timeout`` for room, then push (the drop policy applies)."""


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

    __slots__ = ("_clients", "_framed", "_interest", "_pending", "_pending_users", "_queues")

    def __init__(self, interest: Interest) -> None:
        self._interest = interest
        self._clients: dict[str, LocalClient] = {}
        self._queues: dict[str, OutboundQueue] = {}
        self._framed: set[str] = set()  # clients that get hub sends as protocol frames
        self._pending = 0  # handshakes holding a connection slot
        self._pending_users: dict[str, int] = {}

    # -- clients ---------------------------------------------------------------------

    def add(self, client: LocalClient, queue: OutboundQueue) -> None:
        """Register a client; one whose ``framed`` is true gets hub sends as protocol frames."""
        self._clients[client.id] = client
        self._queues[client.id] = queue
        if getattr(client, "framed", False):
            self._framed.add(client.id)

    def remove(self, client_id: str) -> LocalClient | None:
        """Forget a client; return it, or None if it was not registered."""
        self._queues.pop(client_id, None)
        self._framed.discard(client_id)
        return self._clients.pop(client_id, None)

    def get(self, client_id: str) -> LocalClient | None:
        return self._clients.get(client_id)

    def __contains__(self, client_id: object) -> bool:
        return client_id in self._clients

    def __len__(self) -> int:
        return len(self._clients)

    def clients(self) -> list[LocalClient]:
        return list(self._clients.values())

    # -- users and rooms (read from the interest table) ----------------------------------

    def user_clients(self, user_id: str) -> list[LocalClient]:
        return self._resolve(self._interest.members(USERS, user_id) or ())

    def user_count(self) -> int:
        """The number of distinct user ids with a connection here."""
        return len(self._interest.names(USERS))

    def user_names(self) -> list[str]:
        """The distinct user ids with a connection here."""
        return self._interest.names(USERS)

    def room_clients(self, room: str) -> list[LocalClient]:
        return self._resolve(self._interest.members(ROOMS, room) or ())

    def room_size(self, room: str) -> int:
        return len(self._interest.members(ROOMS, room) or ())

    def room_names(self) -> list[str]:
        return self._interest.names(ROOMS)

    def rooms_of(self, client_id: str) -> frozenset[str]:
        return frozenset(self._interest.names_of(client_id, ROOMS))

    def _resolve(self, ids: Iterable[str]) -> list[LocalClient]:
        clients = self._clients
        return [c for c in map(clients.get, tuple(ids)) if c is not None]

    # -- fan-out targets -----------------------------------------------------------------

    @property
    def framed(self) -> set[str]:
        """The ids of clients that speak the client protocol (read, do not change)."""
        return self._framed

    def queue_of(self, client_id: str) -> OutboundQueue | None:
        return self._queues.get(client_id)

    def queue_depths(self) -> list[int]:
        """How many messages wait in each local client's outbound queue."""
        return [queue.queued for queue in self._queues.values()]

    def queues(self, ns: str | None, name: str = "") -> Iterator[tuple[str, OutboundQueue]]:
        """Yield ``(client id, queue)`` of every client (``ns`` None) or of one room or user."""
        queues = self._queues
        # One snapshot of the ids (one object, however many clients), not of (id, queue)
        # pairs: a million short-lived pairs is what makes the garbage collector stall.
        ids = tuple(queues) if ns is None else tuple(self._interest.members(ns, name) or ())
        for client_id in ids:
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
