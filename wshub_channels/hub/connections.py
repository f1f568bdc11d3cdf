"""The connections of this node: admission, registration, user ids and the idle sweeper.

:class:`Connections` owns the node's
:class:`~wshub_channels.core.membership.Registry` (clients, their queues,
limits and handshake slots). A consumer holds a slot from the start of its
handshake (:meth:`Connections.reserve`) until it is registered (the slot
becomes the connection in the same step) or refused
(:meth:`Connections.unreserve`), and leaves with :meth:`Connections.unregister`.
A refused limit counts ``errors{type="connection_limit"}``. Runs on the hub's loop.
"""

from __future__ import annotations

import asyncio

from ..core.membership import USERS, OutboundQueue, Registry, Slot
from ..core.ratelimit import clock
from ..layers import HubBus
from ..types import LocalClient
from .heartbeat import Heartbeat
from .policy import Policy
from .roomevents import RoomEvents

__all__ = ["Connections"]


class Connections:
    """This node's clients: slots, registration, user ids, idle timeouts."""

    def __init__(
        self,
        layer: HubBus,
        policy: Policy,
        registry: Registry,
        heartbeat: Heartbeat,
        room_events: RoomEvents,
    ) -> None:
        self.layer = layer
        self.policy = policy
        self.registry = registry
        self._heartbeat = heartbeat
        self._room_events = room_events
        self._empty: asyncio.Event | None = None  # set when the last client leaves

    def __len__(self) -> int:
        return len(self.registry)

    async def wait_empty(self, timeout: float) -> None:
        """Wait until no client is left, for up to ``timeout`` seconds (a drain)."""
        if not len(self.registry):
            return
        self._empty = asyncio.Event()
        try:
            async with asyncio.timeout(timeout):
                await self._empty.wait()
        except TimeoutError:
            pass

    # -- admission -----------------------------------------------------------------

    def reserve(self, user_id: str | None) -> Slot:
        """Hold a connection slot for a handshake, or raise the limit it would break.

        The caller gives the slot back with :meth:`unreserve` or
        :meth:`register`, on every path (``try``/``finally``).
        """
        try:
            return self.registry.reserve(user_id, self.policy.limits)
        except Exception:
            self.policy.metrics.increment_errors("connection_limit")
            raise

    def unreserve(self, slot: Slot) -> None:
        """Give back a slot taken by :meth:`reserve` (again is a no-op)."""
        self.registry.unreserve(slot)

    def move_reservation(self, slot: Slot, user_id: str | None) -> None:
        """Count a handshake's slot under ``user_id``, or raise and change nothing."""
        try:
            self.registry.move(slot, user_id, self.policy.limits)
        except Exception:
            self.policy.metrics.increment_errors("connection_limit")
            raise

    # -- registration ----------------------------------------------------------------

    async def register(
        self, client: LocalClient, queue: OutboundQueue, slot: Slot | None = None
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

    async def unregister(self, client: LocalClient) -> None:
        """Forget a client at once: its lookups, its channel, its groups and rooms."""
        registry = self.registry
        if client.id not in registry:
            return
        rooms = registry.rooms_of(client.id)
        registry.remove(client.id)
        if not len(registry) and self._empty is not None:
            self._empty.set()
        await self.layer.release_channel(client.id)
        for room in rooms:
            self._heartbeat.touch(room)
            if not registry.room_size(room):
                self.policy.metrics.decrement_rooms()
        for room in sorted(rooms):
            await self._room_events.announce(client, room, "left")

    async def change_user(self, client: LocalClient, old: str | None, new: str | None) -> None:
        """Move a registered client from user ``old`` to ``new`` (either may be None).

        Raises ``MaxUserConnectionsReached`` (counting ``new``'s handshakes in
        progress) before anything changes: a refused client stays under ``old``.
        """
        if client.id not in self.registry:
            return
        if new is not None:
            try:
                self.registry.check_user_limit(new, self.policy.limits)
            except Exception:
                self.policy.metrics.increment_errors("connection_limit")
                raise
            await self.layer.add_interest(USERS, new, client.id)
        if old is not None:
            await self.layer.discard_interest(USERS, old, client.id)

    # -- idle timeout ----------------------------------------------------------------

    async def close_idle(self) -> None:
        """Close clients that sent nothing for ``Config.idle_timeout`` seconds, forever."""
        idle = self.policy.config.idle_timeout
        while True:
            await asyncio.sleep(idle / 4)
            cutoff = clock() - idle
            for client in [c for c in self.registry.clients() if c.last_seen < cutoff]:
                self.policy.metrics.increment_errors("idle_timeout")
                await client.close(code=1000, reason="idle timeout")
