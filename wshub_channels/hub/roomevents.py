"""Room presence events across the cluster: members hear who joins or leaves, on any node.

``room_joined`` and ``room_left`` (the signals and ``on_room_join``) fire on
the client's own node only. A consumer that wants its room's members told,
wherever they are, opts in per room: :meth:`HubConsumer.room_presence
<wshub_channels.connection.consumer.HubConsumer.room_presence>` returns True for that
room. Then each join and leave (a disconnect included) of such a client is
published once on the room's subject, and every other member of the room
whose ``room_presence(room)`` is True gets :meth:`on_room_presence` with a
:class:`~wshub_channels.core.listing.RoomEvent`, exactly once per event: local
members directly, remote members through the one envelope their node
receives (a node never takes its own envelope back).

A room without opted-in clients costs nothing: no envelope is published.
Events are delivered in a task of their own, so a slow hook never holds up
the join. Runs on the hub's loop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from ..core.listing import RoomEvent
from ..core.membership import ROOMS, Registry
from ..core.wire import Envelope, Kind, pack_value, unpack_value
from ..errors import BusUnavailable
from ..layers import HubBus
from ..log import Throttle
from ..metrics import MetricsCollector
from ..tasks import spawn
from ..types import LocalClient

__all__ = ["RoomEvents"]

logger = logging.getLogger("wshub_channels.rooms")
_failed = Throttle(logger, 10.0)


class RoomEvents:
    """Publishes this node's room joins and leaves, and hands events to local members."""

    def __init__(
        self, layer: HubBus, registry: Registry, metrics: Callable[[], MetricsCollector]
    ) -> None:
        self.layer = layer
        self.registry = registry
        self._metrics = metrics
        #: room -> the local members that opted in (so an event never scans a whole room)
        self.watchers: dict[str, set[str]] = {}

    async def announce(self, client: LocalClient, room: str, event: str) -> None:
        """Tell ``room``'s members, on every node, that ``client`` joined or left it.

        A join is announced when ``client.room_presence(room)`` says so, and
        the client then watches the room; its leave is announced if it did.
        Never raises: a publish the bus refuses is logged and counted (the
        local members were told already), so a join or a close goes on.
        """
        if event == "joined":
            if not client.room_presence(room):
                return
            self.watchers.setdefault(room, set()).add(client.id)
        else:
            watching = self.watchers.get(room)
            if watching is None or client.id not in watching:
                return
            watching.discard(client.id)
            if not watching:
                del self.watchers[room]
        news = RoomEvent(room, event, client.id, client.user_id, self.layer.node_id)
        payload = pack_value(news.to_wire()) if self.layer.shared else b""

        async def deliver() -> None:
            self.deliver(news)

        subject = self.layer.subject(ROOMS, room)
        try:
            await self.layer.publish_and_deliver(subject, Kind.ROOM_EVENT, room, payload, deliver)
        except BusUnavailable as exc:
            self._metrics().increment_errors("room_event_publish")
            _failed.warning("room event (%s %s) not published: %s", event, room, exc)

    def receive(self, env: Envelope) -> None:
        """Take a room event from another node."""
        try:
            news = RoomEvent.from_wire(env.target, unpack_value(env.payload, "room event"))
        except (ValueError, TypeError):
            self.layer.count_bad_envelope()
            return
        self.deliver(news)

    def deliver(self, news: RoomEvent) -> None:
        """Call ``on_room_presence`` of each local member that wants it (not the subject)."""
        watching = self.watchers.get(news.room, ())
        found = (self.registry.get(i) for i in watching if i != news.client_id)
        members = [c for c in found if c is not None and not c.is_closed]
        if members:
            spawn(_tell(members, news), "room presence event")


async def _tell(members: list[LocalClient], news: RoomEvent) -> None:
    for member in members:
        try:
            await member.on_room_presence(news)
        except Exception as exc:
            await member.report_error(exc, "room_presence")
