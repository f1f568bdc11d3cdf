"""publish_and_deliver: the one "publish, deliver locally, await the publish" sequence."""

from __future__ import annotations

import os

import pytest

from wshub_channels.core.wire import Envelope, Kind
from wshub_channels.errors import BusUnavailable
from wshub_channels.layers import Bus, InMemoryHubLayer

pytestmark = pytest.mark.unit


def _pair(bus: str) -> tuple[InMemoryHubLayer, InMemoryHubLayer, list[Envelope]]:
    sender, receiver = InMemoryHubLayer(bus=bus), InMemoryHubLayer(bus=bus)
    got: list[Envelope] = []
    receiver.set_hub_sink(got.append)
    return sender, receiver, got


def test_shared_follows_the_transport() -> None:
    """A private bus is not shared; a named one is."""
    assert not InMemoryHubLayer().shared
    assert InMemoryHubLayer(bus="shared-property").shared


async def test_unshared_bus_only_delivers() -> None:
    """With nobody else on the bus, deliver runs and nothing is published."""
    layer = InMemoryHubLayer()
    published: list[str] = []
    original = layer.bus.publish

    async def counting(subject: str, data: bytes) -> None:
        published.append(subject)
        await original(subject, data)

    layer.bus.publish = counting  # type: ignore[method-assign]
    delivered: list[bool] = []

    async def deliver() -> None:
        delivered.append(True)

    await layer.publish_and_deliver(layer.cluster_subject, Kind.BROADCAST, "", b"x", deliver)
    assert delivered == [True] and published == []


async def test_publish_is_on_the_wire_before_local_delivery() -> None:
    """Other nodes have the envelope before this node delivers; it carries kind and target."""
    sender, receiver, got = _pair("wire-first")
    await receiver.add_interest("r", "lobby", "client-1")
    seen_during_deliver: list[int] = []

    async def deliver() -> None:
        seen_during_deliver.append(len(got))

    subject = sender.subject("r", "lobby")
    await sender.publish_and_deliver(subject, Kind.ROOM, "lobby", b"payload", deliver)
    assert seen_during_deliver == [1]
    assert got == [Envelope(Kind.ROOM, sender.node_id, "lobby", b"payload", os.getpid())]


async def test_publish_is_awaited_when_delivery_fails() -> None:
    """A failing local delivery raises, and the publish still completes."""
    sender, receiver, got = _pair("deliver-fails")
    await receiver.add_interest("u", "alice", "client-1")

    async def deliver() -> None:
        raise RuntimeError("local delivery failed")

    with pytest.raises(RuntimeError, match="local delivery failed"):
        await sender.publish_and_deliver(
            sender.subject("u", "alice"), Kind.USER, "alice", b"p", deliver
        )
    assert [env.target for env in got] == ["alice"]


async def test_failed_publish_raises_bus_unavailable_after_delivery() -> None:
    """A publish the bus refuses is counted and reported, after local delivery ran."""
    sender, _, _ = _pair("publish-fails")
    events: list[str] = []
    sender.set_bus_listener(lambda event, error: events.append(event))
    await sender.start()

    async def refuse(subject: str, data: bytes) -> None:
        raise ConnectionError("bus gone")

    sender.bus.publish = refuse  # type: ignore[method-assign]
    delivered: list[bool] = []

    async def deliver() -> None:
        delivered.append(True)

    with pytest.raises(BusUnavailable):
        await sender.publish_and_deliver(sender.cluster_subject, Kind.BROADCAST, "", b"", deliver)
    assert delivered == [True]
    assert sender.stats.publish_errors == 1 and events == ["publish_failed"]


async def test_group_send_is_one_transport_call() -> None:
    """On a shared bus, group_send's publish and stored-member lookup are one call."""
    layer = InMemoryHubLayer(bus="one-call")
    calls: list[str] = []
    original = layer.store.publish_group

    async def counting(bus: Bus, subject: str, data: bytes, group: str) -> list[str]:
        calls.append(group)
        return await original(bus, subject, data, group)

    layer.store.publish_group = counting  # type: ignore[method-assign]
    await layer.group_add("jobs", "one-call.worker")
    await layer.group_send("jobs", {"type": "job"})
    assert calls == ["jobs"]
    assert await layer.receive("one-call.worker") == {"type": "job"}
