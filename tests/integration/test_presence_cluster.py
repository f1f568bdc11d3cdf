"""Presence and cluster-wide queries on three real server processes (daphne, daphne,
uvicorn), once per bus (Redis, NATS, a NATS cluster).

The nodes beat every ``INTERVAL`` test units. Queries run inside a server
(through a control connection, ``tests/apps/hub_app.py``) or in a plain sync
script in publisher mode (``tests/apps/cluster_script.py``). A test that
pauses a node with SIGSTOP sends it SIGCONT in its teardown.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest

from tests.integration.buses import INTERVAL, Bus, node_env
from tests.integration.peer import Peer
from tests.rig.servers import REPO_ROOT, AsgiServer, StartAsgiServer, server_env
from tests.rig.timing import async_wait_until
from wshub_channels.testing import scaled

pytestmark = pytest.mark.integration
APP = "tests.apps.hub_app:application"
KINDS = ("daphne", "daphne", "uvicorn")
BEAT = scaled(INTERVAL)


def start_cluster(asgi_server: StartAsgiServer, bus: Bus, prefix: str) -> list[AsgiServer]:
    return [
        asgi_server(kind, APP, node_env(bus, prefix, node))  # type: ignore[arg-type]
        for node, kind in enumerate(KINDS)
    ]


@pytest.fixture(scope="module")
def prefix(bus: Bus) -> str:
    return f"pr{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def cluster(asgi_server: StartAsgiServer, bus: Bus, prefix: str) -> Iterator[list[AsgiServer]]:
    servers = start_cluster(asgi_server, bus, prefix)
    yield servers
    for server in servers:
        server.stop()


@pytest.fixture
async def controls(cluster: list[AsgiServer]) -> AsyncIterator[list[Peer]]:
    """One control connection per node, in no room and with no user."""
    peers = [await Peer.open(server.ws_url("/ws/control/")) for server in cluster]
    yield peers
    for peer in peers:
        await peer.close()


OpenPeers = Callable[[list[AsgiServer], list[tuple[int, str]]], Awaitable[list[Peer]]]


@pytest.fixture
async def open_peers() -> AsyncIterator[OpenPeers]:
    """Open peers (node index, query string); every one is closed at teardown, even
    when the test fails half-way."""
    opened: list[Peer] = []

    async def open_them(cluster: list[AsgiServer], queries: list[tuple[int, str]]) -> list[Peer]:
        for node, query in queries:
            opened.append(await Peer.open(cluster[node].ws_url("/ws/control/") + "?" + query))
        return opened[-len(queries) :]

    yield open_them
    for peer in opened:
        await peer.close()


def node_of(client_id: str) -> str:
    return client_id.rsplit("!", 1)[0].rsplit(".", 1)[-1]


async def converge(control: Peer, want: dict[str, Any], room: str = "all") -> float:
    """Poll one node's global counts until they equal ``want``; return how long it took."""
    started = time.monotonic()
    last: dict[str, Any] = {}

    async def check() -> bool:
        nonlocal last
        last = await control.call("global_counts", room=room, fields=list(want))
        return all(last[key] == value for key, value in want.items())

    try:
        await async_wait_until(check, 6 * BEAT, interval=BEAT / 10)
    except AssertionError as exc:
        raise AssertionError(f"counts stuck at {last}, want {want}") from exc
    return time.monotonic() - started


async def test_counts_converge_within_two_beats_and_users_count_once(
    cluster: list[AsgiServer], controls: list[Peer], open_peers: OpenPeers
) -> None:
    """Clients join and leave on three nodes; every node's counts follow within two
    beats, read from its table; user u0 on two nodes counts once."""
    for control in controls:
        await converge(control, {"clients": 3, "room": 0, "trusted": True})
    crowd = await open_peers(
        cluster, [(i % 3, f"user=u{i % 2}&rooms=all,r{i}") for i in range(5)]
    )  # u0: nodes 0, 2, 1; u1: nodes 1, 0
    for control in controls:
        took = await converge(control, {"clients": 8, "room": 5, "users": 2})
        assert took <= 2 * BEAT + BEAT / 2, f"took {took:.2f}s, beats are {BEAT:.2f}s"
    for peer in crowd[:3]:
        await peer.close()
    for control in controls:
        took = await converge(control, {"clients": 5, "room": 2, "users": 2}, room="all")
        assert took <= 2 * BEAT + BEAT / 2, f"took {took:.2f}s, beats are {BEAT:.2f}s"
    for peer in crowd[3:]:
        await peer.close()


async def test_find_client_on_each_node_and_none_once_it_left(
    cluster: list[AsgiServer], controls: list[Peer], open_peers: OpenPeers
) -> None:
    targets = await open_peers(cluster, [(i, f"user=f{i}&rooms=x{i}") for i in range(3)])
    for control in controls:
        for node, target in enumerate(targets):
            info = await control.call("find_client", client=target.id)
            assert info["id"] == target.id and info["node"] == node_of(target.id)
            assert info["user_id"] == f"f{node}" and info["rooms"] == [f"x{node}"]
            assert info["remote_address"] == "127.0.0.1" and info["connected_since"] > 0
    gone = targets.pop()
    await gone.close()
    await async_wait_until(lambda: _is_none(controls[0], gone.id), scaled(3), interval=scaled(0.05))
    for target in targets:
        await target.close()


async def _is_none(control: Peer, client_id: str) -> bool:
    return await control.call("find_client", client=client_id) is None


async def test_cluster_clients_pages_filters_and_names_a_paused_node(
    cluster: list[AsgiServer], controls: list[Peer], open_peers: OpenPeers
) -> None:
    """Pages of 4 cover 3 nodes with no repeat and no gap; filters by room and user;
    a node paused with SIGSTOP is named in missing_nodes within the call's timeout."""
    crowd = await open_peers(cluster, [(i % 3, f"user=c{i % 4}&rooms=p{i % 2}") for i in range(10)])
    everyone = [*crowd, *controls]
    expected = sorted([node_of(p.id), p.id] for p in everyone)
    for control in controls:  # each node pages from its own table: wait for every one
        await converge(control, {"clients": len(everyone)})
        # a client counts on connect, its rooms a moment later: the room filter
        # reads the room counts of the table, so wait for those too
        await converge(control, {"room": len(crowd[1::2])}, room="p1")
    for control in controls:
        seen: list[list[str]] = []
        for offset in range(0, len(everyone), 4):
            page = await control.call("cluster_clients", limit=4, offset=offset)
            assert page["total"] == len(everyone) and page["missing"] == []
            seen.extend(page["items"])
        assert seen == expected
    in_room = await controls[1].call("cluster_clients", room="p1")
    assert sorted(i for _, i in in_room["items"]) == sorted(p.id for p in crowd[1::2])
    of_user = await controls[2].call("cluster_clients", user="c0")
    assert sorted(i for _, i in of_user["items"]) == sorted(p.id for p in crowd[0::4])

    paused = cluster[1]
    os.kill(paused.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        page = await controls[0].call("cluster_clients", limit=100, timeout=BEAT)
        took = time.monotonic() - started
        assert page["missing"] == [node_of(controls[1].id)]
        assert took < 2 * BEAT
        assert sorted(page["items"]) == [e for e in expected if e[0] != page["missing"][0]]
    finally:
        os.kill(paused.pid, signal.SIGCONT)
    for peer in crowd:
        await peer.close()


def run_script(bus: Bus, prefix: str, *args: str) -> list[dict[str, Any]]:
    env = server_env(node_env(bus, prefix, 0))
    done = subprocess.run(
        [sys.executable, "-m", "tests.apps.cluster_script", *args],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=scaled(60),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


async def test_a_sync_script_counts_and_pages_in_publisher_mode(
    cluster: list[AsgiServer], controls: list[Peer], bus: Bus, prefix: str, open_peers: OpenPeers
) -> None:
    crowd = await open_peers(cluster, [(i % 3, "rooms=s") for i in range(5)])
    await converge(controls[0], {"clients": 8})
    (result,) = run_script(bus, prefix, "publisher", "3")
    assert result["mode"] == "publisher" and result["count"] == 8
    assert result["total"] == 8 and result["missing"] == []
    assert result["items"] == sorted([node_of(p.id), p.id] for p in [*crowd, *controls])
    for peer in crowd:
        await peer.close()


def test_a_forked_twin_is_reported_and_its_traffic_still_arrives(bus: Bus) -> None:
    """A layer built, then forked: both processes share a node id. Each reports the other
    (DuplicateNodeId to hub_error), and each still gets the other's group message and
    answers the other's requests (their inboxes are drawn per process)."""
    child, parent = run_script(bus, f"tw{uuid.uuid4().hex[:8]}", "twins", str(2 * BEAT))
    assert child["node_id"] == parent["node_id"]
    assert child["duplicates"] == [parent["pid"]] and parent["duplicates"] == [child["pid"]]
    assert "DuplicateNodeId" in child["errors"] and "DuplicateNodeId" in parent["errors"]
    assert child["got"] == parent["got"] == sorted([child["pid"], parent["pid"]])
    assert child["gathered"] == [parent["pid"]] and parent["gathered"] == [child["pid"]]


async def test_a_killed_node_leaves_the_counts_in_three_to_four_beats_a_stopped_one_at_once(
    asgi_server: StartAsgiServer, bus: Bus, open_peers: OpenPeers
) -> None:
    """SIGKILL: the node's clients stay counted until eviction (3 to 4 beats after its
    last beat). A clean stop (uvicorn's lifespan shutdown) says goodbye: gone at once."""
    servers = start_cluster(asgi_server, bus, f"pk{uuid.uuid4().hex[:8]}")
    try:
        control, *_ = await open_peers(
            servers, [(0, ""), (1, "rooms=k"), (1, "rooms=k"), (2, "rooms=k")]
        )
        await converge(control, {"clients": 4, "room": 3}, room="k")
        killed = time.monotonic()
        os.kill(servers[1].pid, signal.SIGKILL)
        await converge(control, {"clients": 4})  # still counted: not evicted yet
        took = await converge(control, {"clients": 2, "room": 1}, room="k")
        since_kill = time.monotonic() - killed
        assert 2 * BEAT - BEAT / 4 <= since_kill <= 4 * BEAT + BEAT / 2, since_kill
        assert took > 0
        servers[2].stop()
        took = await converge(control, {"clients": 1, "room": 0}, room="k")
        assert took <= BEAT, f"a goodbye took {took:.2f}s"
    finally:
        for server in servers:
            server.stop()
