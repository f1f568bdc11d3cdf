"""What cluster-wide queries and events carry, and how a page is cut across nodes (pure).

:class:`ClientInfo` describes one connection wherever it is;
:class:`ClusterPage` is one page of :meth:`Hub.cluster_clients
<wshub_channels.hub.Hub.cluster_clients>`; :class:`RoomEvent` is someone
joining or leaving a room, on any node. Clients are ordered by (node id,
client id): :func:`plan_slices` turns the per-node counts into the slice
each node must give, so a page asks only the nodes it spans, and each of
them for only its part.

:func:`user_digests` and :func:`count_distinct` count users exactly across
nodes without shipping their ids: each node sends 8-byte digests of its
user ids, optionally only those in one of ``buckets`` hash ranges, so that
each answer stays under the bus's ``max_payload``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "ClientInfo",
    "ClusterPage",
    "RoomEvent",
    "buckets_for",
    "count_distinct",
    "plan_slices",
    "user_digests",
]

_DIGEST = 8


@dataclass(frozen=True, slots=True)
class ClientInfo:
    """One connection, as any node can see it.

    ``connected_since`` is UTC; ``messages_in`` counts frames received,
    ``messages_out`` frames accepted for sending (after the drop policy);
    ``queue_depth`` is how many wait in its outbound queue now.
    """

    id: str
    node: str
    user_id: str | None = None
    rooms: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    remote_address: str | None = None
    user_agent: str | None = None
    connected_since: datetime | None = None
    messages_in: int = 0
    messages_out: int = 0
    queue_depth: int = 0

    def to_wire(self) -> dict[str, Any]:
        data = asdict(self)
        since = self.connected_since
        data["connected_since"] = None if since is None else since.timestamp()
        return data

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> ClientInfo:
        """Build from :meth:`to_wire`'s dict; raise ``TypeError`` if it is malformed."""
        if not isinstance(data, dict) or not isinstance(data.get("id"), str):
            raise TypeError("malformed client info")
        known = {k: data[k] for k in _CLIENT_FIELDS if k in data}
        since = known.get("connected_since")
        if since is not None:
            known["connected_since"] = datetime.fromtimestamp(float(since), UTC)
        return cls(**known)


_CLIENT_FIELDS = tuple(ClientInfo.__dataclass_fields__)


@dataclass(frozen=True, slots=True)
class ClusterPage:
    """One page of clients across the cluster.

    ``total`` counts the matching clients on the nodes that answered;
    ``missing_nodes`` names the nodes that did not (their clients are
    neither in ``items`` nor in ``total``).
    """

    items: list[ClientInfo]
    total: int
    missing_nodes: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class RoomEvent:
    """``client_id`` (of ``user_id``, on ``node``) ``event``-ed ``room``.

    ``event`` is ``"joined"`` or ``"left"`` (leaving includes disconnecting).
    """

    room: str
    event: str
    client_id: str
    user_id: str | None
    node: str

    def to_wire(self) -> list[Any]:
        return [self.event, self.client_id, self.user_id, self.node]

    @classmethod
    def from_wire(cls, room: str, data: Any) -> RoomEvent:
        """Build from :meth:`to_wire`'s list; raise ``TypeError`` if it is malformed."""
        if not (isinstance(data, list) and len(data) >= 4 and data[0] in ("joined", "left")):
            raise TypeError("malformed room event")
        event, client_id, user_id, node = data[:4]
        if not isinstance(client_id, str) or not isinstance(node, str):
            raise TypeError("malformed room event")
        if user_id is not None and not isinstance(user_id, str):
            raise TypeError("malformed room event")
        return cls(room, event, client_id, user_id, node)


def plan_slices(
    counts: Iterable[tuple[str, int]], offset: int, limit: int
) -> list[tuple[str, int, int]]:
    """Return ``(node, offset, limit)`` for each node a page spans, in node order.

    ``counts`` gives each node's number of matching clients; the clients of
    the cluster are ordered by node id, then client id, and the page is
    ``[offset, offset + limit)`` of that order.
    """
    if offset < 0 or limit < 0:
        raise ValueError("offset and limit must not be negative")
    plan = []
    start, end = offset, offset + limit
    position = 0
    for node, count in sorted(counts):
        lo, hi = max(start, position), min(end, position + count)
        if lo < hi:
            plan.append((node, lo - position, hi - lo))
        position += count
        if position >= end:
            break
    return plan


def _digest(user_id: str) -> bytes:
    return hashlib.blake2b(user_id.encode("utf-8"), digest_size=_DIGEST).digest()


def user_digests(user_ids: Iterable[str], bucket: int = 0, buckets: int = 1) -> bytes:
    """The 8-byte digests of ``user_ids`` that fall in hash range ``bucket`` of ``buckets``.

    Two ids collide with odds of about n²/2⁶⁵ (below 1 in 30 million at a
    million users), so counting digests counts users.
    """
    picked = []
    for user_id in user_ids:
        d = _digest(user_id)
        if buckets == 1 or int.from_bytes(d[:4]) * buckets >> 32 == bucket:
            picked.append(d)
    return b"".join(picked)


def count_distinct(answers: Sequence[bytes]) -> int:
    """How many distinct users the digests of several nodes (one bucket) name."""
    seen: set[bytes] = set()
    for blob in answers:
        if len(blob) % _DIGEST:
            raise ValueError("malformed user digests")
        seen.update(blob[i : i + _DIGEST] for i in range(0, len(blob), _DIGEST))
    return len(seen)


def buckets_for(largest: int, max_payload: int | None) -> int:
    """How many hash ranges keep one node's digests (``largest`` users) under the limit."""
    budget = max(64 * 1024, (max_payload or 8 * 1024 * 1024) // 2)
    return max(1, -(-largest * _DIGEST // budget))
