"""Health: what ``/healthz`` and ``/readyz`` report, and the readiness rules (pure).

A node is **alive** until it has stopped. It is **ready** for new
connections only while it is running (not starting, draining or stopped)
and its bus is connected, so a load balancer stops sending clients to a node
that cannot reach the rest of the cluster.

``state`` is one of ``starting`` (a hub not started yet counts as starting),
``running``, ``draining`` and ``stopped``. ``bus.last_error`` never carries
credentials: URL user info and ``password=``/``token=`` values are masked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from ..layers import BusStatus

__all__ = ["STATES", "HealthStatus", "assess", "scrub_secrets"]

#: The states a probe reports.
STATES = ("starting", "running", "draining", "stopped")

_URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s'\"]+@")
_KEY_VALUE = re.compile(
    r"(?P<key>\b(?:password|passwd|pass|token|secret|auth_token|nkeys_seed)\b['\"]?\s*[=:]\s*['\"]?)"
    r"[^\s'\",)]+",
    re.IGNORECASE,
)


def scrub_secrets(text: str | None) -> str | None:
    """Mask credentials in ``text``: ``scheme://user:pass@`` and ``password=...`` forms."""
    if not text:
        return text
    text = _URL_USERINFO.sub(r"\g<scheme>***@", text)
    return _KEY_VALUE.sub(r"\g<key>***", text)


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
    if state == "new":
        state = "starting"  # not started yet: the hub starts on first use
    return HealthStatus(
        alive=state != "stopped",
        ready=state == "running" and bus.connected,
        state=state,
        uptime_seconds=uptime_seconds,
        clients=clients,
        node_id=node_id,
        bus=replace(bus, last_error=scrub_secrets(bus.last_error)),
    )
