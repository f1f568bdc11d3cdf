"""Presence: heartbeats, goodbyes and eviction, and the node signals they fire.

Two or three hubs share one in-memory bus, as nodes of a cluster do over a
broker; the node signals reach sync and async receivers.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.rig.timing import async_wait_until
from wshub_channels import signals
from wshub_channels.conf import parse_settings
from wshub_channels.core.presence import NodeInfo, PresenceTable
from wshub_channels.hub.hub import Hub
from wshub_channels.layers import InMemoryHubLayer
from wshub_channels.testing import scaled

INTERVAL = scaled(0.05)


def _beat(node: str, seq: int = 1, pid: int = 1, **fields: Any) -> dict[str, Any]:
    msg = {"node_id": node, "host": "h", "pid": pid, "clients": 0, "users": 0}
    msg.update(seq=seq, base=None, part=0, parts=1, rooms={})
    msg.update(fields)
    return msg


def test_presence_table_beats_goodbyes_and_eviction() -> None:
    """A table reports new nodes, forgets goodbyes and evicts after three missed beats."""
    table = PresenceTable()
    assert table.beat(_beat("a"), now=0).new
    assert not table.beat(_beat("a", seq=2, clients=2), now=1).new
    assert table.beat(_beat("b"), now=2).new
    gone = table.expire(now=4.5, interval=1)
    assert [(n.node_id, n.clients) for n in gone] == [("a", 2)]
    assert table.leave("b", 1) == NodeInfo("b", "h", 1) and table.nodes() == []


@pytest.fixture
def node_events() -> Iterator[list[tuple[str, str, str]]]:
    events: list[tuple[str, str, str]] = []

    def sync_joined(sender: Any, node: NodeInfo, **kwargs: Any) -> None:
        events.append(("joined", "sync", node.node_id))

    async def async_joined(sender: Any, node: NodeInfo, **kwargs: Any) -> None:
        events.append(("joined", "async", node.node_id))

    def sync_left(sender: Any, node: NodeInfo, **kwargs: Any) -> None:
        events.append(("left", "sync", node.node_id))

    async def async_left(sender: Any, node: NodeInfo, **kwargs: Any) -> None:
        events.append(("left", "async", node.node_id))

    pairs = [
        (signals.node_joined, sync_joined),
        (signals.node_joined, async_joined),
        (signals.node_left, sync_left),
        (signals.node_left, async_left),
    ]
    for signal, receiver in pairs:
        signal.connect(receiver)
    yield events
    for signal, receiver in pairs:
        signal.disconnect(receiver)


async def _until(predicate: Any, units: float = 2) -> None:
    await async_wait_until(predicate, scaled(units), interval=INTERVAL / 2)


async def test_nodes_join_leave_and_are_evicted(node_events: list[tuple[str, str, str]]) -> None:
    """Nodes see each other join; a goodbye and three missed beats both mean left."""
    settings = parse_settings({"PRESENCE_INTERVAL": INTERVAL})
    a, b, c = (Hub(InMemoryHubLayer(bus="presence-test"), settings) for _ in range(3))
    for hub in (a, b, c):
        await hub.start()
    await _until(lambda: {b.node_id, c.node_id} <= {n.node_id for n in a.presence.nodes()})
    assert a.node_id in b.presence and a.node_id in c.presence
    for kind in ("sync", "async"):
        await _until(lambda kind=kind: ("joined", kind, b.node_id) in node_events)
    await b.shutdown()  # says goodbye
    await _until(lambda: ("left", "async", b.node_id) in node_events)
    assert b.node_id not in a.presence
    assert "presence heartbeat" in c.lifecycle.tasks
    c.lifecycle.tasks["presence heartbeat"].cancel()  # c dies without a goodbye
    await _until(lambda: c.node_id not in a.presence, units=3)
    await _until(lambda: ("left", "sync", c.node_id) in node_events)
    assert a.presence.nodes() == []
    await a.shutdown()
    await c.layer.close()
