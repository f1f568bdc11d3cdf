"""Redis Cluster (3 masters, 3 replicas) against one Redis: broker CPU per message per shard.

Both brokers are the same ``redis-server`` 7+ binary (the rig's choice:
``REDIS_CLUSTER_SERVER_BIN``, else the system's), started by ``tests/rig`` on
loopback for the run, no persistence. ``RedisHubLayer`` on the cluster uses
sharded pub/sub (``SPUBLISH``/``SSUBSCRIBE``). In one run, on each broker:

1. **shard load**: one publishing node and two receiving nodes (three
   ``RedisHubLayer`` instances in this process); each receiving node has one
   member channel in each of ``--groups`` groups, so the groups' subjects fall
   on every shard. ``--messages`` ``group_send`` calls round robin over the
   groups, ``--window`` at a time; every message must reach both nodes. The
   broker CPU (``INFO CPU``: ``used_cpu_sys`` + ``used_cpu_user``, per server,
   before and after) per message: of the single Redis; of each master; of
   the replicas together (they get every ``SPUBLISH`` of their shard too).
   "max shard / single" is the must-show figure (at most 0.5 with 3 shards);
2. **plain PUBLISH vs SPUBLISH** on the cluster, no subscribers, ``--messages``
   each from one client: the CPU per message of every node. A plain PUBLISH
   is copied over the cluster bus to every node; SPUBLISH stays in its shard;
3. **layer fan-out**: one ``group_send`` from the publishing node to a group of
   ``--members`` channels on one receiving node, until all have it; the median
   of ``--repeat`` runs;
4. **2-node end to end** (``--e2e-runs`` > 0): ``benchmarks/e2e_broadcast.py
   --variants hub-redis-2node`` against each broker (``REDIS_URL``), its
   deliveries/s and latency, and the broker CPU of the whole run (connects
   included) per broadcast.

Run from the repository root::

    python benchmarks/redis_cluster.py                 # about two minutes
    python benchmarks/redis_cluster.py --e2e-runs 0 --no-write

It prints its tables and writes the ``redis_cluster`` section of RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from typing import Any

import _common

_common.import_this_tree()
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

import django  # noqa: E402

django.setup()

from tests.rig.brokers import ServerHandle, _redis_argv, redis_answers  # noqa: E402
from tests.rig.redis_cluster import (  # noqa: E402
    RedisCluster,
    find_cluster_redis_server,
    start_redis_cluster,
)
from tests.rig.servers import LOCALHOST, free_port, scratch_dir  # noqa: E402
from wshub_channels.core.membership import ROOMS  # noqa: E402
from wshub_channels.core.wire import Kind  # noqa: E402
from wshub_channels.layers import RedisHubLayer  # noqa: E402

SECTION = "redis_cluster"
MESSAGE = {"type": "bench.msg", "text": "x" * 100}


def start_single(binary: str, replica_of: int | None = None) -> ServerHandle:
    def argv(handle: ServerHandle) -> list[str]:
        extra = [] if replica_of is None else ["--replicaof", LOCALHOST, str(replica_of)]
        return [*_redis_argv(handle), *extra]

    handle = ServerHandle(
        name="redis-single" if replica_of is None else "redis-replica",
        binary=binary,
        scheme="redis",
        port=free_port(),
        workdir=scratch_dir("wshub-bench-redis-"),
        argv=argv,
        probe=lambda p, timeout: redis_answers(LOCALHOST, p, timeout),
        startup_timeout=20,
    )
    handle.start()
    return handle


def cpu_seconds(port: int) -> float:
    from tests.rig.redis_cluster import _cli

    info = dict(
        line.split(":", 1) for line in _cli(port, "INFO", "CPU").splitlines() if ":" in line
    )
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


class Broker:
    """One broker under test: its URL and the ports of its servers (masters first)."""

    def __init__(self, name: str, url: str, masters: list[int], replicas: list[int]) -> None:
        self.name, self.url, self.masters, self.replicas = name, url, masters, replicas

    def cpu(self) -> dict[int, float]:
        return {port: cpu_seconds(port) for port in [*self.masters, *self.replicas]}


async def _drain(layer: RedisHubLayer, channel: str, counts: dict[str, int]) -> None:
    while True:
        await layer.receive(channel)
        counts[channel] = counts.get(channel, 0) + 1


async def _until(check: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("the messages did not all arrive")
        await asyncio.sleep(0.005)


async def room_load(broker: Broker, args: argparse.Namespace) -> dict[str, Any]:
    """Room broadcasts as the hub sends them: one publish each, to two interested nodes."""
    prefix = f"br{uuid.uuid4().hex[:8]}"
    publisher, *receivers = [RedisHubLayer(hosts=[broker.url], prefix=prefix) for _ in range(3)]
    got = [0]

    def sink(env: Any) -> None:
        got[0] += 1

    payload = b"x" * 100
    subjects = [publisher.subject(ROOMS, f"room{r}") for r in range(args.groups)]
    try:
        for layer in receivers:
            layer.set_hub_sink(sink)
            for r in range(args.groups):
                await layer.add_interest(ROOMS, f"room{r}", "member")
        await publisher.start()
        for subject in subjects:  # warm: every subject, every connection
            await publisher.publish(subject, Kind.ROOM, "room", payload)
        await _until(lambda: got[0] >= 2 * args.groups, 30)
        await asyncio.sleep(0.2)
        base = got[0]
        before = broker.cpu()
        started = time.perf_counter()
        for start in range(0, args.messages, args.window):
            sends = range(start, min(start + args.window, args.messages))
            await asyncio.gather(
                *(
                    publisher.publish(subjects[i % args.groups], Kind.ROOM, "r", payload)
                    for i in sends
                )
            )
        await _until(lambda: got[0] >= base + 2 * args.messages, 60)
        elapsed = time.perf_counter() - started
        after = broker.cpu()
    finally:
        for layer in (publisher, *receivers):
            await layer.close()
    return _per_message(broker, before, after, args.messages, elapsed)


async def burst_load(broker: Broker, args: argparse.Namespace) -> dict[str, Any]:
    """Room envelopes published by a pipelining client, 500 a round trip, so the broker
    gets batches as under heavy load; two hub nodes receive every one."""
    import redis.asyncio as aioredis
    from redis.asyncio.cluster import ClusterNode

    prefix = f"bb{uuid.uuid4().hex[:8]}"
    sender, *receivers = [RedisHubLayer(hosts=[broker.url], prefix=prefix) for _ in range(3)]
    got = [0]

    def sink(env: Any) -> None:
        got[0] += 1

    subjects = [sender.subject(ROOMS, f"room{r}") for r in range(args.groups)]
    await sender.start()
    envelope = sender.envelope(Kind.ROOM, "room", b"x" * 100)
    clustered = len(broker.masters) > 1
    client: Any
    if clustered:
        nodes = [ClusterNode(LOCALHOST, port) for port in broker.masters]
        client = aioredis.RedisCluster(startup_nodes=nodes)
    else:
        client = aioredis.Redis.from_url(broker.url)
    try:
        for layer in receivers:
            layer.set_hub_sink(sink)
            for r in range(args.groups):
                await layer.add_interest(ROOMS, f"room{r}", "member")

        async def publish(first: int, last: int) -> None:
            pipe = client.pipeline(transaction=False)
            for i in range(first, last):
                if clustered:
                    pipe.spublish(subjects[i % args.groups], envelope)
                else:
                    pipe.publish(subjects[i % args.groups], envelope)
            await pipe.execute()

        await publish(0, args.groups)
        await _until(lambda: got[0] >= 2 * args.groups, 30)
        await asyncio.sleep(0.2)
        base = got[0]
        before = broker.cpu()
        started = time.perf_counter()
        for start in range(0, args.messages, 500):
            await publish(start, min(start + 500, args.messages))
        await _until(lambda: got[0] >= base + 2 * args.messages, 60)
        elapsed = time.perf_counter() - started
        after = broker.cpu()
    finally:
        await client.aclose()
        for layer in (sender, *receivers):
            await layer.close()
    return _per_message(broker, before, after, args.messages, elapsed)


def _per_message(
    broker: Broker, before: dict[int, float], after: dict[int, float], n: int, elapsed: float
) -> dict[str, Any]:
    per = {port: (after[port] - before[port]) / n * 1e6 for port in after}
    return {
        "masters": [per[p] for p in broker.masters],
        "replicas": sum(per[p] for p in broker.replicas),
        "rate": n / elapsed,
    }


async def group_load(broker: Broker, args: argparse.Namespace) -> dict[str, Any]:
    """group_send: one pipeline each (publish, purge and lookup of stored members)."""
    prefix = f"bc{uuid.uuid4().hex[:8]}"
    publisher, *receivers = [RedisHubLayer(hosts=[broker.url], prefix=prefix) for _ in range(3)]
    counts: dict[str, int] = {}
    tasks = []
    try:
        for layer in receivers:
            for g in range(args.groups):
                channel = await layer.new_channel()
                await layer.group_add(f"g{g}", channel)
                tasks.append(asyncio.ensure_future(_drain(layer, channel, counts)))
        await publisher.group_send("g0", MESSAGE)
        for g in range(args.groups):  # warm: every subject, every connection
            await publisher.group_send(f"g{g}", MESSAGE)
        warm = args.groups + 2
        await _until(lambda: sum(counts.values()) >= warm * 2 - 2, 30)
        await asyncio.sleep(0.2)
        base = sum(counts.values())
        before = broker.cpu()
        started = time.perf_counter()
        for start in range(0, args.messages, args.window):
            sends = range(start, min(start + args.window, args.messages))
            await asyncio.gather(
                *(publisher.group_send(f"g{i % args.groups}", MESSAGE) for i in sends)
            )
        expected = base + 2 * args.messages
        await _until(lambda: sum(counts.values()) >= expected, 60)
        elapsed = time.perf_counter() - started
        after = broker.cpu()
    finally:
        for task in tasks:
            task.cancel()
        await publisher.flush()
        for layer in (publisher, *receivers):
            await layer.close()
    return _per_message(broker, before, after, args.messages, elapsed)


def publish_vs_spublish(cluster: RedisCluster, messages: int) -> dict[str, list[float]]:
    import redis
    from redis.cluster import ClusterNode
    from redis.cluster import RedisCluster as SyncCluster

    nodes = [ClusterNode(LOCALHOST, s.port) for s in cluster.masters]
    client = SyncCluster(startup_nodes=nodes)
    ports = [s.port for s in cluster.servers]
    out: dict[str, list[float]] = {}
    try:
        for command in ("PUBLISH", "SPUBLISH"):
            before = {p: cpu_seconds(p) for p in ports}
            for start in range(0, messages, 500):
                if command == "PUBLISH":
                    node = client.get_node(LOCALHOST, cluster.masters[0].port)
                    single = redis.Redis(host=LOCALHOST, port=node.port)
                    pipe = single.pipeline(transaction=False)
                    for i in range(start, min(start + 500, messages)):
                        pipe.publish(f"bench.{i % 97}", b"x" * 120)
                    pipe.execute()
                    single.close()
                else:
                    cpipe = client.pipeline(transaction=False)
                    for i in range(start, min(start + 500, messages)):
                        cpipe.spublish(f"bench.{i % 97}", b"x" * 120)
                    cpipe.execute()
            time.sleep(0.3)  # let the cluster bus carry the last copies
            after = {p: cpu_seconds(p) for p in ports}
            out[command] = [(after[p] - before[p]) / messages * 1e6 for p in ports]
    finally:
        client.close()
    return out


async def fanout(broker: Broker, args: argparse.Namespace) -> list[float]:
    prefix = f"bf{uuid.uuid4().hex[:8]}"
    publisher, receiver = [RedisHubLayer(hosts=[broker.url], prefix=prefix) for _ in range(2)]
    counts: dict[str, int] = {}
    tasks = []
    times = []
    try:
        for _ in range(args.members):
            channel = await receiver.new_channel()
            await receiver.group_add("fan", channel)
            tasks.append(asyncio.ensure_future(_drain(receiver, channel, counts)))
        await publisher.group_send("fan", MESSAGE)
        await _until(lambda: sum(counts.values()) >= args.members, 30)
        for n in range(2, args.repeat + 2):
            started = time.perf_counter()
            await publisher.group_send("fan", MESSAGE)
            await _until(lambda n=n: sum(counts.values()) >= n * args.members, 30)
            times.append(time.perf_counter() - started)
    finally:
        for task in tasks:
            task.cancel()
        await publisher.flush()
        await publisher.close()
        await receiver.close()
    return times


def e2e(broker: Broker, args: argparse.Namespace) -> dict[str, str]:
    command = [
        sys.executable,
        "benchmarks/e2e_broadcast.py",
        "--variants",
        "hub-redis-2node",
        "--clients",
        str(args.e2e_clients),
        "--messages",
        str(args.e2e_messages),
        "--runs",
        str(args.e2e_runs),
        "--no-write",
    ]
    before = broker.cpu()
    done = subprocess.run(
        command,
        cwd=_common.REPO_ROOT,
        env={**os.environ, "REDIS_URL": broker.url},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    after = broker.cpu()
    row = next((ln for ln in done.stdout.splitlines() if ln.startswith("| hub-redis-2node")), "")
    cells = [c.strip() for c in row.strip("|").split("|")]
    broadcasts = args.e2e_runs * args.e2e_messages
    per = [(after[p] - before[p]) / broadcasts * 1e6 for p in broker.masters]
    if len(cells) < 9:
        return {"error": (done.stderr or done.stdout)[-300:]}
    return {
        "rate": cells[1],
        "p50": cells[2],
        "p99": cells[3],
        "delivered": cells[4],
        "cpu": cells[8],
        "broker": " / ".join(f"{v:,.0f}" for v in per),
        "broker_max": f"{max(per):,.0f}",
    }


NAMES = {
    "single": "one Redis",
    "paired": "one Redis + replica",
    "cluster": "Redis Cluster, 3 shards",
    "bare": "Redis Cluster, 3 masters, no replicas",
}


def _load_rows(results: dict[str, Any]) -> list[list[str]]:
    rows = []
    for workload in ("burst", "room", "group"):
        single = results["single"][workload]["masters"][0]
        paired = results["paired"][workload]["masters"][0]
        for key in ("single", "paired", "cluster", "bare"):
            load = results[key][workload]
            masters = load["masters"]
            top = max(masters)
            replicas = f"{load['replicas']:.1f}" if key in ("paired", "cluster") else "-"
            rows.append(
                [
                    workload,
                    NAMES[key],
                    " / ".join(f"{v:.1f}" for v in masters),
                    f"{top:.1f}",
                    f"{top / single:.2f}",
                    f"{top / paired:.2f}",
                    replicas,
                    f"{load['rate']:,.0f}",
                ]
            )
    return rows


def report(results: dict[str, Any], args: argparse.Namespace, command: str, rows: Any) -> str:
    single, cluster = results["single"], results["cluster"]
    lines = [
        "## `redis_cluster.py`: Redis Cluster (sharded pub/sub) against one Redis",
        "",
        f"Run {_common.utc_now()}, command:",
        "",
        f"```sh\n{command}\n```",
        "",
        _common.render_description(rows),
        "",
        f"**Shard load**: {args.messages:,} sends over {args.groups} rooms or groups "
        f"({args.window} at a time), each to two receiving nodes: `room`, the hub's room "
        "broadcast (one publish each); `burst`, the same envelopes published by a client "
        "that pipelines 500 a round trip, so each server gets batches as under heavy load "
        "(the hub-driven rows are bound by this one Python publisher, and a server woken for "
        "a few messages at a time pays more per message); `group`, `group_send` (one "
        "pipeline each: publish, "
        "purge and lookup of stored members). Broker CPU (`INFO CPU`, user + sys) per "
        "message sent, µs: of each master (one Redis: its only server), the busiest one, "
        "that over one Redis and over one Redis with a replica, and of the replicas "
        "together.",
        "",
        _common.markdown_table(
            [
                "workload",
                "broker",
                "master(s) µs/msg",
                "max shard",
                "/ one Redis",
                "/ Redis + replica",
                "replicas µs/msg",
                "sends/s",
            ],
            _load_rows(results),
            "llllrrrr",
        ),
        "",
        f"**PUBLISH vs SPUBLISH on the cluster**, {args.messages:,} messages of 120 bytes, no "
        "subscribers, µs of CPU per message on each server (3 masters, then 3 replicas):",
        "",
        _common.markdown_table(
            ["command", "per server µs/msg", "all servers"],
            [
                [cmd, " / ".join(f"{v:.1f}" for v in vals), f"{sum(vals):.1f}"]
                for cmd, vals in results["publish"].items()
            ],
            "llr",
        ),
        "",
        f"**Layer fan-out**: one `group_send` to {args.members:,} channels on another node, "
        f"until all have it; median (range) of {args.repeat}:",
        "",
        _common.markdown_table(
            ["broker", "all delivered ms"],
            [
                [
                    name,
                    f"{statistics.median(r['fanout']) * 1000:.1f} "
                    f"({min(r['fanout']) * 1000:.1f}-{max(r['fanout']) * 1000:.1f})",
                ]
                for name, r in ((NAMES[k], results[k]) for k in NAMES)
            ],
            "lr",
        ),
    ]
    if args.e2e_runs > 0:
        e2e_rows = []
        for name, r in ((NAMES["single"], single), (NAMES["cluster"], cluster)):
            e = r["e2e"]
            if "error" in e:
                e2e_rows.append([name, "error", e["error"][:80], "", "", "", ""])
            else:
                e2e_rows.append(
                    [name, e["rate"], e["p50"], e["p99"], e["delivered"], e["cpu"], e["broker"]]
                )
        lines += [
            "",
            f"**2-node end to end** (`e2e_broadcast.py --variants hub-redis-2node`, "
            f"{args.e2e_clients} clients, {args.e2e_messages} broadcasts, median of "
            f"{args.e2e_runs} runs); broker CPU per broadcast of the whole run, connects "
            "included, per master:",
            "",
            _common.markdown_table(
                [
                    "broker",
                    "deliveries/s",
                    "p50 ms",
                    "p99 ms",
                    "delivered",
                    "server/client µs/msg",
                    "broker µs/broadcast",
                ],
                e2e_rows,
                "lrrrrrl",
            ),
        ]
    lines += [
        "",
        "One Redis carries every publish on one core; on the cluster each `SPUBLISH` is "
        "handled by the master of its subject's slot (and copied to that master's "
        "replica), so the masters share the load. A plain `PUBLISH` on a cluster costs "
        "every server for every message. The machine's 2 cores are shared by the six "
        "servers, this process and, for the end to end, the servers and clients, so the "
        "times compare brokers within one run; the CPU per message is the figure that "
        "carries over.",
    ]
    return "\n".join(lines)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--groups", type=int, default=96)
    parser.add_argument("--messages", type=int, default=6000)
    parser.add_argument("--window", type=int, default=32)
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--e2e-clients", type=int, default=500)
    parser.add_argument("--e2e-messages", type=int, default=20)
    parser.add_argument("--e2e-runs", type=int, default=3)
    parser.add_argument("--no-write", action="store_true")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    binary, missing = find_cluster_redis_server()
    if binary is None:
        print(missing, file=sys.stderr)
        return 2
    found = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
    version = re.search(r"v=(\S+)", found.stdout)
    handles = [start_single(binary)]
    handles.append(start_single(binary))
    handles.append(start_single(binary, replica_of=handles[1].port))
    cluster = start_redis_cluster(binary)
    bare = start_redis_cluster(binary, replicas=False)
    results: dict[str, Any] = {}
    try:
        brokers = {
            "single": Broker(NAMES["single"], handles[0].url, [handles[0].port], []),
            "paired": Broker(NAMES["paired"], handles[1].url, [handles[1].port], [handles[2].port]),
            "cluster": Broker(
                NAMES["cluster"],
                cluster.url,
                [s.port for s in cluster.masters],
                [s.port for s in cluster.replicas],
            ),
            "bare": Broker(NAMES["bare"], bare.url, [s.port for s in bare.masters], []),
        }
        for key, broker in brokers.items():
            print(f"{broker.name}: shard load, fan-out", file=sys.stderr)
            results[key] = {
                "burst": asyncio.run(burst_load(broker, args)),
                "room": asyncio.run(room_load(broker, args)),
                "group": asyncio.run(group_load(broker, args)),
                "fanout": asyncio.run(fanout(broker, args)),
            }
        results["publish"] = publish_vs_spublish(cluster, args.messages)
        if args.e2e_runs > 0:
            for key in ("single", "cluster"):
                print(f"{brokers[key].name}: 2-node end to end", file=sys.stderr)
                results[key]["e2e"] = e2e(brokers[key], args)
    finally:
        cluster.stop()
        bare.stop()
        for handle in handles:
            handle.stop()
    rows = _common.machine_description(
        ["redis"],
        {
            "wshub-channels": _common.library_version(),
            "Redis server": f"{version.group(1) if version else 'unknown'} ({binary}), one "
            "server and a cluster of 3 masters + 3 replicas, on loopback",
        },
    )
    with_load = os.getloadavg()
    rows.append(("Load average at end", ", ".join(f"{x:.2f}" for x in with_load)))
    command = _common.command_line(__file__, argv)
    text = report(results, args, command, rows)
    print(text)
    if not args.no_write:
        _common.replace_section(SECTION, text)
        print(f"wrote the {SECTION} section of RESULTS.md", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
