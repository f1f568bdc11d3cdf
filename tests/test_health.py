"""Health: the liveness and readiness rules, the reported states, secrets kept out."""

from __future__ import annotations

import pytest

from wshub_channels.hub.health import STATES, assess, scrub_secrets
from wshub_channels.layers import BusStatus

pytestmark = pytest.mark.unit

UP = BusStatus(connected=True)
DOWN = BusStatus(connected=False, last_error="ConnectionError()")


@pytest.mark.parametrize(
    ("state", "bus", "alive", "ready", "reported"),
    [
        ("new", UP, True, False, "starting"),
        ("starting", UP, True, False, "starting"),
        ("running", UP, True, True, "running"),
        ("running", DOWN, True, False, "running"),
        ("draining", UP, True, False, "draining"),
        ("stopped", UP, False, False, "stopped"),
    ],
)
def test_ready_only_while_running_with_the_bus_up(
    state: str, bus: BusStatus, alive: bool, ready: bool, reported: str
) -> None:
    """Alive until stopped; ready only when running and the bus is connected."""
    health = assess(state, 1.5, 3, "node", bus)
    assert (health.alive, health.ready) == (alive, ready)
    assert (health.state, health.clients, health.node_id, health.bus) == (reported, 3, "node", bus)
    assert health.state in STATES


@pytest.mark.parametrize(
    ("text", "scrubbed"),
    [
        (
            "ConnectionError('redis://:hunter2@10.0.0.1:6379 refused')",
            "ConnectionError('redis://***@10.0.0.1:6379 refused')",
        ),
        ("nats://alice:s3cret@n1:4222 gone", "nats://***@n1:4222 gone"),
        ("AuthError(password=hunter2, host=x)", "AuthError(password=***, host=x)"),
        ("bad token: 'abc.def'", "bad token: '***'"),
        ("Error 111 connecting to 127.0.0.1:6390.", "Error 111 connecting to 127.0.0.1:6390."),
        (None, None),
    ],
)
def test_scrub_secrets_masks_url_credentials_and_secret_values(
    text: str | None, scrubbed: str | None
) -> None:
    """URL user info and password/token values never reach the probes."""
    assert scrub_secrets(text) == scrubbed


def test_assess_scrubs_the_bus_error() -> None:
    """A bus error that quotes a URL with credentials is reported without them."""
    bus = BusStatus(connected=False, last_error="OSError('rediss://u:pw@h:1')")
    health = assess("running", 0.0, 0, "n", bus)
    assert health.bus == BusStatus(connected=False, last_error="OSError('rediss://***@h:1')")
