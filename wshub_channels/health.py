"""Health: what ``/healthz`` and ``/readyz`` report, and the readiness rules (pure).

A node is **alive** until it has stopped. It is **ready** for new
connections only while it is running (not starting, draining or stopped)
and its bus is connected, so a load balancer stops sending clients to a node
that cannot reach the rest of the cluster.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .layers.transport import BusStatus

__all__ = ["HealthStatus", "assess"]


@dataclass(frozen=True, slots=True)
class HealthStatus:
    """What ``/healthz`` and ``/readyz`` report."""

    alive: bool
    ready: bool
    state: str
    uptime_seconds: float
    clients: int
    node_id: str
    bus: BusStatus = field(default_factory=lambda: BusStatus(connected=False))


def assess(
    state: str, uptime_seconds: float, clients: int, node_id: str, bus: BusStatus
) -> HealthStatus:
    """Apply the liveness and readiness rules to a hub's state."""
    return HealthStatus(
        alive=state != "stopped",
        ready=state == "running" and bus.connected,
        state=state,
        uptime_seconds=uptime_seconds,
        clients=clients,
        node_id=node_id,
        bus=bus,
    )
