"""Per-node figures for the capacity model (docs/capacity.md), and the model checked.

Hub nodes are uvicorn processes of the tests' control app
(``tests/apps/hub_app.py``) on ``RedisHubLayer`` over one Redis 7 started
for the run (the test rig's binary, loopback, no persistence), presence
every 5 s. Real WebSocket clients (``websockets``, in this process) join the
room ``cap``; a control connection on node 0 calls ``broadcast_to_room``
``--messages`` times; the run ends when every client has every message.
The CPU of each node process (``/proc/<pid>/stat``, user + sys) and of Redis
(``INFO CPU``) is read before the first call and after the last delivery.

1. **Calibration**, two nodes: node 0, the caller, has no clients; node 1
   has ``--small`` (1), then ``--large`` clients. Each node's idle CPU is
   sampled first (clients connected, no traffic) and taken off. Server CPU
   per delivery (node 1's slope), per broadcast received from the bus (the
   rest) and per broadcast called (node 0), and the memory per idle
   connection (node 1's RSS, ``/proc/<pid>/status``, after the clients
   connected, slope between the two sizes).
2. **Check**: 2 and 3 nodes, ``--large`` clients spread evenly (client i on
   node i % n), the broadcasts called on node 0. The model predicts each
   node's CPU as messages * (clients on it * CPU per delivery + CPU per
   broadcast called or received) + its idle CPU * the run's length; the
   error of the prediction is printed per node.

Run from the repository root::

    python benchmarks/capacity.py                 # about a minute
    python benchmarks/capacity.py --large 600 --no-write

Writes the ``capacity`` section of RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import time
import uuid
from collections.abc import Sequence
from typing import Any

import _common

_common.import_this_tree()

from redis_cluster import _until, cpu_seconds, start_single  # noqa: E402
from websockets.asyncio.client import connect  # noqa: E402

from tests.rig.redis_cluster import find_cluster_redis_server  # noqa: E402
from tests.rig.servers import AsgiServer, start_asgi_server  # noqa: E402

APP = "tests.apps.hub_app:application"
SECTION = "capacity"
TICKS = os.sysconf("SC_CLK_TCK")
#: Seconds each node's idle CPU is sampled for, its clients connected, before the run.
IDLE = 3.0


def proc_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def proc_rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def node_env(url: str, prefix: str) -> dict[str, str]:
    layers = {
        "default": {
            "BACKEND": "wshub_channels.layers.RedisHubLayer",
            "CONFIG": {"hosts": [url], "prefix": prefix},
        }
    }
    return {
        "WSHUB_TEST_LAYERS": json.dumps(layers),
        "WSHUB_TEST_SETTINGS": json.dumps({"PRESENCE_INTERVAL": 5.0}),
    }


async def run(
    url: str, nodes: int, clients: int, messages: int, spread: Sequence[int] | None = None
) -> dict[str, Any]:
    """One run: client i on node ``spread[i % len(spread)]`` (default: every node)."""
    spread = list(range(nodes)) if spread is None else list(spread)
    prefix = f"cap{uuid.uuid4().hex[:8]}"
    servers: list[AsgiServer] = [
        start_asgi_server("uvicorn", APP, node_env(url, prefix)) for _ in range(nodes)
    ]
    sockets: list[Any] = []
    try:
        rss0 = [proc_rss_kib(s.pid) for s in servers]
        for start in range(0, clients, 100):
            batch = [
                connect(
                    servers[spread[i % len(spread)]].ws_url("/ws/control/?rooms=cap"),
                    compression=None,
                )
                for i in range(start, min(start + 100, clients))
            ]
            sockets += await asyncio.gather(*batch)
        await asyncio.gather(*(ws.recv() for ws in sockets))  # each one's hello
        control = await connect(servers[0].ws_url("/ws/control/"), compression=None)
        await control.recv()
        await asyncio.sleep(1.0)
        rss1 = [proc_rss_kib(s.pid) for s in servers]
        idle0 = [proc_cpu(s.pid) for s in servers]
        await asyncio.sleep(IDLE)
        idle = [(proc_cpu(s.pid) - a) / IDLE for s, a in zip(servers, idle0, strict=True)]
        counts = [0] * len(sockets)

        async def read(n: int, ws: Any) -> None:
            while counts[n] < messages:
                frame = await ws.recv()
                counts[n] += str(frame).count("tick")

        readers = [asyncio.ensure_future(read(n, ws)) for n, ws in enumerate(sockets)]
        cpu0 = [proc_cpu(s.pid) for s in servers]
        redis0 = cpu_seconds(int(url.rsplit(":", 1)[1]))
        started = time.perf_counter()
        for ref in range(messages):
            await control.send(
                json.dumps(
                    {
                        "op": "broadcast_to_room",
                        "ref": ref,
                        "room": "cap",
                        "text": f"tick {ref} " + "x" * 90,
                    }
                )
            )
            await control.recv()
        await asyncio.wait_for(asyncio.gather(*readers), 120)
        elapsed = time.perf_counter() - started
        cpu1 = [proc_cpu(s.pid) for s in servers]
        redis1 = cpu_seconds(int(url.rsplit(":", 1)[1]))
        await control.close()
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
        for server in servers:
            server.stop()
    per_node = [
        sum(1 for c in range(clients) if spread[c % len(spread)] == i) for i in range(nodes)
    ]
    return {
        "nodes": nodes,
        "clients": per_node,
        "cpu": [b - a for a, b in zip(cpu0, cpu1, strict=True)],
        "idle": idle,
        "rss_kib": [b - a for a, b in zip(rss0, rss1, strict=True)],
        "redis_cpu": redis1 - redis0,
        "elapsed": elapsed,
        "messages": messages,
    }


async def nats_broker_cpu(urls: Sequence[str], pids: Sequence[int], messages: int) -> list[float]:
    """CPU µs per message of each nats-server: ``messages`` 120-byte publishes on 96
    subjects from a client on the first server, two subscribers (on the last two
    servers, or the only one) interested in every subject."""
    import nats

    publisher = await nats.connect(urls[0])
    subscribers = [
        await nats.connect(url) for url in (urls[1:] or urls) * (2 if len(urls) == 1 else 1)
    ]
    got = [0]

    async def count(msg: Any) -> None:
        got[0] += 1

    for sub in subscribers:
        await sub.subscribe("cap.r.*", cb=count)
        await sub.flush()
    await asyncio.sleep(0.5)  # interest reaches every route
    before = [proc_cpu(pid) for pid in pids]
    for i in range(messages):
        await publisher.publish(f"cap.r.{i % 96}", b"x" * 120)
        if i % 500 == 499:
            await publisher.flush()
    await publisher.flush()
    with contextlib.suppress(TimeoutError):
        await _until(lambda: got[0] >= messages * len(subscribers), 60)
    after = [proc_cpu(pid) for pid in pids]
    for conn in (publisher, *subscribers):
        await conn.close()
    if got[0] < messages * len(subscribers):
        raise TimeoutError(f"NATS delivered {got[0]} of {messages * len(subscribers)}")
    return [(b - a) / messages * 1e6 for a, b in zip(before, after, strict=True)]


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--small", type=int, default=1)
    parser.add_argument("--large", type=int, default=900)
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--nats-messages", type=int, default=50_000)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    binary, missing = find_cluster_redis_server()
    if binary is None:
        print(missing, file=sys.stderr)
        return 2
    redis = start_single(binary)
    try:
        # the caller (node 0) has no clients; node 1 receives every broadcast from Redis
        small = asyncio.run(run(redis.url, 2, args.small, args.messages, spread=[1]))
        large = asyncio.run(run(redis.url, 2, args.large, args.messages, spread=[1]))
        checks = [asyncio.run(run(redis.url, n, args.large, args.messages)) for n in (2, 3)]
    finally:
        redis.stop()
    from tests.rig.brokers import start_nats_server
    from tests.rig.nats_cluster import start_nats_cluster

    single_nats = start_nats_server(jetstream=False)
    try:
        nats_one = asyncio.run(
            nats_broker_cpu([single_nats.url], [single_nats.pid], args.nats_messages)
        )
    finally:
        single_nats.stop()
    nats_cluster = start_nats_cluster(3)
    try:
        nats_three = asyncio.run(
            nats_broker_cpu(
                nats_cluster.urls, [s.pid for s in nats_cluster.servers], args.nats_messages
            )
        )
    finally:
        nats_cluster.stop()
    k = args.messages

    def net(result: dict[str, Any], node: int) -> float:
        """A node's CPU over the run less what it spends idle in as long."""
        return float(result["cpu"][node] - result["idle"][node] * result["elapsed"])

    per_delivery = (net(large, 1) - net(small, 1)) / (k * (args.large - args.small))
    per_received = net(small, 1) / k - args.small * per_delivery
    per_call = statistics.mean([net(small, 0), net(large, 0)]) / k
    idle_per_conn = (large["idle"][1] - small["idle"][1]) / (args.large - args.small)
    per_conn_kib = (large["rss_kib"][1] - small["rss_kib"][1]) / (args.large - args.small)
    redis_per_publish = large["redis_cpu"] / k
    rows = []
    for check in checks:
        for i, (clients, cpu) in enumerate(zip(check["clients"], check["cpu"], strict=True)):
            work = k * (clients * per_delivery + (per_call if i == 0 else per_received))
            predicted = work + check["idle"][i] * check["elapsed"]
            rows.append(
                [
                    f"{check['nodes']} nodes",
                    f"node {i}",
                    str(clients),
                    f"{cpu * 1000:.0f}",
                    f"{predicted * 1000:.0f}",
                    f"{(predicted - cpu) / cpu * 100:+.0f}%",
                ]
            )
    machine = _common.machine_description(["redis", "uvicorn", "websockets"])
    machine.append(("Load average at end", ", ".join(f"{x:.2f}" for x in os.getloadavg())))
    text = "\n".join(
        [
            "## `capacity.py`: per-node figures, and the capacity model checked",
            "",
            f"Run {_common.utc_now()}, command:",
            "",
            f"```sh\n{_common.command_line(__file__, argv)}\n```",
            "",
            _common.render_description(machine),
            "",
            f"Calibration: two uvicorn nodes over one Redis 7; {k} room broadcasts of 100 "
            f"characters, each called on node 0 (no clients) by a control connection and "
            f"delivered by node 1 to {args.small}, then {args.large} clients:",
            "",
            f"- server CPU per delivery (node 1, the slope): **{per_delivery * 1e6:.1f} µs**",
            f"- server CPU per broadcast received from the bus (node 1, the rest): "
            f"**{per_received * 1e6:.0f} µs**",
            f"- server CPU per broadcast called (node 0: the control frame, the call, the "
            f"publish, its echo, the reply): **{per_call * 1e6:.0f} µs**",
            f"- memory per idle connection (RSS): **{per_conn_kib:.1f} KiB**",
            f"- idle CPU of node 1, clients connected, no traffic: {small['idle'][1] * 1000:.1f}"
            f" ms/s with {args.small}, {large['idle'][1] * 1000:.1f} ms/s with {args.large} "
            f"clients ({idle_per_conn * 1e6:.2f} µs/s per connection); the figures above "
            "are net of it",
            f"- Redis CPU per broadcast (one PUBLISH to one subscriber): "
            f"**{redis_per_publish * 1e6:.0f} µs**",
            "",
            f"nats-server CPU per message (µs, `/proc`): {args.nats_messages:,} publishes of "
            "120 bytes over 96 subjects, two subscribers interested in all: one server "
            f"**{nats_one[0]:.1f}**; a 3-server cluster (publisher on the first, one "
            f"subscriber on each of the others) **{' / '.join(f'{v:.1f}' for v in nats_three)}**.",
            "",
            f"Check: {args.large} clients spread evenly over 2 and 3 nodes, the broadcasts "
            "called on node 0; measured and predicted CPU of each node over the run (ms), "
            "predicted = broadcasts * (clients on the node * CPU per delivery + CPU per "
            "broadcast called (node 0) or received (the others)) + the node's idle CPU "
            f"(sampled {IDLE:.0f} s before the run) * the run's length:",
            "",
            _common.markdown_table(
                ["run", "node", "clients", "measured ms", "predicted ms", "error"],
                rows,
                "llrrrr",
            ),
        ]
    )
    print(text)
    if not args.no_write:
        _common.replace_section(SECTION, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
