"""Presence: which nodes are alive, from their heartbeats (pure, no I/O).

Every node publishes a heartbeat each ``PRESENCE_INTERVAL`` on the cluster
subject and a goodbye when it shuts down. :class:`PresenceTable` keeps the
latest beat per node; a node that misses ``MISSED_BEATS`` beats is evicted.
Not thread-safe; the hub uses it from its own loop.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["MISSED_BEATS", "NodeInfo", "PresenceTable"]

MISSED_BEATS = 3


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """What a node says about itself in each heartbeat."""

    node_id: str
    host: str = ""
    pid: int = 0
    clients: int = 0
    users: int = 0
    rooms: dict[str, int] = field(default_factory=dict)

    def to_wire(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> NodeInfo:
        known = {
            k: data[k] for k in ("node_id", "host", "pid", "clients", "users", "rooms") if k in data
        }
        return cls(**known)


class PresenceTable:
    """The other nodes of the cluster, as last heard."""

    def __init__(self) -> None:
        self._nodes: dict[str, tuple[NodeInfo, float]] = {}

    def beat(self, info: NodeInfo, now: float) -> bool:
        """Record a heartbeat; return True if the node was not known."""
        new = info.node_id not in self._nodes
        self._nodes[info.node_id] = (info, now)
        return new

    def leave(self, node_id: str) -> NodeInfo | None:
        """Forget a node that said goodbye; return what was known of it."""
        entry = self._nodes.pop(node_id, None)
        return None if entry is None else entry[0]

    def expire(self, now: float, interval: float) -> list[NodeInfo]:
        """Evict and return the nodes silent for more than ``MISSED_BEATS`` intervals."""
        cutoff = now - MISSED_BEATS * interval
        gone = [node_id for node_id, (_, seen) in self._nodes.items() if seen < cutoff]
        return [self._nodes.pop(node_id)[0] for node_id in gone]

    def nodes(self) -> list[NodeInfo]:
        return [info for info, _ in self._nodes.values()]

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._nodes
