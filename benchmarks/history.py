"""What a history room costs beside a plain room, and what a recovery of 200 messages costs.

One hub per layer (in-memory, Redis, NATS), in one process, with ``--members``
real HubConsumers (through HubCommunicator) in a plain room and in a history
room. For each layer, in the same run:

- ``broadcast_to_room``: ``--rounds`` rounds of ``--sends`` sends to each
  room in turn, awaited one after the other; the median time per send, and
  the ratio of the history room to the plain room. The history room's send appends to the
  layer's store before it publishes (one more broker round trip on Redis and
  NATS).
- recovery: a history room holding ``--replay`` messages; one client joins
  with the position before the first of them and receives all of them. The
  time from the join to the last replayed frame, over ``--repeats`` joins.

Brokers come from ``tests/rig`` (a Redis or NATS answering on the usual port,
else one started from the dev extra). Run from the repository root::

    python benchmarks/history.py              # about half a minute
    python benchmarks/history.py --layers memory --json out.json

It prints one table and, with ``--json``, writes the figures with the
commit, the command and the machine.
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
from pathlib import Path
from typing import Any

import _common

_common.import_this_tree()
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

import django  # noqa: E402

django.setup()

from channels.layers import channel_layers  # noqa: E402
from django.test import override_settings  # noqa: E402

from tests.rig.brokers import resolve_nats_url, resolve_redis_url  # noqa: E402
from wshub_channels import HubConsumer, Position, get_hub  # noqa: E402
from wshub_channels.hub.hub import Hub  # noqa: E402
from wshub_channels.layers import InMemoryHubLayer, NatsHubLayer, RedisHubLayer  # noqa: E402
from wshub_channels.testing import HubCommunicator  # noqa: E402

ALIAS = "wshub-bench-history"


class Member(HubConsumer):
    channel_layer_alias = ALIAS

    async def on_connect(self) -> None:
        for room in self.scope["query_string"].decode().split(","):
            if room:
                await self.join_room(room)


def make_layer(kind: str, prefix: str, urls: dict[str, str]) -> Any:
    if kind == "memory":
        return InMemoryHubLayer()
    if kind == "redis":
        return RedisHubLayer(hosts=[urls["redis"]], prefix=prefix)
    return NatsHubLayer(servers=[urls["nats"]], prefix=prefix)


async def timed_sends(hub: Hub, room: str, sends: int, comms: list[HubCommunicator]) -> float:
    """Seconds per send; each member's frames are drained after the sends."""
    started = time.perf_counter()
    for n in range(sends):
        await hub.broadcast_to_room(room, f"m{n}")
    elapsed = time.perf_counter() - started
    for comm in comms:
        for _ in range(sends):
            await comm.receive_from(timeout=10)
    return elapsed / sends


async def one_layer(kind: str, args: argparse.Namespace, urls: dict[str, str]) -> dict[str, Any]:
    prefix = f"bh{uuid.uuid4().hex[:8]}"
    layer = make_layer(kind, prefix, urls)
    previous = channel_layers.set(ALIAS, layer)
    history = {"hist.*": {"size": max(args.replay, args.sends) + 10, "ttl": 600}}
    try:
        with override_settings(WSHUB={"HISTORY": history, "CHANNEL_LAYER": ALIAS}):
            hub = get_hub(ALIAS)
            await hub.start()
            comms = []
            for _ in range(args.members):
                comm = HubCommunicator(Member.as_asgi(), "/ws/?plain.room,hist.room")
                connected, _ = await comm.connect(timeout=10)
                assert connected
                comms.append(comm)
            await timed_sends(hub, "plain.room", 20, comms)  # warm-up
            await timed_sends(hub, "hist.room", 20, comms)
            result: dict[str, Any] = {"layer": kind}
            samples: dict[str, list[float]] = {"plain.room": [], "hist.room": []}
            for _ in range(args.rounds):  # alternate, so both rooms see the same machine
                for room, seen in samples.items():
                    seen.append(await timed_sends(hub, room, args.sends, comms))
            for room, seen in samples.items():
                result[room.split(".")[0]] = {"seconds": statistics.median(seen), "rounds": seen}
            for comm in comms:
                await comm.disconnect(timeout=10)

            for n in range(args.replay):
                await hub.broadcast_to_room("hist.replay", f"r{n}")
            top = (await hub.history("hist.replay", limit=0)).position
            since = Position(top.offset - args.replay, top.epoch)
            times = []
            for _ in range(args.repeats):
                comm = HubCommunicator(Member.as_asgi(), "/ws/?")
                connected, _ = await comm.connect(timeout=10)
                assert connected
                client = comm.client
                assert client is not None
                started = time.perf_counter()
                recovery = await client.join_room("hist.replay", since=since)
                for _ in range(args.replay):
                    await comm.receive_from(timeout=10)
                times.append(time.perf_counter() - started)
                assert recovery.recovered and recovery.replayed == args.replay
                await comm.disconnect(timeout=10)
            result["recovery_seconds"] = statistics.median(times)
            await layer.flush()
            return result
    finally:
        await layer.close()
        if previous is None:
            channel_layers.backends.pop(ALIAS, None)
        else:
            channel_layers.set(ALIAS, previous)


def table(results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    us = _common.MICRO + "s"
    rows = []
    for r in results:
        plain, hist = r["plain"]["seconds"], r["hist"]["seconds"]
        rows.append(
            [
                r["layer"],
                f"{plain * 1e6:.0f} {us}",
                f"{hist * 1e6:.0f} {us}",
                f"{hist / plain:.2f}{_common.TIMES}",
                f"{r['recovery_seconds'] * 1e3:.1f} ms",
            ]
        )
    headers = [
        "layer",
        f"plain room, per send ({args.members} members)",
        "history room, per send",
        "history / plain",
        f"recovery of {args.replay} messages",
    ]
    return _common.markdown_table(headers, rows, "lrrrr")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", default="memory,redis,nats")
    parser.add_argument("--members", type=int, default=100)
    parser.add_argument("--sends", type=int, default=200)
    parser.add_argument("--replay", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds per room")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    return parser.parse_args()


async def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    kinds = [k for k in args.layers.split(",") if k]
    urls: dict[str, str] = {}
    handles = []
    if "redis" in kinds:
        urls["redis"], handle = resolve_redis_url()
        handles.append(handle)
    if "nats" in kinds:
        urls["nats"], handle = resolve_nats_url()
        handles.append(handle)
    try:
        results = [await one_layer(kind, args, urls) for kind in kinds]
    finally:
        for handle in handles:
            if handle is not None:
                handle.stop()
    return results


def report(results: list[dict[str, Any]], args: argparse.Namespace) -> None:
    print(table(results, args))
    if args.json:
        record = {
            "when": _common.utc_now(),
            "commit": _common.library_version(),
            "command": _common.command_line(__file__, sys.argv[1:]),
            "machine": f"{_common.cpu_model()}, {_common.cpu_count()}, {_common.total_ram()}",
            "results": results,
        }
        Path(args.json).write_text(json.dumps(record, indent=2), encoding="utf-8")


if __name__ == "__main__":
    arguments = parse_args()
    report(asyncio.run(run(arguments)), arguments)
