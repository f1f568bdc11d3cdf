"""Presence: what heartbeats weigh, what a global count costs, and room presence events.

Three parts, in one process and one event loop, with no broker:

1. **Heartbeat sizes.** One node's beat at 10, 1,000 and 100,000 rooms, as
   :class:`~wshub_channels.core.presence.BeatPlanner` plans it and as it goes on the
   bus (every message a presence envelope, ``encode_envelope`` around
   ``encode_presence``): a full table (bytes, messages, the largest message), a
   delta after 1% of the rooms changed, and an idle beat (nothing changed). Also
   the CPU to plan and encode a full beat, and to decode and apply it on a
   receiving node's :class:`~wshub_channels.core.presence.PresenceTable`.
2. **Global counts.** A serving :class:`~wshub_channels.hub.Hub` on an
   ``InMemoryHubLayer`` whose presence table holds 5, 50, 100 and 500 simulated
   nodes (fed as heartbeat payloads through ``hub.heartbeat.receive``), each with
   ``--rooms-per-node`` rooms, made trusted (listening for longer than one
   interval, newest beat fresh). Times ``await hub.global_client_count()`` and
   ``await hub.global_room_count(room)``, and, to show where the time goes, the
   table's own ``client_count()`` and ``room_count(room)``, and the trust check
   ``hub.cluster.table_trusted()`` with its two passes (``newest()``, ``rooms_known``).
   Every answer is checked against the sum fed in, and a scatter-gather made
   while timing stops the run, so one can never be timed by mistake.
3. **Room presence events.** Two hubs on one shared in-memory bus (two nodes),
   real ``HubConsumer`` connections through ``HubCommunicator``: one client joins
   and leaves a room over and over while ``--watchers`` members of the room sit
   on each node. Per join+leave pair, with the consumer's ``room_presence(room)``
   False (no events) and True (every watcher's ``on_room_presence`` runs twice per
   pair), until every event has been delivered. Also the bytes of one room event
   envelope.

Run from the repository root::

    python benchmarks/presence.py                 # the full run, about a minute
    python benchmarks/presence.py --quick --no-write

Results are printed and written to the ``presence`` section of
``benchmarks/RESULTS.md`` (``--no-write`` to skip; ``--json PATH`` also writes
the figures as JSON).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import random
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import _common
import layer_fanout as lf

SECTION = "presence"
NODE_COUNTS = (5, 50, 100, 500)
ROOM_COUNTS = (10, 1_000, 100_000)
#: The share of rooms whose member count changes between two beats, for the delta.
CHANGED = 0.01
#: A beat's head as a real node sends it (a pod-like host name, a 5-digit pid).
HEAD = {"node_id": "k3x9q2w7m1zt", "host": "web-7f9c4d-x2k8p", "pid": 48213}
#: The room every simulated node holds, and that global_room_count asks for.
HOT_ROOM = "lobby"
#: The Go library's README figures (nodes: ns), "Measured on an Intel i5-11400H @ 2.70GHz
#: (12 cores), Go 1.26, Linux". Quoted as its own figures, on its machine.
GO_CLIENT_NS = {5: 63, 50: 397, 100: 715, 500: 4_200}
GO_ROOM_NS = {5: 118, 50: 823, 100: 1_700, 500: 9_700}
GO_MACHINE = "Intel i5-11400H @ 2.70GHz, 12 cores, Go 1.26, Linux"
MU = _common.MICRO


def room_name(i: int) -> str:
    """The rooms of the benchmark: 11-byte names, ``room-000042``."""
    return f"room-{i:06d}"


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# ----------------------------------------------------------------- 1. heartbeat sizes


def beat_messages(
    planner: Any, rooms: dict[str, int], clients: int, users: int
) -> list[dict[str, Any]]:
    head = {**HEAD, "clients": clients, "users": users}
    return planner.plan(head, rooms.keys, rooms.__getitem__)  # type: ignore[no-any-return]


def wire(messages: Sequence[dict[str, Any]]) -> list[bytes]:
    """Each message as the bus carries it: a presence envelope."""
    from wshub_channels.core.wire import Kind, encode_envelope, encode_presence

    return [
        encode_envelope(
            Kind.PRESENCE, HEAD["node_id"], "beat", encode_presence("beat", m), HEAD["pid"]
        )
        for m in messages
    ]


def heartbeat_sizes(room_counts: Sequence[int], runs: int) -> list[dict[str, Any]]:
    from wshub_channels.core.presence import BeatPlanner, PresenceTable
    from wshub_channels.core.wire import decode_envelope, decode_presence

    rng = random.Random(12)
    out = []
    for count in room_counts:
        rooms = {room_name(i): rng.randint(1, 40) for i in range(count)}
        clients = max(1, sum(rooms.values()) // 3)
        users = clients * 4 // 5
        planner = BeatPlanner()
        full = wire(beat_messages(planner, rooms, clients, users))
        changed = rng.sample(sorted(rooms), max(1, round(count * CHANGED)))
        for room in changed:
            rooms[room] += 1
            planner.touch(room)
        delta = wire(beat_messages(planner, rooms, clients, users))
        idle = wire(beat_messages(planner, rooms, clients, users))
        assert planner.full_every > 3, "the three beats above must be full, delta, delta"

        # The CPU of one full beat, step by step as the heartbeat runs it: the sender
        # picks and cuts the room names in one step of its loop, then reads the counts,
        # encodes and publishes part by part; the receiver takes message by message.
        head = {**HEAD, "clients": clients, "users": users}
        plan_s, encode_s, apply_s, longest_s = [], [], [], []
        for _ in range(runs):
            sender = BeatPlanner()
            gc.collect()
            started = time.perf_counter()
            beat = sender.next_beat(rooms.keys)  # type: ignore[arg-type]
            sender_steps = [time.perf_counter() - started]
            payloads = []
            for part in range(beat.parts):
                started = time.perf_counter()
                payloads.extend(wire([beat.message(head, part, rooms.__getitem__)]))
                sender_steps.append(time.perf_counter() - started)
            plan_s.append(sum(sender_steps))
            encode_s.append(max(sender_steps))
            table = PresenceTable()
            gc.collect()
            steps = []
            for data in payloads:
                started = time.perf_counter()
                _, info = decode_presence(decode_envelope(data).payload)
                table.beat(info, 0.0)
                steps.append(time.perf_counter() - started)
            apply_s.append(sum(steps))
            longest_s.append(max(steps))
            assert table.nodes()[0].room_count == count and table.rooms_known
        row = {
            "rooms": count,
            "full_bytes": sum(map(len, full)),
            "full_messages": len(full),
            "full_largest": max(map(len, full)),
            "changed_rooms": len(changed),
            "delta_bytes": sum(map(len, delta)),
            "delta_messages": len(delta),
            "idle_bytes": sum(map(len, idle)),
            "plan_ms": statistics.median(plan_s) * 1e3,
            "encode_ms": statistics.median(encode_s) * 1e3,
            "apply_ms": statistics.median(apply_s) * 1e3,
            "apply_longest_ms": statistics.median(longest_s) * 1e3,
        }
        out.append(row)
        progress(
            f"heartbeat {count:>7,} rooms: full {row['full_bytes']:,} B in "
            f"{row['full_messages']} message(s), delta {row['delta_bytes']:,} B, "
            f"idle {row['idle_bytes']:,} B; full beat: sender {row['plan_ms']:.2f} ms "
            f"(longest step {row['encode_ms']:.2f} ms), apply {row['apply_ms']:.2f} ms "
            f"(longest message {row['apply_longest_ms']:.2f} ms)"
        )
    return out


# ------------------------------------------------------------------ 2. global counts


async def time_calls(call: Callable[[], Any], is_async: bool, target_s: float, runs: int) -> float:
    """Median over ``runs`` of the seconds per call, each run about ``target_s`` long."""

    async def run(n: int) -> float:
        gc.collect()
        if is_async:
            started = time.perf_counter()
            for _ in range(n):
                await call()
        else:
            started = time.perf_counter()
            for _ in range(n):
                call()
        return time.perf_counter() - started

    n = 10
    while (spent := await run(n)) < target_s / 10:
        n *= 10
    n = max(10, int(n * target_s / spent))
    return statistics.median([await run(n) / n for _ in range(runs)])


async def global_counts(
    node_counts: Sequence[int], rooms_per_node: int, target_s: float, runs: int
) -> list[dict[str, Any]]:
    rng = random.Random(7)
    out = []
    for nodes in node_counts:
        row = await one_table(nodes, rooms_per_node, target_s, runs, rng)
        out.append(row)
        progress(
            f"{nodes:>3} nodes: global_client_count {row['global_client_count'] * 1e6:.2f} "
            f"{MU}s, global_room_count {row['global_room_count'] * 1e6:.2f} {MU}s, "
            f"table.client_count {row['table_client_count'] * 1e6:.2f} {MU}s, "
            f"table.room_count {row['table_room_count'] * 1e6:.2f} {MU}s, "
            f"table_trusted() {row['table_trusted'] * 1e6:.2f} {MU}s, "
            f"(rooms=True) {row['table_trusted_rooms'] * 1e6:.2f} {MU}s, "
            f"newest {row['table_newest'] * 1e6:.2f} {MU}s, "
            f"rooms_known {row['table_rooms_known'] * 1e6:.2f} {MU}s"
        )
    return out


async def one_table(
    nodes: int, rooms_per_node: int, target_s: float, runs: int, rng: random.Random
) -> dict[str, Any]:
    """Time the counts of one hub whose presence table holds ``nodes`` simulated nodes."""
    from wshub_channels.conf import parse_settings
    from wshub_channels.core.wire import encode_presence
    from wshub_channels.hub.hub import Hub
    from wshub_channels.layers import InMemoryHubLayer

    interval = 60.0
    layer = InMemoryHubLayer(bus=f"bench-presence-{uuid.uuid4().hex[:8]}")
    hub = Hub(layer, parse_settings({"PRESENCE_INTERVAL": interval}))
    await hub.start()
    assert hub.mode == "server" and layer.shared
    loop = asyncio.get_running_loop()
    hub.heartbeat.listening_since = loop.time() - 2 * interval
    clients = room_total = 0
    for k in range(nodes):
        # Each node holds the hot room and rooms_per_node - 1 others drawn from a pool
        # ten times as large, so nodes share some rooms and not others.
        pool = rng.sample(range(10 * rooms_per_node), rooms_per_node - 1)
        rooms = {HOT_ROOM: rng.randint(1, 50)}
        rooms.update((room_name(i), rng.randint(1, 20)) for i in pool)
        node_clients = rng.randint(1_000, 5_000)
        msg = {"node_id": f"sim{k:09d}", "host": f"web-{k}", "pid": 1_000 + k}
        msg.update(clients=node_clients, users=node_clients * 4 // 5)
        msg.update(seq=1, base=None, part=0, parts=1, rooms=rooms)
        hub.heartbeat.receive(encode_presence("beat", msg))
        clients += node_clients
        room_total += rooms[HOT_ROOM]
    for _ in range(3):
        await asyncio.sleep(0)  # the answers to the newcomers go out

    gathers = [0]  # scatter-gathers made: must stay 0
    gather_call = layer.gather_call

    async def counted(*args: Any, **kwargs: Any) -> Any:
        gathers[0] += 1
        return await gather_call(*args, **kwargs)

    layer.gather_call = counted  # type: ignore[method-assign]
    table = hub.presence
    if len(table) != nodes or not table.rooms_known or not hub.cluster.table_trusted(rooms=True):
        raise RuntimeError(f"the table of {nodes} nodes is not trusted")
    if await hub.global_client_count() != clients:
        raise RuntimeError("global_client_count did not answer from the table")
    if await hub.global_room_count(HOT_ROOM) != room_total:
        raise RuntimeError("global_room_count did not answer from the table")
    if table.client_count() != clients or table.room_count(HOT_ROOM) != room_total:
        raise RuntimeError("the table's sums are wrong")

    row: dict[str, Any] = {"nodes": nodes}
    calls: dict[str, tuple[Callable[[], Any], bool]] = {
        "global_client_count": (hub.global_client_count, True),
        "global_room_count": (lambda: hub.global_room_count(HOT_ROOM), True),
        "table_client_count": (table.client_count, False),
        "table_room_count": (lambda: table.room_count(HOT_ROOM), False),
        "table_trusted": (hub.cluster.table_trusted, False),
        "table_trusted_rooms": (lambda: hub.cluster.table_trusted(rooms=True), False),
        "table_newest": (table.newest, False),
        "table_rooms_known": (lambda: table.rooms_known, False),
    }
    for name, (call, is_async) in calls.items():
        row[name] = await time_calls(call, is_async, target_s, runs)
    if gathers[0] or not hub.cluster.table_trusted(rooms=True):
        raise RuntimeError("a count asked the nodes instead of reading the table")
    await hub.shutdown()
    return row


# -------------------------------------------------------------- 3. room presence events

OPTED_IN = False  # what every benchmark consumer's room_presence answers


class Tally:
    """Counts ``on_room_presence`` calls; ``reached`` is set once ``expected`` are in."""

    def __init__(self) -> None:
        self.count = 0
        self.expected = 0
        self.reached = asyncio.Event()

    def reset(self, expected: int) -> None:
        self.count, self.expected = 0, expected
        self.reached = asyncio.Event()
        if expected == 0:
            self.reached.set()

    def hit(self) -> None:
        self.count += 1
        if self.count >= self.expected:
            self.reached.set()


EVENTS = Tally()
ROOM = "room-000042"
ALIASES = ("node-a", "node-b")


def configure_django(bus: str, interval: float) -> None:
    from django.conf import settings

    layers = {
        alias: {"BACKEND": "wshub_channels.layers.InMemoryHubLayer", "CONFIG": {"bus": bus}}
        for alias in ALIASES
    }
    settings.configure(
        USE_TZ=True,
        INSTALLED_APPS=["channels", "wshub_channels"],
        CHANNEL_LAYERS=layers,
        WSHUB={"CHANNEL_LAYER": ALIASES[0], "PRESENCE_INTERVAL": interval},
    )
    import django

    django.setup()


def consumer_classes() -> dict[str, Any]:
    from wshub_channels import HubConsumer

    class Member(HubConsumer):  # type: ignore[misc]
        def room_presence(self, room: str) -> bool:
            return OPTED_IN

        async def on_room_presence(self, event: Any) -> None:
            EVENTS.hit()

    return {
        alias: type(f"Member_{alias.replace('-', '_')}", (Member,), {"channel_layer_alias": alias})
        for alias in ALIASES
    }


async def room_events(watchers: int, pairs: int, runs: int) -> dict[str, Any]:
    global OPTED_IN
    from wshub_channels.core.listing import RoomEvent
    from wshub_channels.core.wire import Kind, encode_envelope, pack_value
    from wshub_channels.hub.hub import get_hub
    from wshub_channels.testing import HubCommunicator

    classes = consumer_classes()
    communicators = []

    async def connect(alias: str) -> Any:
        comm = HubCommunicator(classes[alias].as_asgi(), "/ws/", alias=alias)
        connected, _ = await comm.connect()
        if not connected:
            raise RuntimeError(f"a client could not connect to {alias}")
        communicators.append(comm)
        return comm.client

    mover = await connect(ALIASES[0])
    await mover.set_user_id("user-000123")
    members = {alias: [await connect(alias) for _ in range(watchers)] for alias in ALIASES}
    hubs = [get_hub(alias) for alias in ALIASES]
    if hubs[0] is hubs[1] or hubs[0].node_id == hubs[1].node_id:
        raise RuntimeError("the two aliases must be two nodes")

    async def timed(opted_in: bool, with_watchers: bool) -> tuple[float, float]:
        """Seconds and CPU seconds per join+leave pair, events delivered included."""
        global OPTED_IN
        OPTED_IN = opted_in
        expected = 2 * pairs * (2 * watchers if with_watchers and opted_in else 0)
        EVENTS.reset(expected)
        gc.collect()
        cpu = time.process_time()
        started = time.perf_counter()
        for _ in range(pairs):
            await mover.join_room(ROOM)
            await mover.leave_room(ROOM)
        await asyncio.wait_for(EVENTS.reached.wait(), 60)
        for _ in range(5):
            await asyncio.sleep(0)  # nothing more should come
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu
        if EVENTS.count != expected:
            raise RuntimeError(f"{EVENTS.count} room events delivered, {expected} expected")
        return elapsed / pairs, cpu / pairs

    async def set_watchers(present: bool) -> None:
        for clients in members.values():
            for client in clients:
                if present and not client.in_room(ROOM):
                    await client.join_room(ROOM)
                elif not present and client.in_room(ROOM):
                    await client.leave_room(ROOM)
        for _ in range(3):
            await asyncio.sleep(0)

    variants = [(False, False), (True, False), (False, True), (True, True)]
    times: dict[tuple[bool, bool], list[tuple[float, float]]] = {v: [] for v in variants}
    for _ in range(runs):  # round robin, so drift spreads over every variant alike
        for opted_in, with_watchers in variants:
            await set_watchers(with_watchers)
            times[(opted_in, with_watchers)].append(await timed(opted_in, with_watchers))
    OPTED_IN = False
    results = []
    for opted_in, with_watchers in variants:
        wall = statistics.median(t for t, _ in times[(opted_in, with_watchers)])
        cpu = statistics.median(c for _, c in times[(opted_in, with_watchers)])
        events = 2 * (2 * watchers if with_watchers and opted_in else 0)
        results.append(
            {
                "room_presence": opted_in,
                "watchers": 2 * watchers if with_watchers else 0,
                "pair_s": wall,
                "pair_cpu_s": cpu,
                "events_per_pair": events,
            }
        )
        progress(
            f"room events: room_presence {opted_in!s:5}, "
            f"{2 * watchers if with_watchers else 0} watchers: {wall * 1e6:.1f} {MU}s per "
            f"join+leave pair ({cpu * 1e6:.1f} {MU}s CPU), {events} events per pair"
        )

    news = RoomEvent(ROOM, "joined", mover.id, mover.user_id, hubs[0].node_id)
    envelope = encode_envelope(
        Kind.ROOM_EVENT, hubs[0].node_id, ROOM, pack_value(news.to_wire()), 48213
    )
    anonymous = RoomEvent(ROOM, "left", mover.id, None, hubs[0].node_id)
    envelope_anon = encode_envelope(
        Kind.ROOM_EVENT, hubs[0].node_id, ROOM, pack_value(anonymous.to_wire()), 48213
    )
    for comm in communicators:
        await comm.disconnect()
    for hub in hubs:
        await hub.shutdown()
    return {
        "watchers_per_node": watchers,
        "pairs": pairs,
        "variants": results,
        "envelope_bytes": len(envelope),
        "envelope_bytes_no_user": len(envelope_anon),
        "client_id_bytes": len(mover.id),
    }


# --------------------------------------------------------------------------- the report


def us(seconds: float) -> str:
    return f"{seconds * 1e6:,.2f}"


def go_text(ns: int) -> str:
    return f"{ns / 1000:,.1f} {MU}s" if ns >= 1000 else f"{ns} ns"


def heartbeat_table(rows: Sequence[dict[str, Any]]) -> str:
    headers = [
        "rooms",
        "full table: bytes",
        "messages",
        "largest message (bytes)",
        f"delta, {CHANGED:.0%} of rooms changed: bytes",
        "messages",
        "idle beat: bytes",
        "full beat, sender: total / longest step (ms)",
        "full beat, receiver: decode + apply (ms)",
        "receiver's longest message (ms)",
    ]
    body = [
        [
            f"{r['rooms']:,}",
            f"{r['full_bytes']:,}",
            f"{r['full_messages']:,}",
            f"{r['full_largest']:,}",
            f"{r['delta_bytes']:,} ({r['changed_rooms']:,} room{'s' * (r['changed_rooms'] != 1)})",
            f"{r['delta_messages']:,}",
            f"{r['idle_bytes']:,}",
            f"{r['plan_ms']:,.2f} / {r['encode_ms']:,.2f}",
            f"{r['apply_ms']:,.2f}",
            f"{r['apply_longest_ms']:,.2f}",
        ]
        for r in rows
    ]
    return _common.markdown_table(headers, body, "rrrrrrrrrr")


def counts_table(rows: Sequence[dict[str, Any]]) -> str:
    headers = [
        "nodes in the table",
        f"`await hub.global_client_count()` ({MU}s)",
        f"`await hub.global_room_count(room)` ({MU}s)",
        "Go library: GlobalClientCount / GlobalRoomCount (its README, its machine)",
    ]
    body = [
        [
            f"{r['nodes']:,}",
            us(r["global_client_count"]),
            us(r["global_room_count"]),
            f"{go_text(GO_CLIENT_NS[r['nodes']])} / {go_text(GO_ROOM_NS[r['nodes']])}"
            if r["nodes"] in GO_CLIENT_NS
            else _common.DASH,
        ]
        for r in rows
    ]
    return _common.markdown_table(headers, body, "rrrr")


def parts_table(rows: Sequence[dict[str, Any]]) -> str:
    headers = [
        "nodes in the table",
        "`table.client_count()`",
        "`table.room_count(room)`",
        "`hub.cluster.table_trusted()`",
        "`hub.cluster.table_trusted(rooms=True)`",
        "`table.newest()`",
        "`table.rooms_known`",
    ]
    keys = [
        "table_client_count",
        "table_room_count",
        "table_trusted",
        "table_trusted_rooms",
        "table_newest",
        "table_rooms_known",
    ]
    body = [[f"{r['nodes']:,}", *(us(r[key]) for key in keys)] for r in rows]
    return _common.markdown_table(headers, body, "rrrrrrr")


def events_table(data: dict[str, Any]) -> str:
    rows = data["variants"]
    base = {r["watchers"]: r for r in rows if not r["room_presence"]}
    headers = [
        "`room_presence(room)`",
        "other members of the room (both nodes)",
        "`on_room_presence` calls per pair",
        f"{MU}s per join+leave pair",
        f"CPU {MU}s per pair",
        f"added by room presence (CPU {MU}s per pair)",
        f"added per `on_room_presence` call (CPU {MU}s)",
    ]
    body = []
    for r in rows:
        added = per_call = _common.DASH
        if r["room_presence"]:
            extra = r["pair_cpu_s"] - base[r["watchers"]]["pair_cpu_s"]
            added = f"{extra * 1e6:+,.1f}"
            if r["events_per_pair"]:
                per_call = f"{extra / r['events_per_pair'] * 1e6:,.1f}"
        body.append(
            [
                "True" if r["room_presence"] else "False",
                f"{r['watchers']}",
                f"{r['events_per_pair']}",
                f"{r['pair_s'] * 1e6:,.1f}",
                f"{r['pair_cpu_s'] * 1e6:,.1f}",
                added,
                per_call,
            ]
        )
    return _common.markdown_table(headers, body, "lrrrrrr")


def cycle_text(rows: Sequence[dict[str, Any]]) -> str:
    """The average beat over one cycle of ``FULL_EVERY`` beats: one full, the rest deltas."""
    from wshub_channels.core.presence import FULL_EVERY

    averages = "; ".join(
        f"{(r['full_bytes'] + (FULL_EVERY - 1) * r['delta_bytes']) / FULL_EVERY:,.0f} bytes "
        f"at {r['rooms']:,} rooms"
        for r in rows
    )
    return (
        f"Averaged over a cycle of {FULL_EVERY} beats (one full table, then deltas with "
        f"{CHANGED:.0%} of the rooms changed before each), a node sends per beat: {averages}. "
        "The sender columns use a dict lookup for each room's count; a real node reads its "
        "registry there, which adds that lookup's cost."
    )


def where_time_goes(rows: Sequence[dict[str, Any]]) -> str:
    """Two sentences on the parts, at the smallest and the largest table."""
    small, large = min(rows, key=lambda r: r["nodes"]), max(rows, key=lambda r: r["nodes"])
    return (
        f"The parts are timed apart, so they add up only roughly to a whole call. At "
        f"{large['nodes']:,} nodes the trust check ({us(large['table_trusted'])} {MU}s: "
        f"`newest()` {us(large['table_newest'])} and `rooms_known` "
        f"{us(large['table_rooms_known'])}) costs about as much as the sum itself "
        f"({us(large['table_client_count'])} {MU}s for the clients, "
        f"{us(large['table_room_count'])} {MU}s for a room). At {small['nodes']:,} nodes a "
        f"call ({us(small['global_client_count'])} {MU}s) is mostly what does not grow "
        "with the nodes: the `on_home_loop` wrapper, `start()`, the clock and the local "
        "registry."
    )


def report(
    results: dict[str, Any], machine: Sequence[tuple[str, str]], command: str, args: Any
) -> str:
    beats = results["heartbeat"]
    counts = results["global_counts"]
    events = results["room_events"]
    at500 = next((r for r in counts if r["nodes"] == 500), None)
    summary = []
    if at500 is not None:
        summary = [
            f"At 500 nodes `await hub.global_client_count()` took "
            f"**{us(at500['global_client_count'])} {MU}s** and `global_room_count` "
            f"**{us(at500['global_room_count'])} {MU}s** on this machine. The Go library's "
            f"README gives **4.2 {MU}s** for its `GlobalClientCount` at 500 nodes (and 9.7 "
            f"{MU}s for `GlobalRoomCount`), its own figures on its own machine ({GO_MACHINE}): "
            "quoted as published, not rerun here, and its benchmark's room spread is not "
            "stated. The two are different languages on different machines; the column "
            "is there for scale, not as a like-for-like ratio.",
            "",
        ]
    parts = [
        "## presence: heartbeat sizes, global counts, room presence events",
        "",
        f"Date: {_common.utc_now()}",
        "",
        f"Command (from the repository root): `{command}`",
        "",
        "One process, one event loop, no broker (the in-memory bus). Timings are medians "
        f"of {args.runs} runs.",
        "",
        "Machine:",
        "",
        _common.render_description(machine),
        "",
        "### Heartbeat size",
        "",
        "One node's beat as it goes on the bus: every message is a presence envelope "
        "(`encode_envelope` around `encode_presence`); bytes are the envelopes' total, "
        "without the transport's subject. Rooms are named `room-000000` and up (11 bytes) "
        "with 1 to 40 members each; the head is a 12-character node id, a 16-character "
        "host name and a 5-digit pid. A node sends its full table on its first beat, every "
        "10th beat and when another node asks for it; the beats in between carry only the "
        f"rooms that changed. The delta is the beat after {CHANGED:.0%} of the rooms "
        "changed (at least one room); the idle beat is one after nothing changed. On the "
        "sender, total is picking and cutting the room names (`BeatPlanner.next_beat`, one "
        "step of the loop) plus, part by part, reading the counts (`Beat.message`) and "
        "encoding the envelope (one step each, between publishes), and the longest step is "
        "the longest of those; on a receiver, decode + "
        "apply is decoding each envelope and `PresenceTable.beat` for every message of "
        "the beat, and the longest message is the one step of its loop that took longest "
        "(the last part of a beat, which assembles the table).",
        "",
        heartbeat_table(beats),
        "",
        cycle_text(beats),
        "",
        "### Global counts from the presence table",
        "",
        f"A serving hub on `InMemoryHubLayer` whose presence table holds N simulated "
        f"nodes, each fed as one heartbeat payload through `hub.heartbeat.receive`: "
        f"{args.rooms_per_node:,} rooms per node (the room `{HOT_ROOM}`, which is asked "
        f"for, on every node; the others drawn from a pool of "
        f"{10 * args.rooms_per_node:,}), 1,000 to 5,000 clients per node. The table is "
        "trusted (listening for longer than one interval, newest beat fresh), so both "
        "calls answer from it without bus traffic: every answer was checked against the "
        "sums fed in, and no scatter-gather was made. The calls are awaited on the hub's "
        f"own loop, back to back; {MU}s per call, each run about {args.target:g} s.",
        "",
        counts_table(counts),
        "",
        *summary,
        f"The parts of those calls, {MU}s per call: the table's sums alone, and the trust "
        "check (`global_client_count` calls `table_trusted()`, `global_room_count` "
        "`table_trusted(rooms=True)`) with the two passes over the nodes it makes.",
        "",
        parts_table(counts),
        "",
        where_time_goes(counts),
        "",
        "### Room presence events",
        "",
        "Two hubs on one shared `InMemoryHubLayer` bus (two nodes in one process), real "
        "`HubConsumer` connections through `HubCommunicator`. One client (with a user id) "
        f"on node A joins and leaves `{ROOM}` {events['pairs']:,} times per run, while "
        f"the room has either no other member or {events['watchers_per_node']} on each "
        "node. With `room_presence(room)` True for every consumer, each join and each "
        "leave is published once on the room's subject; node A's members are told "
        "directly and node B's through the one envelope it receives, and the time runs "
        "until every `on_room_presence` call (it bumps a counter) has been made. With "
        "False, nothing is published. Both nodes run in this process, so the CPU column "
        "is the whole cluster's; the added cost is taken from it, which other work on the "
        "machine disturbs less than the elapsed time. With no other member, the room is "
        "created and emptied on every pair (node A subscribes to its subject and lets it "
        "go), which is why that row costs more than the one with members. The in-memory "
        "bus costs next to nothing; over a broker an announced join or leave also waits "
        "for its publish (for Redis, a round trip), which this run does not show.",
        "",
        events_table(events),
        "",
        f"One room event envelope (`{ROOM}`, a {events['client_id_bytes']}-character "
        f"client id, the user id `user-000123`): **{events['envelope_bytes']} bytes** "
        f"({events['envelope_bytes_no_user']} without a user id). It is published once per "
        "join or leave, and the bus hands it to every other node with members in the room; "
        "rooms in which no client opted in send nothing.",
    ]
    return "\n".join(parts) + "\n"


# --------------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Heartbeat sizes, global counts and room presence events."
    )
    parser.add_argument(
        "--quick", action="store_true", help="fewer and shorter runs (a smoke test, not figures)"
    )
    parser.add_argument("--runs", type=int, default=None, help="runs per figure (default 5)")
    parser.add_argument(
        "--target",
        type=float,
        default=None,
        help="seconds per timing run of the counts (default 0.2)",
    )
    parser.add_argument("--rooms-per-node", type=int, default=1_000, help="(default 1,000)")
    parser.add_argument("--watchers", type=int, default=3, help="watchers per node (default 3)")
    parser.add_argument(
        "--pairs", type=int, default=None, help="join+leave pairs per run (default 2,000)"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--results", type=Path, default=_common.RESULTS_FILE, help="results file")
    parser.add_argument(
        "--no-write", action="store_true", help="print only; leave the results file alone"
    )
    args = parser.parse_args(argv)
    args.runs = args.runs or (3 if args.quick else 5)
    args.target = args.target or (0.05 if args.quick else 0.2)
    args.pairs = args.pairs or (300 if args.quick else 2_000)
    if min(args.runs, args.rooms_per_node, args.pairs) < 1 or args.watchers < 0:
        parser.error("--runs, --rooms-per-node and --pairs need positive numbers")
    return args


async def benchmark(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    brokers = lf.Brokers(lf.DEFAULT_REDIS_URL, lf.DEFAULT_NATS_URL)
    extra = {"msgpack": _common.package_version("msgpack")}
    with contextlib.suppress(OSError, AttributeError):
        extra["Load average at start"] = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    machine = await lf.describe_machine([], brokers, extra)
    results: dict[str, Any] = {}
    started = time.perf_counter()
    results["heartbeat"] = heartbeat_sizes(ROOM_COUNTS, args.runs)
    results["global_counts"] = await global_counts(
        NODE_COUNTS, args.rooms_per_node, args.target, args.runs
    )
    results["room_events"] = await room_events(args.watchers, args.pairs, args.runs)
    progress(f"done in {time.perf_counter() - started:.0f} s")
    with contextlib.suppress(OSError, AttributeError):
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        machine.append(("Load average at end", load))
    command = _common.command_line(__file__)
    results["meta"] = {"date": _common.utc_now(), "command": command, "machine": dict(machine)}
    return report(results, machine, command, args), results


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    _common.import_this_tree()
    configure_django(f"bench-presence-{uuid.uuid4().hex[:8]}", 60.0)
    text, results = asyncio.run(benchmark(args))
    print(text)
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        progress(f"wrote {args.json}")
    if not args.no_write:
        _common.replace_section(SECTION, text, path=args.results)
        progress(f"wrote the {SECTION} section of {args.results.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
