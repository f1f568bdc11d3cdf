"""Global counts and cluster-wide queries: the part of the hub that spans every node.

:class:`ClusterQueries` is the component of the :class:`~wshub_channels.hub.Hub`
that answers for the whole cluster (the hub starts itself before it asks):

- ``global_client_count`` and ``global_room_count`` read the presence table
  in O(nodes), with no bus traffic, when it can be trusted: on a serving
  node that has listened for at least one ``PRESENCE_INTERVAL``, whose table
  is not empty and whose newest beat is at most one interval old (plus a
  quarter for timer jitter). Otherwise (publisher mode, a node that just
  started, a quiet table) they ask every node instead, so they never answer
  0 by mistake;
- ``global_user_count`` is exact by default: a user on two nodes counts once.
  The nodes send 8-byte digests of their user ids, never the ids, in hash
  ranges small enough for the bus's ``max_payload`` (one range up to
  hundreds of thousands of users per node). We chose an exact count over
  sketches in the heartbeats: it costs a scatter-gather per call but is
  never wrong. With ``exact=False`` a trusted table answers instead, in
  O(nodes) and with no bus traffic: the sum of each node's distinct users,
  an upper bound (a user on two nodes counts twice);
- ``find_client``, ``cluster_clients`` and ``nodes`` list what is where.

Every scatter-gather waits at most ``timeout`` (default the layer's
``request_timeout``) and ends as soon as every node the table knows has
answered (on Redis, also once every listener did). A serving node that has
listened for an interval and knows no other node waits a quarter interval
at most: on NATS, which cannot count listeners, a lone node would otherwise
wait out the whole timeout. ``cluster_clients`` names the nodes that did not answer in
``missing_nodes``; ``find_client`` raises ``HubTimeout`` naming the node.
Runs on the hub's loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from ..core.listing import (
    ClientInfo,
    ClusterPage,
    buckets_for,
    count_distinct,
    plan_slices,
    user_digests,
)
from ..core.membership import Registry
from ..core.names import channel_node, validate_room, validate_user_id
from ..core.presence import NodeInfo, biggest_rooms
from ..errors import HubTimeout
from ..layers import HubBus, NoResponders
from ..log import Throttle
from ..metrics import HubSample
from ..types import LocalClient
from .heartbeat import Heartbeat
from .lifecycle import Lifecycle

__all__ = ["ClusterQueries"]

_slow_log = Throttle(logging.getLogger("wshub_channels.presence"), 10.0)

#: The most hash ranges global_user_count splits the users into.
_MAX_BUCKETS = 1 << 12
#: A table whose newest beat is older than this many intervals is not trusted.
_STALE = 1.25


class ClusterQueries:
    """Global counts, ``find_client``, ``cluster_clients`` and ``nodes``."""

    def __init__(
        self, layer: HubBus, lifecycle: Lifecycle, registry: Registry, heartbeat: Heartbeat
    ) -> None:
        self.layer = layer
        self._lifecycle = lifecycle
        self.registry = registry
        self.heartbeat = heartbeat
        self.presence = heartbeat.table

    # -- when the table can be trusted --------------------------------------------

    def table_trusted(self, rooms: bool = False) -> bool:
        """True when the presence table answers for the cluster (see the module doc)."""
        table = self.heartbeat.table
        newest = table.newest()
        if not self._listened() or newest is None:
            return False
        now = asyncio.get_running_loop().time()
        if now - newest > self._lifecycle.policy.settings.presence_interval * _STALE:
            return False
        return not rooms or table.rooms_known

    def _listened(self, any_mode: bool = False) -> bool:
        """True when this hub has heard the bus for at least one interval (and serves,
        unless ``any_mode``: a publisher hears the beats too)."""
        since = self.heartbeat.listening_since
        if (self._lifecycle.mode != "server" and not any_mode) or since is None:
            return False
        return (
            asyncio.get_running_loop().time() - since
            >= self._lifecycle.policy.settings.presence_interval
        )

    async def _gather(
        self, op: str, *args: Any, timeout: float | None
    ) -> tuple[list[dict[str, Any]], list[str]]:
        """Ask every other node; return the answers and the known nodes that did not answer.

        The gather ends once every node in the table answered, when the table
        has had an interval to fill (else when every listener the bus counted
        answered, or at the timeout). A serving node that has listened for an
        interval and knows no other node is most likely alone: it still asks,
        but waits at most a quarter interval.
        """
        self.heartbeat.evict()
        known = {info.node_id for info in self.presence.nodes(rooms=False)}
        if not known and self._listened():
            wait = self.layer.request_timeout if timeout is None else timeout
            timeout = min(wait, self._lifecycle.policy.settings.presence_interval / 4)
        # The table's size ends the gather early only once it has had an interval to
        # fill: a table still filling would cut the gather short of nodes not heard yet.
        expect = len(self.presence) if known and self._listened(any_mode=True) else None
        replies = await self.layer.gather_call(op, *args, expect=expect, timeout=timeout)
        answers = [a for a in replies if isinstance(a, dict) and isinstance(a.get("node"), str)]
        missing = sorted(known - {a["node"] for a in answers})
        if missing:
            _slow_log.warning("%s: no answer in time from %s", op, ", ".join(missing))
        return answers, missing

    # -- counts -----------------------------------------------------------------------

    async def global_client_count(self, timeout: float | None = None) -> int:
        """How many clients the whole cluster has."""
        local = len(self.registry)
        if not self.layer.shared:
            return local
        if self.table_trusted():
            return local + self.presence.client_count()
        answers, _ = await self._gather("presence_counts", None, timeout=timeout)
        return local + sum(int(a["clients"]) for a in answers)

    async def global_room_count(self, room: str, timeout: float | None = None) -> int:
        """How many clients are in ``room`` on every node."""
        room = validate_room(room)
        local = self.registry.room_size(room)
        if not self.layer.shared:
            return local
        if self.table_trusted(rooms=True):
            return local + self.presence.room_count(room)
        answers, _ = await self._gather("presence_counts", room, timeout=timeout)
        return local + sum(int(a["room"]) for a in answers)

    async def global_user_count(self, exact: bool = True, timeout: float | None = None) -> int:
        """How many distinct users are connected anywhere (a user on two nodes counts once).

        Exact, by scatter-gather. With ``exact=False`` and a trusted table,
        the table's per-node user counts are summed instead (no bus traffic;
        an upper bound, since a user on two nodes counts twice). The hash ranges are
        sized from the table; a node whose share would not fit the bus says
        how many users it has, and the count starts over with enough ranges.
        Users of nodes that do not answer in time are not counted (and logged).
        """
        mine = self.registry.user_names()
        if not self.layer.shared:
            return len(mine)
        if not exact and self.table_trusted():
            return len(mine) + sum(info.users for info in self.presence.nodes(rooms=False))
        limit = self.layer.max_payload
        largest = max([len(mine), *(info.users for info in self.presence.nodes(rooms=False))])
        buckets = buckets_for(largest, limit)
        while buckets <= _MAX_BUCKETS:
            total, too_big = 0, 0
            for bucket in range(buckets):
                answers, _ = await self._gather("user_digests", bucket, buckets, timeout=timeout)
                too_big = max([0, *(a["users"] for a in answers if a.get("digests") is None)])
                if too_big:
                    break
                blobs = [a["digests"] for a in answers if isinstance(a.get("digests"), bytes)]
                total += count_distinct([user_digests(mine, bucket, buckets), *blobs])
            if not too_big:
                return total
            buckets = max(2 * buckets, buckets_for(too_big, limit))
        raise HubTimeout(f"a node's user digests do not fit the bus in {_MAX_BUCKETS} ranges")

    # -- queries ------------------------------------------------------------------------

    async def find_client(self, client_id: str, timeout: float | None = None) -> ClientInfo | None:
        """Describe client ``client_id`` wherever it is, or return None if no node has it.

        Asks only the node the id names. Raises ``HubTimeout`` (naming the
        node) when that node does not answer within ``timeout``.
        """
        local = self.registry.get(client_id)
        if local is not None:
            return local.describe()
        node = channel_node(client_id)
        if node is None or node == self.layer.node_id or not self.layer.shared:
            return None
        try:
            wire = await self.layer.remote_call(node, "client_info", client_id, timeout=timeout)
        except NoResponders:
            return None  # the node is gone, and its clients with it
        return None if wire is None else ClientInfo.from_wire(wire)

    async def cluster_clients(
        self,
        room: str | None = None,
        user_id: str | None = None,
        limit: int = 100,
        offset: int = 0,
        timeout: float | None = None,
        node: str | None = None,
    ) -> ClusterPage:
        """One page of the clients of the cluster, ordered by (node id, client id).

        ``room`` and ``user_id`` filter (both: clients of that user in that
        room); ``node`` keeps only that node's clients. The per-node counts
        come from the presence table when it is trusted (no filter or a
        room), else from a first scatter-gather; then only the nodes the page
        spans are asked, each for its slice.

        While the population is steady, consecutive pages neither repeat nor
        skip a client. Under churn, a client that connects or leaves on a node
        before the page's slice shifts that node's later clients by one: a
        page may then repeat or skip as many clients as joined or left ahead
        of it since the previous page. ``total`` and ``missing_nodes`` say
        what the page is made of.
        """
        room = None if room is None else validate_room(room)
        user_id = None if user_id is None else validate_user_id(user_id)
        counts: list[tuple[str, int]] = []
        missing: list[str] = []
        if self._lifecycle.mode == "server":
            counts.append((self.layer.node_id, len(self._matching(room, user_id))))
        if self.layer.shared and user_id is None and self.table_trusted(rooms=room is not None):
            counts.extend(self.presence.node_counts(room))
        elif self.layer.shared:
            answers, missing = await self._gather("count_clients", room, user_id, timeout=timeout)
            counts.extend((a["node"], a["count"]) for a in answers)
        if node is not None:
            counts = [(n, count) for n, count in counts if n == node]
            missing = [m for m in missing if m == node]
        plan = plan_slices(counts, offset, limit)
        pages = await asyncio.gather(
            *(self._slice(node, room, user_id, off, lim, timeout) for node, off, lim in plan),
            return_exceptions=True,
        )
        items: list[ClientInfo] = []
        for (node, _, _), page in zip(plan, pages, strict=True):
            if isinstance(page, BaseException):
                missing.append(node)
            else:
                items.extend(page)
        total = sum(count for node, count in counts if node not in missing)
        return ClusterPage(items, total, sorted(set(missing)))

    async def _slice(
        self,
        node: str,
        room: str | None,
        user_id: str | None,
        offset: int,
        limit: int,
        timeout: float | None,
    ) -> list[ClientInfo]:
        if node == self.layer.node_id:
            return self._page(room, user_id, offset, limit)
        wires = await self.layer.remote_call(
            node, "list_clients", room, user_id, offset, limit, timeout=timeout
        )
        return [ClientInfo.from_wire(wire) for wire in wires]

    async def nodes(self, timeout: float | None = None) -> list[NodeInfo]:
        """Every node of the cluster (this one included when it serves), by node id.

        From the presence table when it is trusted, else by scatter-gather;
        ``room_count`` is always each node's number of rooms, and ``rooms``
        its per-room counts (a gathered node sends its most populated rooms,
        as many as fit a quarter of the bus's ``max_payload``).
        """
        mine = [self.heartbeat.describe()] if self._lifecycle.mode == "server" else []
        if not self.layer.shared:
            return mine
        if self.table_trusted():
            others = self.presence.nodes()
        else:
            answers, _ = await self._gather("node_info", timeout=timeout)
            others = [NodeInfo.from_wire(a["info"]) for a in answers]
        return sorted([*mine, *others], key=lambda info: (info.node_id, info.pid))

    def sample(self, bus: dict[str, int]) -> HubSample:
        """What the metrics collector samples: queue depths, bus growth, presence."""
        trusted = self.layer.shared and self.table_trusted()
        mine = 1 if self._lifecycle.mode == "server" else 0
        return HubSample(
            queue_depths=self.registry.queue_depths(),
            bus=bus,
            bus_connected=self.layer.bus_status().connected if self.layer.shared else None,
            nodes=len(self.presence) + mine if trusted else None,
            cluster_clients=len(self.registry) + self.presence.client_count() if trusted else None,
        )

    # -- what this node answers -------------------------------------------------------------

    def _matching(self, room: str | None, user_id: str | None) -> list[LocalClient]:
        registry = self.registry
        if room is not None:
            found = registry.room_clients(room)
            if user_id is not None:
                found = [c for c in found if c.user_id == user_id]
        elif user_id is not None:
            found = registry.user_clients(user_id)
        else:
            found = registry.clients()
        return found

    def _page(
        self, room: str | None, user_id: str | None, offset: int, limit: int
    ) -> list[ClientInfo]:
        found = sorted(self._matching(room, user_id), key=lambda c: c.id)
        return [client.describe() for client in found[offset : offset + limit]]

    def register_ops(self) -> None:
        """Let other nodes count, list and describe this node's clients (a serving hub)."""
        if self._lifecycle.mode != "server":
            return  # a publisher hosts no clients: it stays out of gathers
        node = self.layer.node_id

        async def presence_counts(room: str | None) -> dict[str, Any]:
            count = 0 if room is None else self.registry.room_size(room)
            return {"node": node, "clients": len(self.registry), "room": count}

        async def count_clients(room: str | None, user_id: str | None) -> dict[str, Any]:
            return {"node": node, "count": len(self._matching(room, user_id))}

        async def list_clients(
            room: str | None, user_id: str | None, offset: int, limit: int
        ) -> list[dict[str, Any]]:
            return [info.to_wire() for info in self._page(room, user_id, offset, limit)]

        async def client_info(client_id: str) -> dict[str, Any] | None:
            found = self.registry.get(client_id)
            return None if found is None else found.describe().to_wire()

        async def node_info() -> dict[str, Any]:
            wire = self.heartbeat.describe().to_wire()
            budget = (self.layer.max_payload or 1 << 20) // 4
            wire["rooms"] = biggest_rooms(wire["rooms"], budget)
            return {"node": node, "info": wire}

        async def user_digest_op(bucket: int, buckets: int) -> dict[str, Any]:
            users = self.registry.user_names()
            digests = user_digests(users, bucket, buckets)
            limit = self.layer.max_payload
            if limit is not None and len(digests) > limit // 2:
                return {"node": node, "digests": None, "users": len(users)}  # ask for more ranges
            return {"node": node, "digests": digests}

        ops: Sequence[Any] = (presence_counts, count_clients, list_clients, client_info, node_info)
        for op in ops:
            self.layer.register_op(op.__name__, op)
        self.layer.register_op("user_digests", user_digest_op)
