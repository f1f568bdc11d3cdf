"""SIGTERM to a real daphne or uvicorn process serving ``HubApplication`` with 200 clients.

The node drains: ``/readyz`` answers 503 at once, new handshakes get 403, the
clients still connected at ``DRAIN_TIMEOUT`` are closed with 1001 (4001 under
daphne) in batches of ``DRAIN_BATCH`` one interval apart (after their queued
messages: under uvicorn some clients stop reading and build a real backlog
first), the process exits by itself, and the other node of the cluster hears
the goodbye at once. When the clients leave first, the process exits before
the timeout.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import time
import uuid

import pytest

from tests.integration.buses import Bus, node_env
from tests.integration.drainkit import (
    APP,
    aprobe,
    batches_in_log,
    closes,
    exit_of,
    first_503,
    open_idle,
    refused_status,
)
from tests.integration.peer import Peer
from tests.integration.stalled import StalledClient
from tests.rig.servers import AsgiKind, StartAsgiServer
from tests.rig.timing import async_wait_until
from wshub_channels.core.drain import DRAIN_INTERVAL
from wshub_channels.testing import scaled

pytestmark = pytest.mark.integration

CLIENTS = 200
BATCH = 50
DRAIN_TIMEOUT = scaled(2)
#: The bound on the time from SIGTERM to the first 503 from /readyz.
READY_BOUND = scaled(0.5)
STALLED = 3
FLOOD = {"count": 100, "size": 64 * 1024}
#: Each process's exit status after SIGTERM: daphne returns, uvicorn re-raises the signal.
EXIT_STATUS = {"daphne": 0, "uvicorn": -signal.SIGTERM}
CLOSE_CODE = {"daphne": 4001, "uvicorn": 1001}
OTHER: dict[str, AsgiKind] = {"daphne": "uvicorn", "uvicorn": "daphne"}


async def _node_events(peer: Peer) -> list[list[str]]:
    return list(await peer.call("node_events"))


@pytest.mark.parametrize("kind", ["daphne", "uvicorn"])
async def test_sigterm_drains_200_clients_in_batches_then_exits(
    kind: AsgiKind, asgi_server: StartAsgiServer, redis_url: str
) -> None:
    """The whole drain on SIGTERM, on one node of a 2-node Redis cluster."""
    bus, prefix = Bus("redis", "redis", (redis_url,)), f"dr{uuid.uuid4().hex[:8]}"
    # A long presence interval: eviction would take ~3 intervals, so a prompt
    # node_left can only come from the goodbye.
    beat = scaled(3)
    settings = {
        "DRAIN_TIMEOUT": DRAIN_TIMEOUT,
        "DRAIN_BATCH": BATCH,
        "PRESENCE_INTERVAL": beat,
        "CONFIG": {"write_timeout": scaled(20)},
    }
    target = asgi_server(kind, APP, node_env(bus, prefix, 0, **settings))
    observer = asgi_server(OTHER[kind], APP, node_env(bus, prefix, 1, PRESENCE_INTERVAL=beat))
    url = target.ws_url("/ws/control/")
    watcher = await Peer.open(observer.ws_url("/ws/control/"))
    control = await Peer.open(url)
    node = (await control.call("health"))["node_id"]

    async def joined() -> bool:
        return ["joined", node] in await _node_events(watcher)

    await async_wait_until(joined, scaled(3), interval=scaled(0.05), what="node joined")

    stalled = [await StalledClient(url).open() for _ in range(STALLED if kind == "uvicorn" else 0)]
    idle = await open_idle(url, CLIENTS - 1 - len(stalled))
    if stalled:  # under uvicorn: a real backlog in the hub's queue, behind a full socket
        for client in stalled:
            await control.call("flood", client=client.id, **FLOOD)
        queued = await control.call("queued", clients=[c.id for c in stalled])
        print(f"\n{kind}: frames queued in the hub for the stalled clients: {queued}")
        assert all(n and n > 0 for n in queued.values()), queued
    status, health = await aprobe(target, "/readyz")
    assert (status, health["state"], health["clients"]) == (200, "running", CLIENTS)

    sent = time.monotonic()
    os.kill(target.pid, signal.SIGTERM)
    not_ready = await first_503(target, sent, within=READY_BOUND)
    assert await refused_status(url) == 403
    status, health = await aprobe(target, "/healthz")
    assert (status, health["alive"], health["state"]) == (200, True, "draining")

    seen = await closes([control.ws, *idle], sent, within=DRAIN_TIMEOUT + scaled(10))
    if stalled:  # they read again only now, with their close held behind the backlog
        for client in stalled:
            texts = await client.read_all(idle=1.0)
            assert [int(t.split(":", 1)[0]) for t in texts] == list(range(FLOOD["count"]))
            assert client.close_code == 1001
            client.close()
    status, exited = await exit_of(target, within=scaled(10))
    assert status == EXIT_STATUS[kind], target.log_text()[-3000:]

    # Closes: all with the drain code, none before the timeout, spread over the batches.
    assert {c.code for c in seen} == {CLOSE_CODE[kind]}
    first, last = min(c.at for c in seen), max(c.at for c in seen)
    assert first >= DRAIN_TIMEOUT
    assert last - first >= 3 * DRAIN_INTERVAL * 0.75
    logged = batches_in_log(target.log_text())
    assert [(n, of, size) for n, of, size, _ in logged] == [(n, 4, BATCH) for n in range(1, 5)]
    starts = [at for *_, at in logged]
    assert starts[0] >= DRAIN_TIMEOUT
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert all(gap >= DRAIN_INTERVAL * 0.95 for gap in gaps), gaps

    # The other node hears the goodbye at once, and goes on serving.
    async def left() -> bool:
        return ["left", node] in await _node_events(watcher)

    await async_wait_until(left, scaled(1), interval=scaled(0.02), what="node_left")
    heard = time.monotonic() - exited
    assert (await watcher.call("health"))["state"] == "running"
    await watcher.close()
    print(
        f"{kind}: /readyz 503 {not_ready * 1000:.1f} ms after SIGTERM; closes from "
        f"{first:.3f}s to {last:.3f}s; batches at {[round(s, 3) for s in starts]}s into the "
        f"drain; exit status {status} {exited - sent:.3f}s after SIGTERM; node_left heard "
        f"within {heard * 1000:.0f} ms of the exit"
    )


@pytest.mark.parametrize("kind", ["daphne", "uvicorn"])
async def test_sigterm_exits_as_soon_as_the_clients_leave(
    kind: AsgiKind, asgi_server: StartAsgiServer
) -> None:
    """200 clients leave after SIGTERM: the process exits long before DRAIN_TIMEOUT."""
    drain_timeout = scaled(60)
    settings = json.dumps({"DRAIN_TIMEOUT": drain_timeout})
    server = asgi_server(kind, APP, {"WSHUB_TEST_SETTINGS": settings})
    url = server.ws_url("/ws/control/")
    idle = await open_idle(url, CLIENTS)
    sent = time.monotonic()
    os.kill(server.pid, signal.SIGTERM)
    not_ready = await first_503(server, sent, within=READY_BOUND)
    await asyncio.sleep(scaled(0.2))
    assert server.running  # still draining: every client is connected
    await asyncio.gather(*(ws.close() for ws in idle))
    gone = time.monotonic()
    assert {ws.close_code for ws in idle} == {1000}  # they closed; the server did not
    status, exited = await exit_of(server, within=scaled(10))
    assert status == EXIT_STATUS[kind]
    assert exited - sent < drain_timeout / 4
    print(
        f"\n{kind}: /readyz 503 {not_ready * 1000:.1f} ms after SIGTERM; exit status "
        f"{status} {(exited - gone) * 1000:.0f} ms after the last client left "
        f"(DRAIN_TIMEOUT {drain_timeout:.0f}s)"
    )
