"""Drain and shutdown of one hub, with real HubConsumers driven by HubCommunicators.

Each test gets its own in-memory layer (so its own hub) and ``WSHUB`` naming
it, so the drain settings apply. Clients announce ``id:<client id>`` once
registered (see :mod:`tests.inprocess`).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from tests.inprocess import WAIT, Clients, Conn, hub_clients
from wshub_channels import HubConsumer, get_hub, signals
from wshub_channels.conf import parse_settings
from wshub_channels.core.drain import DRAIN_INTERVAL
from wshub_channels.hub.hub import Hub
from wshub_channels.layers import InMemoryHubLayer
from wshub_channels.testing import HubCommunicator, scaled

pytestmark = pytest.mark.unit

ALIAS = "wshub-test-stopping"
CLOSED: list[tuple[str, int, float]] = []  # (client id, code, loop time) from on_close


class Leaver(HubConsumer):
    channel_layer_alias = ALIAS

    async def on_connect(self) -> None:
        await self.send_text(f"id:{self.id}")

    async def on_close(self, code: int) -> None:
        CLOSED.append((self.id, code, asyncio.get_running_loop().time()))


@pytest.fixture
async def clients() -> AsyncIterator[Clients]:
    CLOSED.clear()
    settings = {
        "CHANNEL_LAYER": ALIAS,
        "DRAIN_TIMEOUT": scaled(5),
        "DRAIN_BATCH": 2,
        "METRICS": "wshub_channels.metrics.DebugMetrics",  # refusals are read from it
    }
    async with hub_clients(ALIAS, settings) as made:
        yield made


def hub() -> Hub:
    return get_hub(ALIAS)


async def closed_with(conn: Conn) -> int:
    """Read the connection's output up to its close frame; return the close code."""
    while True:
        out = await conn.comm.receive_output(timeout=WAIT)
        if out["type"] == "websocket.close":
            return int(out["code"])


@pytest.fixture
def states() -> Iterator[list[str]]:
    seen: list[str] = []

    async def receiver(sender: Any, state: str, **kwargs: Any) -> None:
        seen.append(state)

    signals.hub_state_changed.connect(receiver)
    yield seen
    signals.hub_state_changed.disconnect(receiver)


async def test_a_drain_refuses_new_handshakes_at_once(clients: Clients) -> None:
    """stopping.begin turns the state to draining before it returns; handshakes then fail."""
    conn = await clients.connect(Leaver)
    assert hub().stopping.begin() is not None
    assert hub().state == "draining"
    health = hub().health()
    assert (health.state, health.ready, health.alive) == ("draining", False, True)
    assert health.clients == 1
    late = clients.communicator(Leaver)
    connected, _ = await late.connect(timeout=WAIT)
    assert not connected
    assert hub().metrics.stats()["handshakes_refused"] == 1
    await conn.comm.disconnect()


async def test_a_drain_ends_as_soon_as_the_last_client_leaves(clients: Clients) -> None:
    """With a long timeout, the drain returns once its clients are gone, and closes nobody."""
    conns = [await clients.connect(Leaver) for _ in range(3)]
    loop = asyncio.get_running_loop()
    began = loop.time()
    drain = asyncio.ensure_future(hub().drain(timeout=scaled(30)))
    await asyncio.sleep(scaled(0.05))
    assert not drain.done()
    for conn in conns:
        await conn.comm.disconnect()
    await asyncio.wait_for(drain, WAIT)
    assert loop.time() - began < scaled(2)
    assert sorted(code for _, code, _ in CLOSED) == [1000, 1000, 1000]


async def test_queued_messages_go_out_before_the_drain_close(clients: Clients) -> None:
    """Messages sent before the drain reach the client, then the close with 1001."""
    conn = await clients.connect(Leaver)
    for n in range(5):
        await hub().send_to_client(conn.id, f"m{n}")
    await hub().drain(timeout=0)
    got = [await conn.next() for _ in range(5)]
    assert got == [f"m{n}" for n in range(5)]
    assert await closed_with(conn) == 1001
    assert [(cid, code) for cid, code, _ in CLOSED] == [(conn.id, 1001)]


async def test_the_drain_closes_the_rest_in_batches(clients: Clients) -> None:
    """5 clients, DRAIN_BATCH 2: closes go out as 2, 2, 1, one interval apart."""
    conns = [await clients.connect(Leaver) for _ in range(5)]
    await hub().drain(timeout=scaled(0.1))
    assert [await closed_with(conn) for conn in conns] == [1001] * 5
    times = sorted(t for _, _, t in CLOSED)
    assert len(times) == 5
    batch_starts = [times[0], times[2], times[4]]
    for earlier, later in itertools.pairwise(batch_starts):
        assert later - earlier >= DRAIN_INTERVAL * 0.9
    assert times[1] - times[0] < DRAIN_INTERVAL / 2  # one batch closes together
    assert times[3] - times[2] < DRAIN_INTERVAL / 2


async def test_concurrent_drains_join_one_and_listeners_hear_of_it_once(clients: Clients) -> None:
    """Two drain calls, one drain: the when_draining listener is called once."""
    began: list[asyncio.Task[None]] = []
    hub().stopping.when_draining(began.append)
    conn = await clients.connect(Leaver)
    first = asyncio.ensure_future(hub().drain(timeout=scaled(0.1)))
    second = asyncio.ensure_future(hub().drain(timeout=scaled(10)))
    await asyncio.wait_for(asyncio.gather(first, second), WAIT)
    assert len(began) == 1 and began[0].done()
    assert await closed_with(conn) == 1001


async def test_shutdown_runs_every_disconnect_hook_and_signal(
    clients: Clients, states: list[str]
) -> None:
    """shutdown closes each client with 1001, calls on_close and client_disconnected once each."""
    disconnected: list[tuple[str, int]] = []

    def receiver(sender: Any, client: Any, code: int, **kwargs: Any) -> None:
        disconnected.append((client.id, code))

    signals.client_disconnected.connect(receiver, sender=Leaver)
    try:
        conns = [await clients.connect(Leaver) for _ in range(3)]
        await asyncio.gather(hub().shutdown(), hub().shutdown())  # the second joins
    finally:
        signals.client_disconnected.disconnect(receiver, sender=Leaver)
    ids = sorted(conn.id for conn in conns)
    assert sorted((cid, code) for cid, code, _ in CLOSED) == [(cid, 1001) for cid in ids]
    assert sorted(disconnected) == [(cid, 1001) for cid in ids]
    assert [await closed_with(conn) for conn in conns] == [1001] * 3
    assert hub().state == "stopped" and hub().client_count() == 0
    health = hub().health()
    assert (health.alive, health.ready, health.state) == (False, False, "stopped")
    assert states == ["starting", "running", "draining", "stopped"]
    await hub().shutdown()  # idempotent
    assert states == ["starting", "running", "draining", "stopped"]


async def test_drain_then_shutdown_announce_each_state_once(
    clients: Clients, states: list[str]
) -> None:
    """hub_state_changed: starting, running, draining, stopped, in order, once each."""
    await clients.connect(Leaver)
    await hub().drain(timeout=0)
    await hub().shutdown()
    assert states == ["starting", "running", "draining", "stopped"]


async def test_a_hub_that_is_not_running_has_nothing_to_drain() -> None:
    """drain() on a hub never started returns at once and leaves it as it was."""
    idle = Hub(InMemoryHubLayer(), parse_settings({}))
    await idle.drain()
    assert idle.state == "new" and await idle.start_drain() is False
    assert idle.health().state == "starting"


async def test_the_drain_op_lets_another_node_start_a_drain() -> None:
    """Over a shared bus, one node's ``drain`` op call starts the other's drain."""
    settings = parse_settings({"DRAIN_TIMEOUT": scaled(5)})
    a, b = (Hub(InMemoryHubLayer(bus="stopping-test"), settings) for _ in range(2))
    for node in (a, b):
        await node.start()
    try:
        answer = await b.layer.remote_call(a.node_id, "drain", None)
        assert answer == {"node_id": a.node_id, "state": "draining", "clients": 0}
        assert a.state == "draining" and b.state == "running"
    finally:
        await a.shutdown()
        await b.shutdown()


async def test_a_communicator_handshake_after_shutdown_is_refused(clients: Clients) -> None:
    """After shutdown, HubCommunicator.connect raises HubStopped from the hub's start."""
    await clients.connect(Leaver)
    await hub().shutdown()
    comm = HubCommunicator(Leaver.as_asgi(), "/ws/")
    with pytest.raises(Exception, match="shut down"):
        await comm.connect(timeout=WAIT)
