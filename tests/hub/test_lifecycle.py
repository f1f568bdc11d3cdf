"""Lifecycle: the states and their announcements, start, check_accepting, tasks, bus events.

Built directly on a private ``InMemoryHubLayer`` and a Policy; the
``hub_state_changed`` and ``hub_error`` receivers listen for the policy's
sender only.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from tests.hub.kit import Sender, settings
from wshub_channels import signals
from wshub_channels.errors import BusUnavailable, HubDraining, HubStopped
from wshub_channels.hub.lifecycle import Lifecycle
from wshub_channels.hub.policy import Policy
from wshub_channels.layers import InMemoryHubLayer


@pytest.fixture
async def lifecycle() -> AsyncIterator[Lifecycle]:
    layer = InMemoryHubLayer()
    made = Lifecycle(layer, Policy(settings(), Sender))
    yield made
    made.cancel_tasks()
    await layer.close()


@pytest.fixture
def states() -> Iterator[list[str]]:
    heard: list[str] = []

    async def receiver(sender: Any, state: str, **kwargs: Any) -> None:
        heard.append(state)

    signals.hub_state_changed.connect(receiver, sender=Sender)
    yield heard
    signals.hub_state_changed.disconnect(receiver, sender=Sender)


async def settle(lifecycle: Lifecycle) -> None:
    if lifecycle._announcing is not None:
        await lifecycle._announcing


async def test_start_announces_starting_then_running_and_wires_once(lifecycle, states) -> None:
    wired: list[str] = []
    await lifecycle.start(lambda: wired.append(lifecycle.state))
    await settle(lifecycle)
    assert states == ["starting", "running"]
    assert wired == ["starting"]  # the wiring runs before the hub says it runs
    assert lifecycle.state == "running" and lifecycle.running
    assert lifecycle.home_loop is asyncio.get_running_loop()
    assert lifecycle.mode == "server" and lifecycle.started_at is not None


async def test_start_again_is_a_no_op(lifecycle, states) -> None:
    wired: list[int] = []
    await lifecycle.start(lambda: wired.append(1))
    await lifecycle.start(lambda: wired.append(2))
    await asyncio.gather(lifecycle.start(lambda: wired.append(3)), lifecycle.start(lambda: None))
    await settle(lifecycle)
    assert wired == [1] and states == ["starting", "running"]


async def test_concurrent_first_starts_wire_once(lifecycle) -> None:
    wired: list[int] = []
    await asyncio.gather(*(lifecycle.start(lambda: wired.append(1)) for _ in range(5)))
    assert wired == [1]


async def test_states_are_announced_in_order_one_after_another(lifecycle, states) -> None:
    for state in ("starting", "running", "draining", "stopped"):
        lifecycle.set_state(state)
    await settle(lifecycle)
    assert states == ["starting", "running", "draining", "stopped"]


async def test_entering_the_current_state_announces_nothing(lifecycle, states) -> None:
    assert lifecycle.set_state("new") is None
    lifecycle.set_state("running")
    assert lifecycle.set_state("running") is None
    await settle(lifecycle)
    assert states == ["running"]


async def test_nobody_listening_means_no_announcement_task(lifecycle) -> None:
    assert lifecycle.set_state("running") is None
    assert lifecycle.state == "running"


async def test_a_stopped_hub_does_not_start_again(lifecycle) -> None:
    lifecycle.set_state("stopped")
    with pytest.raises(HubStopped):
        await lifecycle.start(lambda: None)


async def test_a_draining_hub_is_running_and_is_not_started_again(lifecycle) -> None:
    wired: list[int] = []
    await lifecycle.start(lambda: wired.append(1))
    lifecycle.set_state("draining")
    assert lifecycle.running
    await lifecycle.start(lambda: wired.append(2))
    assert wired == [1] and lifecycle.state == "draining"


@pytest.mark.parametrize(
    ("state", "error"),
    [
        ("new", None),
        ("starting", None),
        ("running", None),
        ("draining", HubDraining),
        ("stopped", HubStopped),
    ],
)
def test_check_accepting_per_state(state, error) -> None:
    lifecycle = Lifecycle(InMemoryHubLayer(), Policy(settings(), Sender))
    lifecycle.state = state
    if error is None:
        lifecycle.check_accepting()
    else:
        with pytest.raises(error):
            lifecycle.check_accepting()


async def test_a_failed_layer_start_goes_back_to_new(states) -> None:
    class Failing(InMemoryHubLayer):
        async def start(self) -> None:
            raise OSError("no bus")

    lifecycle = Lifecycle(Failing(), Policy(settings(), Sender))
    with pytest.raises(OSError, match="no bus"):
        await lifecycle.start(lambda: None)
    await settle(lifecycle)
    assert lifecycle.state == "new" and states == ["starting", "new"]


async def test_background_tasks_are_named_and_cancelled_together(lifecycle) -> None:
    lifecycle.spawn_task(asyncio.sleep(3600), "sleeper")
    lifecycle.spawn_task(asyncio.sleep(3600), "other")
    tasks = dict(lifecycle.tasks)
    assert set(tasks) == {"sleeper", "other"}
    lifecycle.cancel_tasks()
    await asyncio.gather(*tasks.values(), return_exceptions=True)
    assert all(task.cancelled() for task in tasks.values())


async def test_bus_trouble_is_counted_and_losing_the_bus_is_a_hub_error(lifecycle) -> None:
    errors: list[BaseException] = []

    async def receiver(sender: Any, client: Any, error: BaseException, **kw: Any) -> None:
        errors.append(error)

    signals.hub_error.connect(receiver, sender=Sender)
    try:
        await lifecycle.start(lambda: None)
        listener = lifecycle._on_bus_event
        listener("up", None)
        listener("publish_failed", OSError("once"))
        listener("down", OSError("gone"))
        for _ in range(10):
            await asyncio.sleep(0)
    finally:
        signals.hub_error.disconnect(receiver, sender=Sender)
    counted = lifecycle.policy.metrics.stats()["errors"]  # type: ignore[attr-defined]
    assert counted == {"bus_publish_failed": 1, "bus_down": 1}
    assert len(errors) == 1 and isinstance(errors[0], BusUnavailable)


async def test_health_reports_state_clients_and_node(lifecycle) -> None:
    before = lifecycle.health(0)
    assert before.state == "starting"  # a new hub starts on first use
    assert before.uptime_seconds == 0.0 and not before.ready
    await lifecycle.start(lambda: None)
    status = lifecycle.health(3)
    assert status.state == "running" and status.clients == 3
    assert status.node_id == lifecycle.layer.node_id
    assert status.ready and status.alive
