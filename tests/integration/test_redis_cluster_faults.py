"""Redis Cluster faults under traffic: a master killed, and a slot moved between masters.

Three hub nodes (daphne, daphne, uvicorn) share a private Redis Cluster of
three masters and three replicas. A sender on node 0 broadcasts to a room,
one message every few milliseconds, while a receiver on each of the other
two nodes records what it gets; then the master owning the room subject's
slot is killed by its PID (its replica takes over), or the slot is moved to
another master. Every message is accounted for: each one the hub took
arrived exactly once on each remote node, or (only while the shard had no
master) the caller was refused with ``BusUnavailable``. The time from the
replica's promotion to the first message delivered again is measured and
printed (``-s`` shows it).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from tests.integration.buses import Bus, node_env
from tests.integration.peer import Peer
from tests.rig.redis_cluster import RedisCluster, cluster_server_or_skip, start_redis_cluster
from tests.rig.servers import AsgiServer, StartAsgiServer
from tests.rig.timing import Deadline
from wshub_channels.core.membership import ROOMS
from wshub_channels.core.names import subject_token
from wshub_channels.layers.redis.client import key_slot
from wshub_channels.testing import scaled

pytestmark = pytest.mark.integration
APP = "tests.apps.hub_app:application"
ROOM = "faults"


@pytest.fixture
def private_cluster() -> Iterator[RedisCluster]:
    cluster = start_redis_cluster(cluster_server_or_skip())
    try:
        yield cluster
    finally:
        cluster.stop()


@dataclass
class Nodes:
    servers: list[AsgiServer]
    prefix: str


@pytest.fixture
def nodes(asgi_server: StartAsgiServer, private_cluster: RedisCluster) -> Iterator[Nodes]:
    bus = Bus("redis-cluster", "redis", (private_cluster.url,))
    prefix = f"cf{uuid.uuid4().hex[:8]}"
    servers = [
        asgi_server(kind, APP, node_env(bus, prefix, n))  # type: ignore[arg-type]
        for n, kind in enumerate(("daphne", "daphne", "uvicorn"))
    ]
    try:
        yield Nodes(servers, prefix)
    finally:
        for server in servers:
            server.stop()


def _room_slot(prefix: str) -> int:
    return key_slot(f"{prefix}.{ROOMS}.{subject_token(ROOM)}".encode())


def _owner(cluster: RedisCluster, slot: int) -> int:
    """The index in ``cluster.servers`` of the live master serving ``slot``."""
    asker = next(s for s in cluster.servers if s.running)
    for line in cluster.cli(asker, "CLUSTER", "NODES").splitlines():
        parts = line.split()
        if "master" not in parts[2] or "fail" in parts[2]:
            continue
        port = int(parts[1].split("@")[0].rsplit(":", 1)[1])
        for span in parts[8:]:
            low, _, high = span.partition("-")
            if low.isdigit() and int(low) <= slot <= int(high or low):
                return next(i for i, s in enumerate(cluster.servers) if s.port == port)
    raise AssertionError(f"no master serves slot {slot}")


@dataclass
class Traffic:
    """Messages sent (with the caller's outcome) and received, with their times."""

    sent: dict[str, tuple[float, str | None]] = field(default_factory=dict)
    got: list[dict[str, float]] = field(default_factory=lambda: [{}, {}])
    duplicates: int = 0


async def _receive(peer: Peer, seen: dict[str, float], traffic: Traffic) -> None:
    with contextlib.suppress(Exception):
        async for frame in peer.ws:
            for text in str(frame).split("\n"):
                if text.startswith("m"):
                    if text in seen:
                        traffic.duplicates += 1
                    seen[text] = time.monotonic()


async def _send(sender: Peer, traffic: Traffic, stop: asyncio.Event) -> None:
    n = 0
    while not stop.is_set():
        text = f"m{n}"
        n += 1
        reply = await sender.call_raw("broadcast_to_room", room=ROOM, text=text)
        traffic.sent[text] = (time.monotonic(), reply.get("error"))
        await asyncio.sleep(0.005)


async def _run_traffic(nodes: list[AsgiServer], fault: object) -> tuple[Traffic, float]:
    """Send before, during and after ``fault()`` (a callable returning when Redis settled)."""
    sender = await Peer.open(nodes[0].ws_url("/ws/control/"))
    receivers = [await Peer.open(n.ws_url(f"/ws/control/?rooms={ROOM}")) for n in nodes[1:]]
    traffic, stop = Traffic(), asyncio.Event()
    readers = [
        asyncio.ensure_future(_receive(peer, traffic.got[i], traffic))
        for i, peer in enumerate(receivers)
    ]
    sending = asyncio.ensure_future(_send(sender, traffic, stop))
    try:
        await asyncio.sleep(scaled(0.5))
        assert callable(fault)
        settled = await asyncio.get_running_loop().run_in_executor(None, fault)
        await asyncio.sleep(scaled(3))
        stop.set()
        await asyncio.wait_for(sending, scaled(10))
        await asyncio.sleep(scaled(0.5))  # the last deliveries
    finally:
        stop.set()
        for task in (sending, *readers):
            task.cancel()
        for peer in (sender, *receivers):
            await peer.close()
    return traffic, float(settled)


def _account(traffic: Traffic) -> tuple[int, int, list[str]]:
    """(taken, refused, lost): every message taken must have reached both receivers."""
    taken = [t for t, (_, error) in traffic.sent.items() if error is None]
    refused = [t for t, (_, error) in traffic.sent.items() if error is not None]
    assert {error for _, error in traffic.sent.values()} <= {None, "BusUnavailable"}
    lost = [t for t in taken if not all(t in seen for seen in traffic.got)]
    assert traffic.duplicates == 0
    return len(taken), len(refused), lost


def _outage(traffic: Traffic, moment: float) -> tuple[float, float]:
    """When delivery stopped after ``moment`` (the first message sent then that did not
    reach both receivers) and when it came back (the first later one that did)."""
    stopped = None
    for text, (when, error) in sorted(traffic.sent.items(), key=lambda item: item[1][0]):
        if when < moment:
            continue
        delivered = error is None and all(text in seen for seen in traffic.got)
        if stopped is None and not delivered:
            stopped = when
        elif stopped is not None and delivered:
            return stopped, max(seen[text] for seen in traffic.got)
    raise AssertionError("delivery never stopped, or never resumed")


async def test_master_failover_during_traffic(private_cluster: RedisCluster, nodes: Nodes) -> None:
    """Kill the room's master: its replica takes over, delivery is back within 2 s."""
    slot = _room_slot(nodes.prefix)
    master = private_cluster.servers[_owner(private_cluster, slot)]
    replica = next(
        s
        for s in private_cluster.replicas
        if private_cluster.info(s, "replication").get("master_port") == str(master.port)
    )
    times: dict[str, float] = {}

    def kill_master() -> float:
        times["killed"] = time.monotonic()
        os.kill(master.pid, signal.SIGKILL)
        deadline = Deadline(scaled(20))
        while private_cluster.role(replica) != "master":
            assert not deadline.expired(), "the replica was never promoted"
            time.sleep(0.01)
        times["promoted"] = time.monotonic()
        return times["promoted"]

    traffic, promoted = await _run_traffic(nodes.servers, kill_master)
    taken, refused, lost = _account(traffic)
    stopped, back = _outage(traffic, times["killed"])
    resumed = back - promoted
    print(
        f"\nfailover: delivery stopped {stopped - times['killed']:.2f}s after the kill, the "
        f"replica was promoted {promoted - times['killed']:.2f}s after it, delivery back "
        f"{resumed:.2f}s after the promotion; {taken} taken, {refused} refused "
        f"(BusUnavailable), {len(lost)} taken but lost"
    )
    assert resumed <= 2.0
    assert lost == []
    assert taken > 100


async def test_slot_migration_during_traffic(private_cluster: RedisCluster, nodes: Nodes) -> None:
    """Move the room's slot to another master: subscriptions follow, none is lost."""
    slot = _room_slot(nodes.prefix)
    source = private_cluster.servers[_owner(private_cluster, slot)]
    target = next(m for m in private_cluster.masters if m is not source)
    cli = private_cluster.cli
    times: dict[str, float] = {}

    def migrate() -> float:
        source_id, target_id = private_cluster.node_id(source), private_cluster.node_id(target)
        times["started"] = time.monotonic()
        cli(target, "CLUSTER", "SETSLOT", str(slot), "IMPORTING", source_id)
        cli(source, "CLUSTER", "SETSLOT", str(slot), "MIGRATING", target_id)
        while keys := cli(source, "CLUSTER", "GETKEYSINSLOT", str(slot), "100").split():
            cli(source, "MIGRATE", "127.0.0.1", str(target.port), "", "0", "5000", "KEYS", *keys)
        for server in private_cluster.masters:
            cli(server, "CLUSTER", "SETSLOT", str(slot), "NODE", target_id)
        times["moved"] = time.monotonic()
        return times["moved"]

    traffic, moved = await _run_traffic(nodes.servers, migrate)
    taken, refused, lost = _account(traffic)
    assert _owner(private_cluster, slot) == private_cluster.servers.index(target)
    try:
        stopped, back = _outage(traffic, times["started"])
        gap = f"delivery paused {back - stopped:.2f}s, back {back - moved:.2f}s after the move"
    except AssertionError:
        gap = "delivery never paused"
    print(
        f"\nslot migration: {gap}; {taken} taken, {refused} refused (BusUnavailable), "
        f"{len(lost)} taken but lost"
    )
    assert lost == []
    assert taken > 100
