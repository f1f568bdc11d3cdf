"""Three real server processes (daphne, daphne, uvicorn) sharing one bus.

Clients connect to different nodes; every cross-node operation must arrive
exactly once: no loss, no duplicates. Every test runs once per bus (the
``bus`` fixture of ``conftest.py``): Redis, NATS, and a NATS cluster whose
servers the hub nodes are spread over.
"""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from websockets.asyncio.client import connect

from tests.integration.buses import INTERVAL, Bus, node_env
from tests.integration.peer import Peer
from tests.integration.test_hub_servers import _got
from tests.rig.servers import AsgiServer, StartAsgiServer
from tests.rig.timing import async_wait_until
from wshub_channels.testing import scaled

pytestmark = pytest.mark.integration
APP = "tests.apps.hub_app:application"


@pytest.fixture(scope="module")
def prefix(bus: Bus) -> str:
    return f"cl{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def cluster(asgi_server: StartAsgiServer, bus: Bus, prefix: str) -> Iterator[list[AsgiServer]]:
    kinds = ("daphne", "daphne", "uvicorn")
    servers = [
        asgi_server(kind, APP, node_env(bus, prefix, node))  # type: ignore[arg-type]
        for node, kind in enumerate(kinds)
    ]
    yield servers
    for server in servers:
        server.stop()


@pytest.fixture
async def crowd(cluster: list[AsgiServer]) -> AsyncIterator[list[Peer]]:
    """9 clients: peer i on node i % 3, in room ``room{i % 2}`` and ``all``, user ``u{i % 4}``."""
    peers = []
    for i in range(9):
        url = cluster[i % 3].ws_url("/ws/control/")
        peers.append(await Peer.open(f"{url}?user=u{i % 4}&rooms=room{i % 2},all"))
    yield peers
    for peer in peers:
        await peer.close()


def _node(client_id: str) -> str:
    return client_id.rsplit("!", 1)[0].rsplit(".", 1)[-1]


async def test_clients_on_three_nodes_have_three_node_ids(crowd: list[Peer]) -> None:
    """Each server process is its own node, and client ids name it."""
    nodes = [_node(p.id) for p in crowd]
    assert len(set(nodes)) == 3
    assert nodes[0] == nodes[3] == nodes[6] != nodes[1]


async def test_room_broadcast_across_nodes_with_exclude(crowd: list[Peer]) -> None:
    """A room broadcast from any node reaches every member on every node once."""
    await crowd[1].call("broadcast_to_room", room="room0", text="to room0")
    assert await _got(crowd, "to room0") == [0, 2, 4, 6, 8]
    excluded = [crowd[2].id, crowd[4].id]  # members on two other nodes
    await crowd[0].call("broadcast_to_room", room="room0", text="not 2, 4", exclude=excluded)
    assert await _got(crowd, "not 2, 4") == [0, 6, 8]


async def test_broadcast_from_every_node_reaches_everyone_once(crowd: list[Peer]) -> None:
    """broadcast from each of the three nodes: all nine clients, once each."""
    for sender in crowd[:3]:
        await sender.call("broadcast", text=f"from {sender.id}")
        assert await _got(crowd, f"from {sender.id}") == list(range(9))


async def test_send_to_user_spans_nodes(crowd: list[Peer]) -> None:
    """A user connected to three nodes gets the message on each connection once."""
    await crowd[5].call("send_to_user", user="u0", text="hi u0")
    assert await _got(crowd, "hi u0") == [0, 4, 8]


async def test_send_to_client_on_another_node(crowd: list[Peer]) -> None:
    """send_to_client reaches a remote client, text as text and bytes as binary."""
    await crowd[0].call("send_to_client", client=crowd[4].id, text="just you")
    assert await _got(crowd, "just you") == [4]
    await crowd[0].call("send_to_client", client=crowd[5].id, text="raw", binary=True)
    assert await crowd[5].next() == b"raw"
    assert await crowd[5].nothing(0.2)


async def test_send_to_missing_client_raises_client_not_found(crowd: list[Peer]) -> None:
    """No such client on a live node, or a node that does not exist: ClientNotFound."""
    live_node_ghost = crowd[1].id.rsplit("!", 1)[0] + "!nosuchclient"
    assert await crowd[0].expect_error("send_to_client", client=live_node_ghost) == (
        "ClientNotFound"
    )
    assert await crowd[0].expect_error("send_to_client", client="specific.zzzzzzzzzzzz!x") == (
        "ClientNotFound"
    )


async def test_membership_of_remote_clients(crowd: list[Peer]) -> None:
    """join_room, leave_room, leave_all_rooms and disconnect on clients of other nodes."""
    target = crowd[1]  # node 1; the caller is on node 0
    await crowd[0].call("join_room", client=target.id, room="extra")
    await crowd[3].call("broadcast_to_room", room="extra", text="extra news")
    assert await _got(crowd, "extra news") == [1]
    assert await crowd[0].expect_error("join_room", client=target.id, room="extra") == (
        "AlreadyInRoom"
    )
    await crowd[0].call("leave_room", client=target.id, room="extra")
    assert await crowd[0].expect_error("leave_room", client=target.id, room="extra") == (
        "NotInRoom"
    )
    await crowd[0].call("leave_all_rooms", client=target.id)
    assert (await target.call("lookup"))["my_rooms"] == []
    await crowd[0].call("broadcast_to_room", room="all", text="after leave_all")
    assert 1 not in await _got(crowd, "after leave_all")

    await crowd[0].call("disconnect", client=crowd[2].id, code=4002)
    await asyncio.wait_for(crowd[2].ws.wait_closed(), scaled(3))
    assert crowd[2].ws.close_code == 4002


async def test_remote_call_to_a_frozen_node_raises_hub_timeout(
    cluster: list[AsgiServer], crowd: list[Peer]
) -> None:
    """A node that is there but does not answer: HubTimeout, and the caller is unharmed."""
    frozen = cluster[2]
    os.kill(frozen.pid, signal.SIGSTOP)
    try:
        error = await crowd[0].expect_error("join_room", client=crowd[2].id, room="x")
    finally:
        os.kill(frozen.pid, signal.SIGCONT)
    assert error == "HubTimeout"
    await crowd[0].call("broadcast_to_room", room="room1", text="still fine")
    assert await _got(crowd, "still fine") == [1, 3, 5, 7]


async def test_stock_consumer_group_chat_across_nodes(cluster: list[AsgiServer]) -> None:
    """A stock AsyncWebsocketConsumer group chat with clients on three nodes."""
    # Stock consumers add their groups before they accept, so the chat is ready here.
    sockets = [await connect(server.ws_url("/ws/stock/")) for server in cluster]
    try:
        for n, ws in enumerate(sockets):
            await ws.send(f"hello {n}")
        for ws in sockets:
            got = [await asyncio.wait_for(ws.recv(), scaled(3)) for _ in range(3)]
            assert sorted(got) == ["hello 0", "hello 1", "hello 2"]
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(ws.recv(), scaled(0.2))
    finally:
        for ws in sockets:
            await ws.close()


async def _node_events(peer: Peer) -> list[list[str]]:
    return list(await peer.call("node_events"))


async def _wait_for_event(peers: list[Peer], event: list[str], within: float) -> None:
    """Wait until every peer's node has recorded ``event``."""
    for peer in peers:

        async def seen(peer: Peer = peer) -> bool:
            return event in await _node_events(peer)

        await async_wait_until(seen, scaled(within), interval=scaled(0.1), what=str(event))


async def test_node_joined_and_left_between_processes(
    asgi_server: StartAsgiServer, bus: Bus, prefix: str, crowd: list[Peer]
) -> None:
    """A new node is announced; a clean stop says goodbye; a killed node is evicted."""
    watchers = crowd[:3]  # one client on each of the three original nodes

    graceful = asgi_server("uvicorn", APP, node_env(bus, prefix, 3))
    probe = await Peer.open(graceful.ws_url("/ws/control/"))
    node = (await probe.call("health"))["node_id"]
    await probe.close()
    await _wait_for_event(watchers, ["joined", node], within=2 * INTERVAL)
    graceful.stop()  # SIGTERM: lifespan shutdown says goodbye
    await _wait_for_event(watchers, ["left", node], within=2 * INTERVAL)

    killed = asgi_server("daphne", APP, node_env(bus, prefix, 4))
    probe = await Peer.open(killed.ws_url("/ws/control/"))
    node = (await probe.call("health"))["node_id"]
    await probe.close()
    await _wait_for_event(watchers, ["joined", node], within=2 * INTERVAL)
    os.kill(killed.pid, signal.SIGKILL)
    # No goodbye: evicted after three missed beats.
    await _wait_for_event(watchers, ["left", node], within=5 * INTERVAL)
    for watcher in watchers:
        events = await _node_events(watcher)
        assert events.count(["left", node]) == 1
    killed.stop()


async def test_connect_storm_of_200_handshakes(cluster: list[AsgiServer]) -> None:
    """200 concurrent handshakes on one node: all accepted, all reachable once.

    Each handshake makes a channel, indexes a user and joins a room: bus work
    that, with stock channels_redis on redis-py 8, ends in "Too many
    connections" and "Timeout reading" at this size.
    """
    url = cluster[0].ws_url("/ws/control/")
    peers = await asyncio.gather(
        *(Peer.open(f"{url}?user=storm{i % 50}&rooms=storm") for i in range(200))
    )
    try:
        await peers[0].call("broadcast_to_room", room="storm", text="storm over")
        got = await asyncio.gather(*(peer.next(5) for peer in peers))
        assert got == ["storm over"] * 200
        assert all(await asyncio.gather(*(peer.nothing(0.2) for peer in peers)))
    finally:
        await asyncio.gather(*(peer.close() for peer in peers))
