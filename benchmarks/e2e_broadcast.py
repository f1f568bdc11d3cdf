"""End to end: one server process, N real WebSocket clients, K broadcasts to all of them.

(``hub-redis-2node`` and ``hub-nats-2node`` run two server processes as one
cluster; see below.)

For each variant and run:

1. start the server on a free port of 127.0.0.1 (``python -m daphne``,
   ``python -m uvicorn`` or the raw ``websockets`` script) and wait until it
   accepts a WebSocket and answers on its control path;
2. start a client process (this script with ``--client-worker``). It opens N
   connections with ``websockets.asyncio.client`` to ``/ws/bench/``, at most
   ``--connect-concurrency`` handshakes at a time; the server adds each to the
   room (or group) ``bench`` and only then sends it ``ready``. Once every client
   has its ``ready``, and ``--settle`` seconds later, a separate control
   connection asks the server for the room's size (the hub and the raw server
   can tell; a stock layer cannot) and sends ``go K``;
3. the server does K broadcasts back to back, one call each
   (``hub.broadcast_to_room``, ``channel_layer.group_send`` or
   ``websockets.asyncio.server.broadcast``), each message stamped with
   ``time.time()`` just before its call and padded to ``--size`` characters.
   With ``--pace MS`` (> 0) the calls are paced instead of back to back: call i
   is due i * MS milliseconds after the first (start-to-start), and the server
   sleeps (``asyncio.sleep``, its event loop free meanwhile) until then; a call
   already due starts at once. The stamp is still taken just before the call;
4. each client counts what arrives and records ``time.time() - stamp`` per
   message. Delivery is complete when all N*K messages arrived; otherwise the
   run ends after ``--stall`` seconds without a delivery, or ``--timeout``
   seconds after "go", and the count is reported, not hidden. Duplicates,
   messages out of order and connections the server closed are counted too.

Reported per variant, from the median run by deliveries/s (``--runs``, 3 by default):

- **deliveries/s**: messages delivered / (last arrival - first broadcast stamp);
  with ``--pace`` it follows the pace (N * 1000 / MS offered per second) and is
  no capacity figure;
- **p50 / p99 ms**: delivery latency over every message of the run;
- **delivered/expected**: of that run, plus the worst run if it lost more;
- **vs stock-redis-core / vs raw-websockets**: deliveries/s against those variants;
- **K calls ms**: how long the server's K broadcast calls took (its own clock;
  with ``--pace``, the waits between them included);
- **CPU us/msg server / client** (microseconds): CPU time the server process (from ``/proc``)
  and the client process used from "go" to the last delivery, per delivered
  message. The client's share matters: the two share the machine's cores.

Variants (``--variants``, comma separated, all by default):

- ``hub-daphne``: daphne, ``HubConsumer`` on ``InMemoryHubLayer``;
- ``hub-uvicorn``: the same app under uvicorn
  (``--ws websockets --lifespan on``; ``--uvicorn-ws`` picks another implementation);
- ``stock-redis-core``: daphne, stock ``AsyncWebsocketConsumer`` (``group_add`` on
  connect, a ``group_send`` handler that calls ``self.send``) on
  ``channels_redis.core.RedisChannelLayer``;
- ``stock-redis-pubsub``: the same on ``channels_redis.pubsub.RedisPubSubChannelLayer``;
- ``stock-nats``: the same on ``channels_nats.NatsChannelLayer`` (channels-nats);
- ``raw-websockets``: a plain ``websockets.asyncio.server`` with ``broadcast()``, no Django;
- ``hub-redis-1node``: ``hub-daphne``'s app on ``RedisHubLayer``
  (``e2e_apps.settings_hub_redis``), one server process;
- ``hub-redis-2node``: the same app in two daphne processes sharing one prefix, a
  two-node cluster. Client i connects to node i % 2; the control connection that
  triggers the K broadcasts goes to node 1, so each broadcast reaches node 2's
  half of the room through Redis. The room's size is the sum of what each node
  counts locally (each gets a control connection for ``count`` and the marks),
  "K calls" is node 1's, and the server CPU is the sum of both processes. The
  report divides its p99 by ``hub-redis-1node``'s p99 of the same run (the target
  is at most 1.5);
- ``hub-nats-1node`` / ``hub-nats-2node``: the same two on ``NatsHubLayer``
  (``e2e_apps.settings_hub_nats``), the second half of each broadcast crossing NATS;
  the report gives the same p99 ratio, and sets ``hub-nats-2node`` beside
  ``stock-nats`` (channels-nats) and ``hub-redis-2node`` when they ran too.

The stock layers and the hub's Redis and NATS layers get a prefix unique to each run and a
per-channel capacity of 100,000 (``--capacity``) where they have one, far above
the K messages a channel ever holds, so none can lose a message to capacity
(channels_redis' default is 100). The stock Redis layers' connection pool gets a
30 s socket timeout and 1,024 connections: redis-py 8's defaults (5 s, 100) cut
channels_redis' 5 s ``BZPOPMIN`` off and fail a burst of ``group_add`` calls, which
is not what the layer is meant to do (``RedisHubLayer`` keeps its defaults). What a
run leaves in the brokers under its prefix is deleted after it: Redis keys, and the
JetStream stream and bucket ``NatsHubLayer`` makes (its ``flush()`` keeps them). The
clients ask for no compression, so no server compresses (uvicorn and
``websockets`` would otherwise negotiate permessage-deflate, daphne does not).
daphne listens with a backlog of 2048 (``-e tcp:...:backlog=2048``), like the others.
Variants run round robin (run 1 of each, then run 2, ...) so drift on the machine
spreads over all of them; every run gets a fresh server process.

Brokers: Redis at ``REDIS_URL`` (default ``redis://127.0.0.1:6379``), NATS at
``NATS_URL`` (default ``nats://127.0.0.1:4222``). A variant whose broker cannot be
reached is reported as unavailable; the others run.

Server output goes to one log file per run in a temporary directory. Lines that
look like warnings, errors or tracebacks are summarised (and in ``RESULTS.md``)
by phase -- start and connect, broadcast and delivery, disconnect and shutdown --
which the client marks by having the server (every node) print a line. The directory is kept,
and named, when there are any such lines, or with ``--keep-logs``.

Run from the repository root::

    python benchmarks/e2e_broadcast.py                                   # N=1000, K=50, 3 runs
    python benchmarks/e2e_broadcast.py --clients 100 --messages 10 --runs 1 --no-write
    python benchmarks/e2e_broadcast.py --variants hub-daphne,hub-uvicorn,raw-websockets
    python benchmarks/e2e_broadcast.py --variants hub-redis-1node,hub-redis-2node --pace 40
    python benchmarks/e2e_broadcast.py --variants hub-nats-1node,hub-nats-2node,stock-nats

Results are printed and written to the ``e2e_broadcast`` section of
``benchmarks/RESULTS.md``, or with ``--pace`` > 0 to the ``e2e_broadcast_paced``
section, so a saturation run and a paced run stand side by side (``--no-write``
to skip, ``--results PATH`` for another file).

Caveats: clients and server share the machine (and its cores), so a fast server
is measured together with the cost of the Python client receiving the frames;
the numbers compare variants on one machine, they are not a capacity figure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import _common

SECTION = "e2e_broadcast"
#: Where a run with ``--pace`` > 0 goes, next to the saturation run's section.
SECTION_PACED = "e2e_broadcast_paced"
BENCH_DIR = Path(__file__).resolve().parent
APPS_DIR = BENCH_DIR / "e2e_apps"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379"
DEFAULT_NATS_URL = "nats://127.0.0.1:4222"
BENCH_PATH = "/ws/bench/"
CONTROL_PATH = "/ws/control/"
#: The ratios are given against these two variants.
REF_STOCK = "stock-redis-core"
REF_RAW = "raw-websockets"
#: uvicorn's WebSocket implementation (``--uvicorn-ws``).
UVICORN_WS = "websockets"
#: The cluster comparison: the 2-node p99 against the 1-node p99, and its target.
CLUSTER_ONE = "hub-redis-1node"
CLUSTER_TWO = "hub-redis-2node"
NATS_ONE = "hub-nats-1node"
NATS_TWO = "hub-nats-2node"
#: The stock layer on the same broker, set beside a hub cluster in the report.
STOCK_NATS = "stock-nats"
CLUSTER_P99_TARGET = 1.5


@dataclass(frozen=True)
class Cluster:
    """One hub layer's one-node and two-node variants, compared in the report."""

    one: str
    two: str
    layer: str  # the hub layer's class name
    broker: str  # "Redis" or "NATS", as the text names it
    #: The stock variant on the same broker, if any, to set the two-node run beside.
    stock: str | None = None


CLUSTERS = (
    Cluster(CLUSTER_ONE, CLUSTER_TWO, "RedisHubLayer", "Redis"),
    Cluster(NATS_ONE, NATS_TWO, "NatsHubLayer", "NATS", stock=STOCK_NATS),
)


# --------------------------------------------------------------------- variants


@dataclass(frozen=True)
class Variant:
    name: str
    server: str  # "daphne", "uvicorn" or "raw"
    app: str = ""  # module:attribute for daphne/uvicorn
    layer: str | None = None  # E2E_LAYER for the stock app
    broker: str | None = None  # "redis" or "nats"
    description: str = ""
    settings: str | None = None  # DJANGO_SETTINGS_MODULE, if not the app's own default
    nodes: int = 1  # server processes, one cluster; client i connects to node i % nodes


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant(
            "hub-daphne",
            "daphne",
            "e2e_apps.hub_asgi:application",
            description="daphne, HubConsumer on InMemoryHubLayer",
        ),
        Variant(
            "hub-uvicorn",
            "uvicorn",
            "e2e_apps.hub_asgi:application",
            description="uvicorn --ws websockets, HubConsumer on InMemoryHubLayer",
        ),
        Variant(
            "stock-redis-core",
            "daphne",
            "e2e_apps.stock_asgi:application",
            layer="redis-core",
            broker="redis",
            description="daphne, AsyncWebsocketConsumer on channels_redis.core.RedisChannelLayer",
        ),
        Variant(
            "stock-redis-pubsub",
            "daphne",
            "e2e_apps.stock_asgi:application",
            layer="redis-pubsub",
            broker="redis",
            description="daphne, AsyncWebsocketConsumer on channels_redis.pubsub."
            "RedisPubSubChannelLayer",
        ),
        Variant(
            "stock-nats",
            "daphne",
            "e2e_apps.stock_asgi:application",
            layer="nats",
            broker="nats",
            description="daphne, AsyncWebsocketConsumer on channels_nats.NatsChannelLayer",
        ),
        Variant(
            "raw-websockets",
            "raw",
            description="websockets.asyncio.server with broadcast(), no Django",
        ),
        Variant(
            CLUSTER_ONE,
            "daphne",
            "e2e_apps.hub_asgi:application",
            broker="redis",
            settings="e2e_apps.settings_hub_redis",
            description="daphne, HubConsumer on RedisHubLayer, one node",
        ),
        Variant(
            CLUSTER_TWO,
            "daphne",
            "e2e_apps.hub_asgi:application",
            broker="redis",
            settings="e2e_apps.settings_hub_redis",
            nodes=2,
            description="the same in two daphne processes, one cluster (one prefix); client i "
            "on node i % 2, the broadcasts called on node 1, so half of each crosses Redis "
            "to node 2; server CPU is both processes'",
        ),
        Variant(
            NATS_ONE,
            "daphne",
            "e2e_apps.hub_asgi:application",
            broker="nats",
            settings="e2e_apps.settings_hub_nats",
            description="daphne, HubConsumer on NatsHubLayer, one node",
        ),
        Variant(
            NATS_TWO,
            "daphne",
            "e2e_apps.hub_asgi:application",
            broker="nats",
            settings="e2e_apps.settings_hub_nats",
            nodes=2,
            description="the same in two daphne processes, one cluster (one prefix); client i "
            "on node i % 2, the broadcasts called on node 1, so half of each crosses NATS "
            "to node 2; server CPU is both processes'",
        ),
    )
}


# ------------------------------------------------------------------ small helpers


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def raise_nofile_limit() -> tuple[int, int]:
    """Raise this process's soft RLIMIT_NOFILE to the hard limit (children inherit it)."""
    try:
        import resource
    except ImportError:
        return (-1, -1)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def percentile(ordered: Sequence[float], fraction: float) -> float | None:
    """Nearest-rank percentile of an already sorted sequence."""
    if not ordered:
        return None
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def processes_cpu(pids: Sequence[int]) -> float | None:
    """CPU seconds the processes have used so far, summed; None if any cannot be read."""
    total = 0.0
    for pid in pids:
        value = process_cpu(pid)
        if value is None:
            return None
        total += value
    return total if pids else None


def process_cpu(pid: int) -> float | None:
    """CPU seconds (user + system) a process has used so far, from /proc; None elsewhere."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks
    except (OSError, ValueError, IndexError):
        return None


library_fingerprint = _common.library_fingerprint
library_version = _common.library_version


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def short_error(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {text}"[:160] if text else type(error).__name__


# ================================================================ client worker
#
# Runs in its own process (this script with --client-worker), so that the
# clients never share a process or an event loop with the server.


async def client_worker(cfg: dict[str, Any]) -> dict[str, Any]:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    raise_nofile_limit()
    n: int = cfg["clients"]
    k: int = cfg["messages"]
    urls: list[str] = cfg["urls"]  # one per node; the first gets the broadcasts' trigger
    expected = n * k
    connect_kwargs = {
        "compression": None,
        "ping_interval": None,
        "open_timeout": cfg["open_timeout"],
        "close_timeout": 2,
        "max_size": 1 << 20,
    }

    node_latencies: list[list[float]] = [[] for _ in urls]  # by the node a client is on
    node_last = [0.0] * len(urls)
    counts = [0] * n
    seen = [bytearray(k) for _ in range(n)]
    conns: list[Any] = [None] * n
    errors: Counter[str] = Counter()
    st: dict[str, Any] = {
        "total": 0,
        "unique": 0,
        "duplicates": 0,
        "out_of_order": 0,
        "bogus": 0,
        "first_ts": math.inf,
        "last_arrival": 0.0,
        "complete_at": None,
        "ready": 0,
        "settled": 0,
        "stopping": False,
    }
    all_settled = asyncio.Event()
    complete = asyncio.Event()
    handshakes = asyncio.Semaphore(cfg["connect_concurrency"])

    def settle_one() -> None:
        st["settled"] += 1
        if st["settled"] == n:
            all_settled.set()

    async def member(i: int) -> None:
        async with handshakes:
            try:
                ws = await connect(urls[i % len(urls)] + BENCH_PATH, **connect_kwargs)
            except Exception as error:
                errors[f"connect failed: {short_error(error)}"] += 1
                settle_one()
                return
            try:
                first = await asyncio.wait_for(ws.recv(), cfg["open_timeout"])
            except Exception as error:
                errors[f"no ready frame: {short_error(error)}"] += 1
                settle_one()
                with contextlib.suppress(Exception):
                    await ws.close()
                return
        if first != "ready":
            errors[f"unexpected first frame {str(first)[:40]!r}"] += 1
        conns[i] = ws
        st["ready"] += 1
        settle_one()
        row = seen[i]
        node = i % len(urls)
        latencies = node_latencies[node]
        previous = -1
        try:
            while True:
                data = await ws.recv(decode=False)
                now = time.time()
                try:
                    seq_b, ts_b, _ = data.split(b" ", 2)
                    seq = int(seq_b)
                    ts = float(ts_b)
                except ValueError:
                    st["bogus"] += 1
                    continue
                st["total"] += 1
                if not 0 <= seq < k:
                    st["bogus"] += 1
                    continue
                if row[seq]:
                    st["duplicates"] += 1
                    continue
                row[seq] = 1
                if seq != previous + 1:
                    st["out_of_order"] += 1
                previous = seq
                counts[i] += 1
                latencies.append(now - ts)
                if ts < st["first_ts"]:
                    st["first_ts"] = ts
                st["last_arrival"] = node_last[node] = now
                st["unique"] += 1
                if st["unique"] == expected:
                    st["complete_at"] = now
                    complete.set()
        except ConnectionClosed as closed:
            if not st["stopping"]:
                code = closed.rcvd.code if closed.rcvd is not None else None
                errors[f"connection closed by the server (code {code})"] += 1
        except Exception as error:
            if not st["stopping"]:
                errors[f"receive failed: {short_error(error)}"] += 1

    result: dict[str, Any] = {"expected": expected, "clients": n, "messages": k}
    tasks = [asyncio.create_task(member(i)) for i in range(n)]
    controls: list[Any] = []  # one per node; controls[0] triggers the broadcasts

    async def ask_all(command: str) -> list[str]:
        replies = []
        for ws in controls:
            await ws.send(command)
            replies.append(str(await asyncio.wait_for(ws.recv(), 10)))
        return replies

    try:
        started = time.perf_counter()
        try:
            await asyncio.wait_for(all_settled.wait(), cfg["connect_timeout"])
        except TimeoutError:
            errors["connect phase timed out"] += 1
        result["connect_s"] = time.perf_counter() - started
        result["connected"] = st["ready"]
        if st["ready"] == 0:
            result.update(status="error", delivered=0, errors=dict(errors))
            return result
        await asyncio.sleep(cfg["settle"])

        for url in urls:
            controls.append(await connect(url + CONTROL_PATH, **connect_kwargs))
        control = controls[0]
        node_counts = [
            int(reply.split()[1]) if reply.startswith("count ") else None
            for reply in await ask_all("count")
        ]
        if None in node_counts:
            result["room_count"] = None
        elif -1 in node_counts:
            result["room_count"] = -1
        else:  # a cluster: each node counts its own members of the room
            result["room_count"] = sum(c for c in node_counts if c is not None)
        if len(node_counts) > 1:
            result["room_counts"] = node_counts

        await ask_all("mark go")
        server_pids: list[int] = cfg.get("server_pids") or []
        server_cpu_go = processes_cpu(server_pids)
        nodes_cpu_go = [process_cpu(pid) for pid in server_pids]
        client_cpu_go = time.process_time()
        pace_ms: float = cfg.get("pace", 0.0)
        # Unpaced, the command is the one the servers always took.
        await control.send(f"go {k} {cfg['size']}" + (f" {pace_ms:g}" if pace_ms > 0 else ""))
        go_at = time.time()
        # Paced, the broadcasts alone take (K - 1) x pace, and deliveries pause in between.
        timeout = cfg["timeout"] + (k - 1) * pace_ms / 1000
        stall = cfg["stall"] + pace_ms / 1000

        async def control_reply() -> str:
            return str(await control.recv())

        done_task = asyncio.create_task(control_reply())
        last_total, last_change, status = -1, time.monotonic(), "complete"
        while not complete.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(complete.wait(), 0.25)
            now = time.monotonic()
            if st["unique"] != last_total:
                last_total, last_change = st["unique"], now
            elif now - last_change > stall:
                status = "stalled"
                break
            if time.time() - go_at > timeout:
                status = "timeout"
                break
        server_cpu_end = processes_cpu(server_pids)
        nodes_cpu_end = [process_cpu(pid) for pid in server_pids]
        result["client_cpu_s"] = time.process_time() - client_cpu_go
        if server_cpu_go is not None and server_cpu_end is not None:
            result["server_cpu_s"] = server_cpu_end - server_cpu_go
        if len(server_pids) > 1:
            result["node_cpu_s"] = [
                None if go is None or end is None else end - go
                for go, end in zip(nodes_cpu_go, nodes_cpu_end, strict=True)
            ]
        if cfg["linger"] > 0:  # late duplicates or extras would show up here
            await asyncio.sleep(cfg["linger"])
        try:
            done_text = await asyncio.wait_for(done_task, 15)
            parts = done_text.split()
            if parts[:1] == ["done"]:
                result["send_s"] = float(parts[1])
                result["send_errors"] = int(parts[2])
                if len(parts) > 3:  # paced: the most a call started behind its due time
                    result["late_s"] = float(parts[3])
            else:
                errors[f"control reply {done_text[:60]!r}"] += 1
        except Exception as error:
            done_task.cancel()
            errors[f"no control reply: {short_error(error)}"] += 1
        result["status"] = status if st["unique"] < expected else "complete"
        try:  # what the servers log from here on is teardown, not the run
            await ask_all("mark measured")
        except Exception as error:
            errors[f"no reply to mark: {short_error(error)}"] += 1
    finally:
        st["stopping"] = True
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        closing = asyncio.Semaphore(200)

        async def close(ws: Any) -> None:
            async with closing:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(ws.close(), 5)

        await asyncio.gather(*(close(ws) for ws in [*conns, *controls] if ws is not None))

    for one in node_latencies:
        one.sort()
    if len(urls) > 1:  # where a cluster's time goes: each node's clients apart
        result["nodes"] = [
            {
                "p50": percentile(one, 0.50),
                "p99": percentile(one, 0.99),
                "max": one[-1] if one else None,
                "last_s": node_last[node] - st["first_ts"] if one else None,
                "cpu_s": (result.get("node_cpu_s") or [None] * len(urls))[node],
                "delivered": len(one),
            }
            for node, one in enumerate(node_latencies)
        ]
    latencies = sorted(x for one in node_latencies for x in one)
    end = st["complete_at"] if st["complete_at"] is not None else st["last_arrival"]
    span = end - st["first_ts"] if st["unique"] else None
    result.update(
        delivered=st["unique"],
        received_frames=st["total"],
        duplicates=st["duplicates"],
        out_of_order=st["out_of_order"],
        bogus=st["bogus"],
        span_s=span,
        rate=(st["unique"] / span) if span and span > 0 else None,
        p50=percentile(latencies, 0.50),
        p99=percentile(latencies, 0.99),
        max_latency=latencies[-1] if latencies else None,
        min_per_client=min(counts) if counts else 0,
        max_per_client=max(counts) if counts else 0,
        errors=dict(errors),
    )
    return result


def client_worker_main(raw: str) -> int:
    cfg = json.loads(raw)
    result = asyncio.run(client_worker(cfg))
    print("RESULT " + json.dumps(result), flush=True)
    return 0


# ===================================================================== servers


@dataclass
class Server:
    variant: Variant
    port: int
    log_path: Path
    prefix: str
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"


def server_command(variant: Variant, port: int) -> list[str]:
    if variant.server == "daphne":
        endpoint = f"tcp:port={port}:interface=127.0.0.1:backlog=2048"
        # -v 0: warnings and errors only, no access log (uvicorn: --log-level warning).
        return [sys.executable, "-m", "daphne", "-v", "0", "-e", endpoint, variant.app]
    if variant.server == "uvicorn":
        return [
            sys.executable, "-m", "uvicorn", variant.app,
            "--host", "127.0.0.1", "--port", str(port),
            "--ws", UVICORN_WS, "--lifespan", "on",
            "--backlog", "2048", "--log-level", "warning",
        ]  # fmt: skip
    return [sys.executable, str(APPS_DIR / "raw_server.py"), "--port", str(port)]


def server_env(variant: Variant, prefix: str, args: argparse.Namespace) -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(BENCH_DIR), str(_common.REPO_ROOT)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("DJANGO_SETTINGS_MODULE", None)  # each app sets its own
    if variant.settings is not None:
        env["DJANGO_SETTINGS_MODULE"] = variant.settings
    if variant.layer is not None:
        env["E2E_LAYER"] = variant.layer
    if variant.layer is not None or variant.broker is not None:
        env["E2E_PREFIX"] = prefix
        env["E2E_CAPACITY"] = str(args.capacity)
        env["E2E_REDIS_URL"] = args.redis_url
        env["E2E_NATS_URL"] = args.nats_url
    return env


async def probe(url: str, deadline: float) -> str | None:
    """None once the server answers ``count`` on its control path, else the last error."""
    from websockets.asyncio.client import connect

    last = "never reached"
    while time.monotonic() < deadline:
        try:
            async with connect(
                url + CONTROL_PATH, compression=None, ping_interval=None, open_timeout=3
            ) as ws:
                await ws.send("count")
                reply = await asyncio.wait_for(ws.recv(), 3)
                if str(reply).startswith("count "):
                    return None
                last = f"unexpected reply {str(reply)[:40]!r}"
        except Exception as error:
            last = short_error(error)
        await asyncio.sleep(0.1)
    return last


def wait_for_port(port: int, deadline: float, process: subprocess.Popen[bytes]) -> bool:
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.5)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.05)
    return False


def start_server(server: Server, args: argparse.Namespace) -> str | None:
    """Start the server process; None once it serves, else why not (it is stopped then)."""
    command = server_command(server.variant, server.port)
    env = server_env(server.variant, server.prefix, args)
    with open(server.log_path, "wb") as log:
        log.write(("$ " + " ".join(command[1:]) + "\n").encode())
        log.flush()
        server.process = subprocess.Popen(
            command, cwd=BENCH_DIR, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    deadline = time.monotonic() + args.start_timeout
    if not wait_for_port(server.port, deadline, server.process):
        code = server.process.poll()
        stop_server(server)
        return f"server exited with {code}" if code is not None else "port never accepted"
    error = asyncio.run(probe(server.url, deadline))
    if error is not None:
        stop_server(server)
        return f"server did not answer its control path: {error}"
    return None


def stop_server(server: Server) -> None:
    """Stop the server this script started, by its PID: SIGTERM, then SIGKILL."""
    process = server.process
    if process is None or process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


LOG_PATTERN = re.compile(r"Traceback|ERROR|CRITICAL|WARNING|Warning|Exception|Error|error")
MARK_PREFIX = "=== e2e_broadcast mark:"
#: Phases of a server log, split by the marks the client has the server write.
PHASES = ("start and connect", "broadcast and delivery", "disconnect and shutdown")


def scan_log(path: Path) -> list[tuple[str, str]]:
    """(phase, line) for lines of a server log that look like a warning, error or traceback."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    phase, found = PHASES[0], []
    for line in lines[1:]:
        if line.startswith(MARK_PREFIX):
            word = line[len(MARK_PREFIX) :].strip()
            phase = PHASES[1] if word == "go" else PHASES[2] if word == "measured" else phase
        elif LOG_PATTERN.search(line):
            found.append((phase, line.strip()))
    return found


def strip_paths(line: str) -> str:
    """A log line without this machine's paths: packages and repository files relative."""
    line = line.replace(str(_common.REPO_ROOT) + os.sep, "")
    line = re.sub(r"[^\s\"']*[/\\](?:site|dist)-packages[/\\]", "", line)
    line = re.sub(r"[^\s\"']*[/\\]lib[/\\]python\d+\.\d+[/\\]", "", line)
    # Anything else absolute (a temporary directory, a home) is cut to its last part.
    return re.sub(r"(?<![\w.])/(?:[^\s/:'\"]+/)+([^\s/:'\"]+)", r"\1", line)


def normalise(line: str) -> str:
    """A log line without its timestamp, numbers, ids and paths, to group repeats."""
    line = strip_paths(line)
    line = re.sub(r"^\S+ \S+ (?=[A-Z]+ )", "", line)
    line = re.sub(r"[0-9a-f]{8,}", "#", line)
    return re.sub(r"\d+(\.\d+)?", "N", line)


def cleanup_nats(url: str, prefix: str) -> None:
    """Delete the JetStream stream and bucket a NatsHubLayer cluster made under ``prefix``."""
    with contextlib.suppress(Exception):
        asyncio.run(_common.delete_nats_prefix_streams(url, prefix))


def cleanup_redis(url: str, prefix: str) -> None:
    try:
        import redis
    except ImportError:
        return
    with contextlib.suppress(Exception):
        client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        try:
            keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
            for start in range(0, len(keys), 500):
                client.delete(*keys[start : start + 500])
        finally:
            client.close()


# ===================================================================== one run


@dataclass
class Run:
    status: str  # complete, stalled, timeout, error
    result: dict[str, Any] = field(default_factory=dict)
    detail: str = ""
    fingerprint: str = ""  # of the library's sources when the server started

    @property
    def rate(self) -> float | None:
        value = self.result.get("rate")
        return float(value) if value else None

    @property
    def delivered(self) -> int:
        return int(self.result.get("delivered", 0))


def run_once(variant: Variant, number: int, args: argparse.Namespace, log_dir: Path) -> Run:
    prefix = f"e2e{uuid.uuid4().hex[:10]}"  # letters and digits; shared by a cluster's nodes
    servers: list[Server] = []
    for node in range(1, variant.nodes + 1):
        port = free_port()
        while any(s.port == port for s in servers):
            port = free_port()
        name = f"{variant.name}-run{number}" + (f"-node{node}" if variant.nodes > 1 else "")
        servers.append(Server(variant, port, log_dir / f"{name}.log", prefix))
    try:
        for node, server in enumerate(servers, 1):
            error = start_server(server, args)
            if error is not None:
                where = f"node {node}: " if variant.nodes > 1 else ""
                return Run("error", detail=strip_paths(where + error))
        cfg = {
            "urls": [server.url for server in servers],
            "clients": args.clients,
            "messages": args.messages,
            "size": args.size,
            "pace": args.pace,
            "settle": args.settle,
            "timeout": args.timeout,
            "stall": args.stall,
            "linger": args.linger,
            "connect_timeout": args.connect_timeout,
            "connect_concurrency": args.connect_concurrency,
            "open_timeout": 30,
            "server_pids": [s.process.pid for s in servers if s.process is not None],
        }
        limit = args.connect_timeout + args.settle + args.timeout + args.stall + 90
        try:
            done = subprocess.run(
                [sys.executable, str(Path(__file__).resolve()), "--client-worker", json.dumps(cfg)],
                cwd=BENCH_DIR,
                capture_output=True,
                timeout=limit,
            )
        except subprocess.TimeoutExpired:
            return Run("error", detail=f"client process exceeded {limit:.0f} s")
        found = [
            line for line in done.stdout.decode(errors="replace").splitlines()
            if line.startswith("RESULT ")
        ]  # fmt: skip
        if done.returncode != 0 or not found:
            tail = done.stderr.decode(errors="replace").strip().splitlines()[-3:]
            detail = strip_paths(f"client exited {done.returncode}: {' | '.join(tail)}")
            return Run("error", detail=detail)
        result = json.loads(found[-1][len("RESULT ") :])
        return Run(result.get("status", "error"), result)
    finally:
        for server in servers:
            stop_server(server)
        if variant.broker == "redis":
            cleanup_redis(args.redis_url, prefix)
        elif variant.broker == "nats" and variant.settings is not None:
            cleanup_nats(args.nats_url, prefix)
        run_lines = []
        for server in servers:
            flagged = scan_log(server.log_path)
            if flagged:
                progress(f"  {len(flagged)} warning/error line(s) in {server.log_path}")
            run_lines += flagged
        _last_log_lines[variant.name, number] = run_lines


_last_log_lines: dict[tuple[str, int], list[tuple[str, str]]] = {}


def node_breakdown(run: Run) -> str:
    """Per node of a cluster: its clients' p50 / p99, last arrival, the node's CPU."""
    parts = []
    for number, node in enumerate(run.result.get("nodes") or [], 1):
        cpu = node.get("cpu_s")
        parts.append(
            f"node {number} p50 / p99 {_common.format_ms(node.get('p50'))} / "
            f"{_common.format_ms(node.get('p99'))} ms, last arrival "
            f"{_common.format_ms(node.get('last_s'))} ms after the first stamp, CPU "
            + (_common.DASH if cpu is None else f"{cpu * 1e3:,.0f} ms")
        )
    return "; ".join(parts)


def describe_run(run: Run) -> str:
    r = run.result
    if run.status == "error" and not r:
        return f"error: {run.detail}"
    parts = [
        f"{run.status:8}",
        f"{(run.rate or 0):>10,.0f} deliveries/s",
        f"p50 {_common.format_ms(r.get('p50'))} ms",
        f"p99 {_common.format_ms(r.get('p99'))} ms",
        f"{run.delivered:,}/{r.get('expected', 0):,}",
        f"K calls {_common.format_ms(r.get('send_s'))} ms",
    ]
    if r.get("late_s") is not None:
        parts.append(f"latest call {_common.format_ms(r['late_s'])} ms behind schedule")
    parts += [
        f"CPU us/msg {cpu_per_message(run)}",
        f"connected {r.get('connected', 0):,} in {r.get('connect_s', 0):.1f} s",
    ]
    if r.get("room_count") not in (None, -1):
        split = " (" + " + ".join(map(str, r["room_counts"])) + ")" if r.get("room_counts") else ""
        parts.append(f"room {r['room_count']:,}{split}")
    for key in ("duplicates", "out_of_order", "bogus", "send_errors"):
        if r.get(key):
            parts.append(f"{key} {r[key]:,}")
    if r.get("nodes"):
        parts.append(node_breakdown(run))
    if r.get("errors"):
        parts.append("client errors: " + "; ".join(f"{v}x {k}" for k, v in r["errors"].items()))
    return ", ".join(parts)


# ===================================================================== report


@dataclass
class Row:
    variant: Variant
    runs: list[Run] = field(default_factory=list)
    unavailable: str | None = None
    log_lines: list[tuple[str, str]] = field(default_factory=list)

    def median_run(self) -> Run | None:
        usable = [run for run in self.runs if run.rate is not None]
        if not usable:
            return None
        usable.sort(key=lambda run: run.rate or 0.0)
        return usable[(len(usable) - 1) // 2]

    def worst_run(self) -> Run | None:
        usable = [run for run in self.runs if run.result]
        return min(usable, key=lambda run: run.delivered) if usable else None


def cpu_per_message(run: Run) -> str:
    """Server and client CPU microseconds per delivered message, "server / client"."""
    r, delivered = run.result, run.delivered
    if not delivered:
        return _common.DASH

    def one(key: str) -> str:
        value = r.get(key)
        return _common.DASH if value is None else f"{value * 1e6 / delivered:,.1f}"

    return f"{one('server_cpu_s')} / {one('client_cpu_s')}"


def ratio(reference: float | None, value: float | None) -> str:
    """How a rate compares to a reference rate ("2.0x faster" = twice the deliveries/s)."""
    if not reference or not value:
        return "n/a"
    return _common.ratio_text(1 / reference, 1 / value)


def rate_text(value: float | None) -> str:
    return _common.DASH if value is None else f"{value:,.0f}"


def build_table(rows: list[Row]) -> str:
    medians = {row.variant.name: row.median_run() for row in rows}

    def ref_rate(name: str) -> float | None:
        run = medians.get(name)
        return run.rate if run is not None else None

    stock, raw = ref_rate(REF_STOCK), ref_rate(REF_RAW)
    body = []
    for row in rows:
        name = row.variant.name
        run = medians[name]
        if row.unavailable is not None:
            body.append([name, "unavailable", "", "", "", "", "", "", "", row.unavailable])
            continue
        if run is None:
            detail = "; ".join(sorted({r.detail or r.status for r in row.runs})) or "no run"
            body.append([name, "error", "", "", "", "", "", "", "", detail])
            continue
        r = run.result
        delivered = f"{run.delivered:,}/{r['expected']:,}"
        worst = row.worst_run()
        if worst is not None and worst.delivered < run.delivered:
            delivered += f" (worst run {worst.delivered:,})"
        if run.delivered < r["expected"]:
            delivered += f" {run.status}"
        all_rates = ", ".join(rate_text(x.rate) for x in row.runs)
        body.append(
            [
                name,
                rate_text(run.rate),
                _common.format_ms(r.get("p50")),
                _common.format_ms(r.get("p99")),
                delivered,
                ratio(stock, run.rate) if name != REF_STOCK else _common.DASH,
                ratio(raw, run.rate) if name != REF_RAW else _common.DASH,
                _common.format_ms(r.get("send_s")),
                cpu_per_message(run),
                all_rates,
            ]
        )
    headers = [
        "variant",
        "deliveries/s",
        "p50 ms",
        "p99 ms",
        "delivered/expected",
        f"vs {REF_STOCK}",
        f"vs {REF_RAW}",
        "K calls ms",
        "CPU \u00b5s/msg server / client",
        "deliveries/s of every run",
    ]
    return _common.markdown_table(headers, body, align="lrrrrllrrl")


def server_cpu_us(run: Run) -> float | None:
    """Server CPU microseconds per delivered message (a cluster: its processes together)."""
    value, delivered = run.result.get("server_cpu_s"), run.delivered
    return value * 1e6 / delivered if value is not None and delivered else None


def cluster_paragraph(rows: list[Row], args: argparse.Namespace, cluster: Cluster) -> str:
    """The 2-node p99 against the 1-node p99 of the same run, and the target."""
    found = {row.variant.name: row for row in rows}
    one_name, two_name = cluster.one, cluster.two
    one_row, two_row = found.get(one_name), found.get(two_name)
    if one_row is None or two_row is None:
        return ""
    title = f"**Two nodes on {cluster.broker}**"
    one, two = one_row.median_run(), two_row.median_run()
    if one is None or two is None or not one.result.get("p99") or not two.result.get("p99"):
        return (
            f"{title}: no p99 ratio in this run, `{one_name}` or `{two_name}` "
            "delivered nothing (see the table and the problems below)."
        )
    factor = two.result["p99"] / one.result["p99"]
    verdict = "within" if factor <= CLUSTER_P99_TARGET else "outside"

    def every(row: Row) -> str:
        return ", ".join(_common.format_ms(run.result.get("p99")) for run in row.runs)

    # The median run is picked by deliveries/s, which a pace makes nearly equal across
    # runs; so the p99s' medians and the ratio within each round robin round as well.
    def p99s(row: Row) -> list[float | None]:
        return [run.result.get("p99") or None for run in row.runs]

    one_p99s, two_p99s = p99s(one_row), p99s(two_row)
    one_median = _common.median(x for x in one_p99s if x is not None)
    two_median = _common.median(x for x in two_p99s if x is not None)
    by_round = ", ".join(
        f"{b / a:.2f}" if a and b else _common.DASH
        for a, b in zip(one_p99s, two_p99s, strict=False)
    )
    robust = (
        f" The medians of the runs' p99: {_common.format_ms(two_median)} / "
        f"{_common.format_ms(one_median)} ms = **{two_median / one_median:.2f}**; the ratio "
        f"within each round of the round robin: {by_round}."
        if one_median and two_median
        else ""
    )

    return (
        f"{title} (median runs). `{two_name}` p99 "
        f"{_common.format_ms(two.result['p99'])} ms / `{one_name}` p99 "
        f"{_common.format_ms(one.result['p99'])} ms = **{factor:.2f}**, {verdict} the target "
        f"of {CLUSTER_P99_TARGET:g} (p99 ms of every run: {one_name} {every(one_row)}; "
        f"{two_name} {every(two_row)}).{robust} By node, in the median `{two_name}` run: "
        f"{node_breakdown(two)}; node 1's K calls took "
        f"{_common.format_ms(two.result.get('send_s'))} ms (`{one_name}`'s "
        f"{_common.format_ms(one.result.get('send_s'))} ms). "
        f"Both run the same app on `{cluster.layer}`: on one "
        f"node each broadcast is published to {cluster.broker} and written to all N "
        f"connections by that node; on two, node 1 writes to its "
        f"{math.ceil(args.clients / 2):,} and node 2 receives the publish from "
        f"{cluster.broker} and writes to its {args.clients // 2:,}. Two server "
        "processes and the client then share the machine's cores." + beside_paragraph(rows, cluster)
    )


def beside_paragraph(rows: list[Row], cluster: Cluster) -> str:
    """The two-node run set beside the stock layer on the same broker and the other
    hub clusters of the same run: deliveries/s, and server CPU per delivery."""
    medians = {row.variant.name: row.median_run() for row in rows}
    two = medians.get(cluster.two)
    if two is None or two.rate is None:
        return ""
    others = [cluster.stock] if cluster.stock else []
    others += [c.two for c in CLUSTERS if c.two != cluster.two]
    parts = []
    for name in others:
        run = medians.get(name) if name else None
        if run is None or run.rate is None:
            continue
        mine, theirs = server_cpu_us(two), server_cpu_us(run)
        cpu = (
            f", server CPU {mine:,.1f} vs {theirs:,.1f} \u00b5s per delivery"
            if mine is not None and theirs is not None
            else ""
        )
        parts.append(
            f"`{cluster.two}` against `{name}`: {rate_text(two.rate)} vs "
            f"{rate_text(run.rate)} deliveries/s ({ratio(run.rate, two.rate)}){cpu}"
        )
    return (" Beside the others (median runs): " + "; ".join(parts) + ".") if parts else ""


def pace_text(args: argparse.Namespace) -> str:
    """How the K calls were spaced, for the section's text."""
    if args.pace <= 0:
        return "back to back, each one call"
    offered = args.clients * 1000 / args.pace
    return (
        f"**paced: one call every {args.pace:g} ms** (start-to-start: call i is due "
        f"i\u00d7{args.pace:g} ms after the first, and the server sleeps with `asyncio.sleep`, "
        "its event loop free, until then; a call already due starts at once), so "
        f"{offered:,.0f} deliveries/s are offered to every variant alike; each broadcast is "
        "one call"
    )


def pace_paragraph(rows: list[Row], args: argparse.Namespace) -> str:
    """With --pace: what deliveries/s means then, and whether each server kept the pace."""
    if args.pace <= 0:
        return ""
    offered = args.clients * 1000 / args.pace
    # The broadcasts span (K - 1) x pace; the last one needs its own delivery time on top.
    span = (args.messages - 1) * args.pace / 1000
    ceiling = f"at most {args.clients * args.messages / span:,.0f}" if span else "no bound"
    kept = []
    for row in rows:
        run = row.median_run()
        if run is not None and run.result.get("late_s") is not None:
            kept.append(f"`{row.variant.name}` {_common.format_ms(run.result['late_s'])} ms")
    return (
        f"**Paced run** (`--pace {args.pace:g}`). The broadcasts come at the pace, not as "
        f"fast as the server can, so deliveries/s reflects the offered {offered:,.0f}/s: a "
        f"variant that keeps up shows just under {offered:,.0f} (N\u00d7K over (K\u22121) "
        f"paces of {(args.messages - 1) * args.pace:,.0f} ms plus the last message's latency; "
        f"{ceiling}), one that shows clearly less fell behind. It is no capacity "
        'figure: see the `e2e_broadcast` section for the saturation run. "K calls" '
        "includes the waits. The latencies compare the variants at equal offered load. "
        + (
            "Latest start of a call behind its due time, in the median run (node 1 for a "
            "cluster; it includes how late the sleep woke up, so it also shows how busy the "
            "server's loop was): " + "; ".join(kept) + "."
            if kept
            else ""
        )
    )


def report(
    rows: list[Row], args: argparse.Namespace, machine: list[tuple[str, str]], command: str
) -> str:
    title = "K broadcasts to N real WebSocket clients"
    if args.pace > 0:
        title += f", paced one every {args.pace:g} ms"
    lines = [
        f"## `e2e_broadcast.py`: {title}",
        "",
        f"Run {_common.utc_now()}, command:",
        "",
        f"```sh\n{command}\n```",
        "",
        _common.render_description(machine),
        "",
        f"N = {args.clients:,} clients (one client process, `websockets.asyncio.client`) "
        "against one server process (the two-node variants: two); K = "
        f"{args.messages:,} broadcasts of "
        f"{args.size}-character text messages, {pace_text(args)} "
        f"(`hub.broadcast_to_room`, `channel_layer.group_send`, `websockets` `broadcast()`); "
        f"{args.runs} run(s) per variant, round robin, a fresh server each run. "
        "Each message carries `time.time()` taken just before its call; latency is "
        "arrival minus that stamp, over all N\u00d7K messages. deliveries/s = messages "
        "delivered / (last arrival \u2212 first stamp). The row is the median run by "
        'deliveries/s; "K calls" is the server\'s own time for its K calls. '
        "Stock layers, `RedisHubLayer` and `NatsHubLayer` get a per-channel capacity of "
        f"{args.capacity:,} "
        "where they have one "
        "(channels_redis' default is 100), so none loses a message to capacity, and the "
        "stock Redis layers' pool a 30 s socket timeout and 1,024 connections (redis-py 8's "
        "defaults, 5 s and 100, time out channels_redis' 5 s `BZPOPMIN` and fail bursts of "
        '`group_add` with "Too many connections"). No compression on any connection. '
        '"CPU \u00b5s/msg" is the CPU time of the server process (of a cluster: its '
        'processes together) and of the client process from "go" to the last delivery, per '
        "message delivered: clients and server share the machine's cores, so a client that "
        "costs more leaves the server less.",
        "",
        build_table(rows),
        "",
    ]
    for row in rows:
        description = row.variant.description.replace("--ws websockets", f"--ws {UVICORN_WS}")
        lines.append(f"- `{row.variant.name}`: {description}.")
    for paragraph in (
        pace_paragraph(rows, args),
        *(cluster_paragraph(rows, args, cluster) for cluster in CLUSTERS),
    ):
        if paragraph:
            lines += ["", paragraph]
    notes = []
    for row in rows:
        problems = []
        for number, run in enumerate(row.runs, 1):
            r = run.result
            bits = []
            if run.status != "complete":
                bits.append(run.status + (f" ({run.detail})" if run.detail else ""))
            if r and r.get("delivered", 0) < r.get("expected", 0):
                bits.append(f"{r['delivered']:,}/{r['expected']:,} delivered")
            for key in ("duplicates", "out_of_order", "bogus", "send_errors"):
                if r.get(key):
                    bits.append(f"{r[key]:,} {key.replace('_', ' ')}")
            if r.get("connected", args.clients) < args.clients:
                bits.append(f"{r['connected']:,}/{args.clients:,} connected")
            if r.get("room_count") not in (None, -1, args.clients):
                bits.append(f"room count {r['room_count']:,}")
            for text, count in (r.get("errors") or {}).items():
                bits.append(f"{count:,}\u00d7 {text}")
            if bits:
                problems.append(f"run {number}: " + "; ".join(bits))
        for phase in PHASES:
            lines_in_phase = [line for where, line in row.log_lines if where == phase]
            if not lines_in_phase:
                continue
            distinct = Counter(normalise(line) for line in lines_in_phase)
            top = "; ".join(f"{n:,}\u00d7 `{text[:150]}`" for text, n in distinct.most_common(3))
            problems.append(
                f"server log, {phase}: {len(lines_in_phase):,} warning/error line(s), "
                f"most common: {top}"
            )
        if problems:
            notes.append(f"- `{row.variant.name}`: " + " | ".join(problems))
    versions = list(dict.fromkeys(run.fingerprint for row in rows for run in row.runs))
    if len(versions) > 1:
        notes.insert(
            0,
            f"- **The library's sources changed during this run** ({len(versions)} versions: "
            f"{', '.join(versions)}); the runs do not all measure the same code.",
        )
    lines += ["", "Problems seen:" if notes else "No losses, errors or server warnings seen."]
    if notes:
        lines += ["", *notes]
    return "\n".join(lines) + "\n"


# ===================================================================== driver


def check_broker(variant: Variant, args: argparse.Namespace) -> str | None:
    if variant.broker == "redis":
        version = _common.redis_server_version(args.redis_url)
        return version if version.startswith("unreachable") else None
    if variant.broker == "nats":
        version = asyncio.run(_common.nats_server_version(args.nats_url))
        return version if version.startswith("unreachable") else None
    return None


def server_package_origin(args: argparse.Namespace) -> str | None:
    """Where a server process of this script finds wshub_channels: the same interpreter,
    working directory and ``PYTHONPATH`` as ``start_server`` gives them."""
    code = "import importlib.util as u; s = u.find_spec('wshub_channels'); print(s and s.origin)"
    try:
        done = subprocess.run(
            [sys.executable, "-c", code],
            cwd=BENCH_DIR,
            env=server_env(VARIANTS["hub-daphne"], "origin", args),
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    origin = done.stdout.strip()
    return origin if origin and origin != "None" else None


def describe_machine(variants: list[Variant], args: argparse.Namespace) -> list[tuple[str, str]]:
    extra = {
        "wshub-channels": library_version(server_package_origin(args)),
        "Event loop": "asyncio"
        + (" (uvloop installed: uvicorn uses it)" if _has("uvloop") else " (no uvloop)"),
    }
    brokers = {v.broker for v in variants}
    if "redis" in brokers:
        version = _common.redis_server_version(args.redis_url)
        extra["Redis server"] = f"{version} at {_common.redact_url(args.redis_url)}"
    if "nats" in brokers:
        version = asyncio.run(_common.nats_server_version(args.nats_url))
        extra["NATS server"] = f"{version} at {_common.redact_url(args.nats_url)}"
    with contextlib.suppress(OSError, AttributeError):
        extra["Load average at start"] = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    soft, hard = raise_nofile_limit()
    extra["Open files limit"] = f"{soft:,} (hard {hard:,})"
    packages = [
        "Django", "channels", "daphne", "Twisted", "autobahn", "uvicorn", "websockets",
        "channels-redis", "redis", "channels-nats", "nats-py",
    ]  # fmt: skip
    return _common.machine_description(packages, extra)


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="K broadcasts to N real WebSocket clients, per server and layer.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--clients", type=int, default=1000, help="N WebSocket clients")
    parser.add_argument("--messages", type=int, default=50, help="K broadcasts")
    parser.add_argument("--runs", type=int, default=3, help="runs per variant")
    parser.add_argument(
        "--variants", default=",".join(VARIANTS), help="comma-separated, from: %(default)s"
    )
    parser.add_argument("--size", type=int, default=100, help="characters per message")
    parser.add_argument(
        "--pace",
        type=float,
        default=0.0,
        metavar="MS",
        help="milliseconds from one broadcast call's start to the next's (0: back to back); "
        "> 0 writes the e2e_broadcast_paced section",
    )
    parser.add_argument("--settle", type=float, default=0.5, help="seconds after all ready")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds after go")
    parser.add_argument("--stall", type=float, default=15.0, help="seconds without a delivery")
    parser.add_argument("--linger", type=float, default=0.3, help="seconds to catch extras")
    parser.add_argument("--connect-timeout", type=float, default=180.0)
    parser.add_argument("--connect-concurrency", type=int, default=100)
    parser.add_argument("--start-timeout", type=float, default=30.0)
    parser.add_argument("--capacity", type=int, default=100_000, help="layers' capacity")
    parser.add_argument(
        "--uvicorn-ws",
        default=UVICORN_WS,
        choices=("websockets", "websockets-sansio", "wsproto"),
        help="uvicorn's --ws implementation",
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep server logs always")
    parser.add_argument("--no-write", action="store_true", help="only print")
    parser.add_argument("--results", type=Path, default=_common.RESULTS_FILE)
    args = parser.parse_args(argv)
    names = [name.strip() for name in args.variants.split(",") if name.strip()]
    unknown = [name for name in names if name not in VARIANTS]
    if unknown or not names:
        parser.error(f"unknown variant(s) {', '.join(unknown)}; known: {', '.join(VARIANTS)}")
    if args.clients < 1 or args.messages < 1 or args.runs < 1 or args.size < 1:
        parser.error("--clients, --messages, --runs and --size must be positive")
    if not 0 <= args.pace < math.inf:
        parser.error("--pace must be 0 or a positive number of milliseconds")
    args.variant_list = [VARIANTS[name] for name in names]
    args.redis_url = os.environ.get("REDIS_URL", DEFAULT_REDIS_URL)
    args.nats_url = os.environ.get("NATS_URL", DEFAULT_NATS_URL)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--client-worker"]:
        return client_worker_main(argv[1])
    args = parse_args(argv)
    global UVICORN_WS
    UVICORN_WS = args.uvicorn_ws
    raise_nofile_limit()
    variants: list[Variant] = args.variant_list
    machine = describe_machine(variants, args)
    rows = [Row(v, unavailable=check_broker(v, args)) for v in variants]
    for row in rows:
        if row.unavailable:
            progress(f"{row.variant.name}: unavailable ({row.unavailable})")
    log_dir = Path(tempfile.mkdtemp(prefix="e2e_broadcast_"))
    try:
        for number in range(1, args.runs + 1):
            for row in rows:
                if row.unavailable is not None:
                    continue
                fingerprint = library_fingerprint()
                run = run_once(row.variant, number, args, log_dir)
                run.fingerprint = fingerprint
                row.runs.append(run)
                row.log_lines += _last_log_lines.get((row.variant.name, number), [])
                progress(f"{row.variant.name:19} run {number}/{args.runs}: {describe_run(run)}")
    finally:
        if args.keep_logs or any(row.log_lines for row in rows):
            progress(f"server logs kept in {log_dir}")
        else:
            shutil.rmtree(log_dir, ignore_errors=True)
    with contextlib.suppress(OSError, AttributeError):
        machine.append(("Load average at end", ", ".join(f"{x:.2f}" for x in os.getloadavg())))
    command = _common.command_line(__file__, argv, env=("REDIS_URL", "NATS_URL"))
    text = report(rows, args, machine, command)
    print(text)
    if not args.no_write:
        section = SECTION_PACED if args.pace > 0 else SECTION
        _common.replace_section(section, text, path=args.results)
        progress(f"wrote the {section} section of {args.results.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
