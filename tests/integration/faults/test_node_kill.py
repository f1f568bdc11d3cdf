"""One of three nodes killed (SIGKILL) under traffic, on Redis and NATS.

Three server processes (daphne, daphne, uvicorn) beat every ``INTERVAL`` test units. A
client on node 0 broadcasts to a room every 10 ms; node 1 holds three members of it.
Node 1 is killed. Both survivors evict it within 3 to 4 presence intervals of its last
beat: the cluster counts and the cluster client listing drop its clients, and the
traffic between the survivors never stops. On Redis (the layer that keeps room
history) one of the killed node's members reconnects to a survivor, rejoins with the
position it last saw and recovers exactly what it missed.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid

import pytest

from tests.integration.buses import INTERVAL, Bus, node_env
from tests.integration.faults.kit import APP, Listener, Stream, figure
from tests.integration.peer import Peer
from tests.rig.servers import StartAsgiServer
from tests.rig.timing import async_wait_until
from wshub_channels.testing import scaled

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

BEAT = scaled(INTERVAL)
HISTORY = {"hist.*": {"size": 5000}}


@pytest.mark.parametrize("kind", ["redis", "nats"])
async def test_a_killed_node_is_evicted_and_its_client_recovers_elsewhere(
    kind: str, request: pytest.FixtureRequest, asgi_server: StartAsgiServer
) -> None:
    url: str = request.getfixturevalue(f"{kind}_url")
    bus = Bus(kind, kind, (url,))
    prefix = f"nk{uuid.uuid4().hex[:8]}"
    nodes = [
        asgi_server(server, APP, node_env(bus, prefix, n, HISTORY=HISTORY))  # type: ignore[arg-type]
        for n, server in enumerate(("daphne", "daphne", "uvicorn"))
    ]
    room = "hist.k"
    controls = [await Peer.open(node.ws_url("/ws/control/")) for node in (nodes[0], nodes[2])]
    doomed = [await Peer.open(nodes[1].ws_url(f"/ws/control/?rooms={room}")) for _ in range(3)]
    survivor = Listener(await Peer.open(nodes[2].ws_url(f"/ws/control/?rooms={room}")))
    survivor.start()
    stream = Stream(await Peer.open(nodes[0].ws_url("/ws/control/")), room, "K", 0.01)
    stream.start()
    try:

        async def counted(control: Peer, clients: int, members: int) -> bool:
            got = await control.call("global_counts", room=room, fields=["clients", "room"])
            return bool(got == {"clients": clients, "room": members})

        for control in controls:  # 2 controls, 3 doomed, 1 survivor, 1 sender
            await async_wait_until(
                lambda c=control: counted(c, 7, 4), 6 * BEAT, interval=BEAT / 10, what="counts"
            )
        await asyncio.sleep(0.3)
        seen = (await controls[1].call("history", room=room, limit=0))["position"]
        killed_at = time.monotonic()
        os.kill(nodes[1].pid, signal.SIGKILL)
        evicted: list[float] = []
        for control in controls:
            await async_wait_until(
                lambda c=control: counted(c, 4, 1), 8 * BEAT, interval=BEAT / 20, what="eviction"
            )
            evicted.append(time.monotonic() - killed_at)
        listing = await controls[0].call("cluster_clients", room=room)
        assert [item[1] for item in listing["items"]] == [survivor.peer.id], listing
        assert listing["missing"] == []
        doomed_ids = {peer.id for peer in doomed}
        everyone = await controls[1].call("cluster_clients")
        assert not doomed_ids & {item[1] for item in everyone["items"]}
        # The survivors kept talking throughout.
        gap = max(
            b - a
            for a, b in zip(
                sorted(survivor.got.values()), sorted(survivor.got.values())[1:], strict=False
            )
        )

        # a member of the dead node reconnects to a survivor
        back = await Peer.open(nodes[2].ws_url("/ws/control/"))
        recovered = await back.call("join_room", room=room, since=seen)
        at = recovered["position"]  # where the join caught up (traffic goes on)
        assert recovered["recovered"] is True and at[1] == seen[1]
        assert recovered["replayed"] == at[0] - seen[0] > 0
        replayed = [await back.next(5) for _ in range(recovered["replayed"])]
        accepted = [text for text, _, outcome in stream.outcomes if outcome == "ok"]
        start = accepted.index(replayed[0])
        assert replayed == accepted[start : start + len(replayed)]
        await back.close()
    finally:
        await stream.stop()
        await survivor.stop()
        for peer in doomed:  # their node is gone: drop the sockets, no closing handshake
            peer.ws.transport.abort()
    figure(
        f"{kind} node SIGKILL (presence interval {BEAT:.2f}s): evicted after {evicted[0]:.2f}s "
        f"(daphne) {evicted[1]:.2f}s (uvicorn) = {max(evicted) / BEAT:.1f} intervals; longest "
        f"gap in survivor traffic {gap * 1000:.0f} ms; rejoin on a survivor: {recovered}"
    )
    for took in evicted:
        assert 2 * BEAT - BEAT / 4 <= took <= 4 * BEAT + BEAT / 2, evicted
    assert gap < scaled(0.5)
    for peer in (*controls, survivor.peer, stream.peer):
        await peer.close()

    for node in nodes:
        node.stop()
