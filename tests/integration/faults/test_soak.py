"""A soak: many connections on one node joining and leaving rooms, sending, reconnecting.

One uvicorn node on Redis (a daphne node beside it holds a twentieth as many actors,
so that the presence table has a peer's rooms to track). ``CONNECTIONS`` actors (the
``slow`` tier: 1,000 for 60 s;
``./dev soak``: ``WSHUB_SOAK_CONNECTIONS``, default 10,000, for ``WSHUB_SOAK_SECONDS``,
default 600) each hold exactly two of ``ROOMS`` rooms. Every ~2 s an actor moves to
another room (leave one, join one), or broadcasts to one of its rooms (one action in
ten); 10% of the actors reconnect each minute (closing, then opening and joining two
rooms). At the end of the warm-up (a fifth of the run) and at the end the
workload pauses until every actor is idle and connected, and the node's RSS, registry,
interest tables, presence tables, request map and asyncio task count are read: none
may grow by 5% or more (plus a small absolute slack for counts near zero). The layer's
drop counters and the hub's dropped-message count stay at zero.

The test app records every hub signal in a list (``tests/apps/policies.py``); the soak's
servers run with ``WSHUB_TEST_RECORD_SIGNALS=0``, or that list alone grows the process by
about 0.2 MiB a second.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
import uuid

import pytest

from tests.integration.buses import Bus, node_env
from tests.integration.faults.kit import APP, drop_counters, figure
from tests.integration.faults.test_slow_clients import rss
from tests.integration.peer import Peer
from tests.rig.servers import StartAsgiServer

ROOMS = 50
ACTION_EVERY = 2.0  # seconds between an actor's actions, on average
RECONNECT_PER_MINUTE = 0.10


class Actor:
    def __init__(self, url: str, rng: random.Random) -> None:
        self.url = url
        self.rng = rng
        self.rooms: list[str] = []
        self.peer: Peer | None = None
        self.reconnects = 0
        self.actions = 0

    async def connect(self) -> None:
        self.rooms = [f"soak{n}" for n in self.rng.sample(range(ROOMS), 2)]
        # Joined after the hello: a busy room's traffic could otherwise arrive before it.
        self.peer = await Peer.open(self.url, compression=None)
        for room in self.rooms:
            await self.peer.call("join_room", room=room)

    async def step(self) -> None:
        assert self.peer is not None
        roll = self.rng.random()
        if roll < RECONNECT_PER_MINUTE * ACTION_EVERY / 60:
            await self.peer.close()
            await self.connect()
            self.reconnects += 1
        elif roll < 0.1:
            await self.peer.call("broadcast_to_room", room=self.rooms[0], text="soak")
        else:
            old = self.rooms.pop(self.rng.randrange(2))
            taken = {old, *self.rooms}
            new = self.rng.choice([r for r in (f"soak{n}" for n in range(ROOMS)) if r not in taken])
            await self.peer.call("leave_room", room=old)
            await self.peer.call("join_room", room=new)
            self.rooms.append(new)
        self.peer.inbox.clear()  # deliveries are not under test here
        self.actions += 1


async def run_soak(asgi_server: StartAsgiServer, redis_url: str, n: int, seconds: float) -> None:
    env = node_env(Bus("redis", "redis", (redis_url,)), f"sk{uuid.uuid4().hex[:8]}")
    settings = json.loads(env["WSHUB_TEST_SETTINGS"])
    settings["METRICS"] = "wshub_channels.metrics.DebugMetrics"
    env["WSHUB_TEST_SETTINGS"] = json.dumps(settings)
    env["WSHUB_TEST_RECORD_SIGNALS"] = "0"  # the test app's signal log would grow forever
    server = asgi_server("uvicorn", APP, env)
    other = asgi_server("daphne", APP, env)  # a second node: its rooms fill the presence table
    url = server.ws_url("/ws/control/")
    control = await Peer.open(url)
    rng = random.Random(23)
    elsewhere = other.ws_url("/ws/control/")
    actors = [Actor(url, random.Random(rng.random())) for _ in range(n)]
    actors += [Actor(elsewhere, random.Random(rng.random())) for _ in range(max(1, n // 20))]
    for batch in range(0, len(actors), 100):
        await asyncio.gather(*(actor.connect() for actor in actors[batch : batch + 100]))
    running = asyncio.Event()
    stopping = asyncio.Event()

    async def live(actor: Actor) -> None:
        await asyncio.sleep(actor.rng.uniform(0, ACTION_EVERY))
        while not stopping.is_set():
            await running.wait()
            await actor.step()
            await asyncio.sleep(actor.rng.uniform(0.5, 1.5) * ACTION_EVERY)

    async def checkpoint() -> dict[str, int]:
        running.clear()
        await asyncio.sleep(ACTION_EVERY * 1.5 + 1)  # every step in flight finishes
        await asyncio.sleep(2.0)  # closes and beats settle on the server
        sizes: dict[str, int] = await control.call("sizes")
        sizes["rss"] = rss(server.pid)
        mine = [a.peer.id for a in actors if a.peer is not None and a.url == url]
        depths = await control.call("queued", clients=mine)
        sizes["queued_frames"] = sum(d or 0 for d in depths.values())
        running.set()
        return sizes

    timeline: list[float] = []  # the node's RSS in MiB every tenth of the run

    async def sample_rss() -> None:
        while not stopping.is_set():
            timeline.append(round(rss(server.pid) / 2**20, 1))
            await asyncio.sleep(seconds / 10)

    tasks = [asyncio.create_task(live(actor)) for actor in actors]
    tasks.append(asyncio.create_task(sample_rss()))
    started = time.monotonic()
    running.set()
    await asyncio.sleep(seconds / 5)
    warm = await checkpoint()
    await asyncio.sleep(max(0.0, seconds - (time.monotonic() - started)))
    end = await checkpoint()
    stopping.set()
    running.set()
    await asyncio.gather(*tasks)
    stats = await control.call("layer_stats")
    dropped = (await control.call("lookup"))["send_dropped"]
    actions = sum(a.actions for a in actors)
    reconnects = sum(a.reconnects for a in actors)
    growth = {k: (end[k] - warm[k]) / warm[k] * 100 if warm[k] else 0.0 for k in warm}
    figure(
        f"soak {n} connections on uvicorn/Redis (+{len(actors) - n} on daphne) for "
        f"{seconds:.0f}s: {actions} actions, "
        f"{reconnects} reconnects; after warm-up {warm}; at the end {end}; growth % "
        + json.dumps({k: round(v, 2) for k, v in growth.items()})
        + f"; layer drop counters {drop_counters(stats)}, hub dropped {dropped}; "
        f"RSS MiB every {seconds / 10:.0f}s: {timeline}"
    )
    await asyncio.gather(*(a.peer.close() for a in actors if a.peer), control.close())
    server.stop()
    other.stop()
    for key, before in warm.items():
        if key != "rss":
            assert end[key] <= before * 1.05 + 10, (key, before, end[key])
    assert end["registry"] == n + 1 and end["memberships"] == 2 * n
    assert end["presence_nodes"] == 1 and end["presence_rooms"] > 0
    assert drop_counters(stats) == 0 and dropped == 0
    assert growth["rss"] < 5, growth


@pytest.mark.slow
@pytest.mark.timeout(400)
async def test_soak_60_seconds(asgi_server: StartAsgiServer, redis_url: str) -> None:
    connections = int(os.environ.get("WSHUB_SOAK_CONNECTIONS", 1000))
    await run_soak(
        asgi_server, redis_url, connections, float(os.environ.get("WSHUB_SLOW_SOAK", 60))
    )


@pytest.mark.soak
@pytest.mark.timeout(0)
async def test_soak_long(asgi_server: StartAsgiServer, redis_url: str) -> None:
    await run_soak(
        asgi_server,
        redis_url,
        int(os.environ.get("WSHUB_SOAK_CONNECTIONS", 10_000)),
        float(os.environ.get("WSHUB_SOAK_SECONDS", 600)),
    )
