"""Per-node figures for the capacity model (docs/capacity.md), and the model checked.

Hub nodes are uvicorn processes of the tests' control app
(``tests/apps/hub_app.py``) on ``RedisHubLayer`` over one Redis 7 started
for the run (the test rig's binary, loopback, no persistence), presence
every 5 s. Real WebSocket clients (``websockets``, in this process) join the
room ``cap``; a control connection on node 0 calls ``broadcast_to_room``
``--messages`` times; the run ends when every client has every message.
The CPU of each node process (``/proc/<pid>/stat``, user + sys) and of Redis
(``INFO CPU``) is read before the first call and after the last delivery.

1. **Calibration, one node**, at ``--small`` and ``--large`` clients: server
   CPU per delivery (the slope) and per broadcast (the rest), and the
   memory per idle connection (the node's RSS, ``/proc/<pid>/status``,
   after the clients connected, slope between the two sizes).
2. **Check**: 2 and 3 nodes, ``--large`` clients spread evenly (client i on
   node i % n), the broadcasts called on node 0. The model predicts each
   node's CPU as clients on it * messages * CPU per delivery + messages * CPU
   per broadcast; the error of the prediction is printed per node.

Run from the repository root::

    python benchmarks/capacity.py                 # about a minute
    python benchmarks/capacity.py --large 600 --no-write

Writes the ``capacity`` section of RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
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

from redis_cluster import cpu_seconds, start_single  # noqa: E402
from websockets.asyncio.client import connect  # noqa: E402

from tests.rig.redis_cluster import find_cluster_redis_server  # noqa: E402
from tests.rig.servers import AsgiServer, start_asgi_server  # noqa: E402

APP = "tests.apps.hub_app:application"
SECTION = "capacity"
TICKS = os.sysconf("SC_CLK_TCK")


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
        "rss_kib": [b - a for a, b in zip(rss0, rss1, strict=True)],
        "redis_cpu": redis1 - redis0,
        "elapsed": elapsed,
        "messages": messages,
    }


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--small", type=int, default=200)
    parser.add_argument("--large", type=int, default=900)
    parser.add_argument("--messages", type=int, default=200)
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
    k = args.messages
    per_delivery = (large["cpu"][1] - small["cpu"][1]) / (k * (args.large - args.small))
    per_received = small["cpu"][1] / k - args.small * per_delivery
    per_call = statistics.mean([small["cpu"][0], large["cpu"][0]]) / k
    per_conn_kib = (large["rss_kib"][1] - small["rss_kib"][1]) / (args.large - args.small)
    redis_per_publish = large["redis_cpu"] / k
    rows = []
    for check in checks:
        for i, (clients, cpu) in enumerate(zip(check["clients"], check["cpu"], strict=True)):
            predicted = k * (clients * per_delivery + (per_call if i == 0 else per_received))
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
            f"- Redis CPU per broadcast (one PUBLISH to one subscriber): "
            f"**{redis_per_publish * 1e6:.0f} µs**",
            "",
            f"Check: {args.large} clients spread evenly over 2 and 3 nodes, the broadcasts "
            "called on node 0; measured and predicted CPU of each node over the run (ms), "
            "predicted = broadcasts * (clients on the node * CPU per delivery + CPU per "
            "broadcast called (node 0) or received (the others)):",
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
