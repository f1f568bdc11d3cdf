"""What an operator runs: the management commands against a live 2-node Redis cluster
and an unreachable bus, and ``/metrics`` after a scripted workload, in one process and
in django-prometheus's multiprocess mode over two server processes."""

from __future__ import annotations

import json
import re
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.integration.buses import Bus, node_env
from tests.integration.peer import Peer
from tests.rig.redis_cluster import RedisCluster
from tests.rig.servers import AsgiServer, StartAsgiServer, free_port, manage
from tests.rig.timing import async_wait_until
from wshub_channels.testing import scaled

pytestmark = pytest.mark.integration
APP = "tests.apps.hub_app:application"
PROMETHEUS = "wshub_channels.metrics.prometheus.PrometheusMetrics"


@pytest.fixture(scope="module", params=["redis", "redis-cluster"])
def bus(request: pytest.FixtureRequest) -> Bus:
    """One Redis, then a Redis Cluster (3 masters, 3 replicas)."""
    if request.param == "redis-cluster":
        cluster: RedisCluster = request.getfixturevalue("redis_cluster")
        return Bus("redis-cluster", "redis", (cluster.url,))
    return Bus("redis", "redis", (request.getfixturevalue("redis_url"),))


@pytest.fixture(scope="module")
def prefix() -> str:
    return f"op{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def nodes(asgi_server: StartAsgiServer, bus: Bus, prefix: str) -> Iterator[list[AsgiServer]]:
    servers = [
        asgi_server(kind, APP, node_env(bus, prefix, i, METRICS=PROMETHEUS))  # type: ignore[arg-type]
        for i, kind in enumerate(("daphne", "uvicorn"))
    ]
    yield servers
    for server in servers:
        server.stop()


@pytest.fixture
async def crowd(nodes: list[AsgiServer]) -> AsyncIterator[list[Peer]]:
    peers = [
        await Peer.open(nodes[i % 2].ws_url("/ws/control/") + f"?user=u{i}&rooms=green")
        for i in range(4)
    ]
    yield peers
    for peer in peers:
        await peer.close()


async def test_wshub_status_reports_both_nodes_and_the_counts(
    bus: Bus, prefix: str, crowd: list[Peer]
) -> None:
    done = manage(node_env(bus, prefix), "wshub_status", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["bus"]["connected"] and report["bus"]["backend"] == "RedisHubLayer"
    assert len(report["nodes"]) == 2 and report["clients"] == 4 and report["users"] == 4
    assert sorted(n["clients"] for n in report["nodes"]) == [2, 2]
    text = manage(node_env(bus, prefix), "wshub_status")
    assert text.returncode == 0 and "clients: 4" in text.stdout and "nodes: 2" in text.stdout


async def test_wshub_broadcast_reaches_room_user_client_and_everyone(
    bus: Bus, prefix: str, crowd: list[Peer]
) -> None:
    env = node_env(bus, prefix)
    assert manage(env, "wshub_broadcast", "--room", "green", "to green").returncode == 0
    for peer in crowd:
        assert await peer.next() == "to green"
    assert manage(env, "wshub_broadcast", "--user", "u1", "to u1").returncode == 0
    assert await crowd[1].next() == "to u1"
    assert manage(env, "wshub_broadcast", "--client", crowd[2].id, "to one").returncode == 0
    assert await crowd[2].next() == "to one"
    assert manage(env, "wshub_broadcast", "to all").returncode == 0
    for peer in crowd:
        assert await peer.next() == "to all"
    assert all([await peer.nothing(0.3) for peer in crowd])
    missing = manage(env, "wshub_broadcast", "--client", "x.zzzzzzzzzzzz!nobody", "lost")
    assert missing.returncode == 1 and "no client" in missing.stderr


@pytest.mark.parametrize("backend", ["redis", "nats"])
@pytest.mark.parametrize("command", [["wshub_status"], ["wshub_broadcast", "--room", "r", "t"]])
def test_commands_fail_clearly_on_an_unreachable_bus(backend: str, command: list[str]) -> None:
    port = free_port()  # nothing listens there
    url = f"{'redis' if backend == 'redis' else 'nats'}://127.0.0.1:{port}"
    env = node_env(Bus(backend, backend, (url,)), "down")
    done = manage(env, *command)
    assert done.returncode == 1
    assert "CommandError: the bus is unreachable" in done.stderr
    assert "Traceback" not in done.stderr


def scrape(server: AsgiServer) -> dict[str, float]:
    with urllib.request.urlopen(server.http_url + "/metrics", timeout=scaled(10)) as answer:
        text = answer.read().decode()
    found = {}
    for line in text.splitlines():
        match = re.match(r"^(wshub_[a-z_]+(?:\{[^}]*\})?) ([0-9.e+-]+)$", line)
        if match:
            found[match.group(1)] = float(match.group(2))
    return found


async def workload(peers: list[Peer]) -> None:
    """Each peer sends two commands; one room broadcast reaches all of them."""
    for peer in peers:
        await peer.call("json")
    await peers[0].call("broadcast_to_room", room="green", text="news")
    for peer in peers:
        assert await peer.next() == "news"


async def test_metrics_after_a_workload_in_one_process(
    nodes: list[AsgiServer], crowd: list[Peer]
) -> None:
    before = scrape(nodes[0])
    await workload(crowd)
    await async_wait_until(
        lambda: scrape(nodes[0]).get("wshub_cluster_clients", 0) == 4, scaled(5), interval=0.1
    )
    after = scrape(nodes[0])

    def grew(name: str) -> float:
        return after.get(name, 0) - before.get(name, 0)

    assert after["wshub_connections_active"] == 2  # peers 0 and 2 are on node 0
    assert grew("wshub_messages_received_total") == 3  # two json calls and the broadcast
    assert grew("wshub_messages_sent_total") == 5  # three replies, news to two members
    assert after["wshub_rooms_active"] == 1 and after["wshub_cluster_nodes"] == 2
    assert after["wshub_bus_connected"] == 1 and after["wshub_bus_publishes_total"] >= 1
    assert not [name for name in after if "u0" in name or "green" in name]  # no ids in labels


async def test_metrics_add_up_over_two_processes_in_multiprocess_mode(
    asgi_server: StartAsgiServer, bus: Bus, tmp_path: Path
) -> None:
    """Two uvicorn processes share PROMETHEUS_MULTIPROC_DIR; /metrics of either sums
    this node's counters and connections over both, and never sums cluster-wide gauges."""
    prefix = f"mp{uuid.uuid4().hex[:8]}"
    shared = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    servers = [
        asgi_server("uvicorn", APP, {**node_env(bus, prefix, i, METRICS=PROMETHEUS), **shared})
        for i in range(2)
    ]
    peers: list[Peer] = []
    try:
        for i in range(4):
            peers.append(await Peer.open(servers[i % 2].ws_url("/ws/control/") + "?rooms=green"))
        await workload(peers)
        await async_wait_until(
            lambda: scrape(servers[1]).get("wshub_cluster_clients", 0) == 4,
            scaled(5),
            interval=0.1,
        )
        metrics = scrape(servers[1])
        assert metrics["wshub_connections_active"] == 4  # 2 + 2, live processes summed
        assert metrics["wshub_connections_total"] == 4
        assert metrics["wshub_messages_received_total"] == 5  # four json calls, one broadcast
        assert metrics["wshub_cluster_clients"] == 4  # the most recent value, not 8
        assert metrics["wshub_cluster_nodes"] == 2
    finally:
        for peer in peers:
            await peer.close()
        for server in servers:
            server.stop()
