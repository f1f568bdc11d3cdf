"""Health: the liveness and readiness rules."""

from __future__ import annotations

import pytest

from wshub_channels.health import assess
from wshub_channels.layers.transport import BusStatus

pytestmark = pytest.mark.unit

UP = BusStatus(connected=True)
DOWN = BusStatus(connected=False, last_error="ConnectionError()")


@pytest.mark.parametrize(
    ("state", "bus", "alive", "ready"),
    [
        ("new", UP, True, False),
        ("starting", UP, True, False),
        ("running", UP, True, True),
        ("running", DOWN, True, False),
        ("draining", UP, True, False),
        ("stopped", UP, False, False),
    ],
)
def test_ready_only_while_running_with_the_bus_up(
    state: str, bus: BusStatus, alive: bool, ready: bool
) -> None:
    """Alive until stopped; ready only when running and the bus is connected."""
    health = assess(state, 1.5, 3, "node", bus)
    assert (health.alive, health.ready) == (alive, ready)
    assert (health.state, health.clients, health.node_id, health.bus) == (state, 3, "node", bus)
