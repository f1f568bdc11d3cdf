"""History rooms across real server processes (daphne and uvicorn) on a shared bus.

A client disconnects, misses messages, reconnects (to either node) with the
position of the last message it saw, and must receive exactly what it
missed, then live messages, in order, none twice, also while messages are
published during its recovery. Runs once per bus (``bus`` fixture).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.buses import Bus, node_env
from tests.integration.peer import Peer
from tests.rig.servers import AsgiServer, StartAsgiServer

pytestmark = pytest.mark.integration
APP = "tests.apps.hub_app:application"
HISTORY = {"h.*": {"size": 500, "ttl": 300}}


@pytest.fixture(scope="module")
def nodes(asgi_server: StartAsgiServer, bus: Bus) -> Iterator[list[AsgiServer]]:
    if bus.name == "nats-cluster":
        pytest.skip(
            "the test NATS cluster runs without JetStream, which room history needs "
            "(history on NATS runs on the single JetStream server)"
        )
    prefix = f"hc{uuid.uuid4().hex[:8]}"
    servers = [
        asgi_server(kind, APP, node_env(bus, prefix, node, HISTORY=HISTORY))  # type: ignore[arg-type]
        for node, kind in enumerate(("daphne", "uvicorn"))
    ]
    yield servers
    for server in servers:
        server.stop()


async def peer(server: AsgiServer) -> Peer:
    return await Peer.open(server.ws_url("/ws/control/"))


async def texts(reader: Peer, count: int) -> list[str]:
    got = []
    for _ in range(count):
        frame = await reader.next(wait=5)
        assert isinstance(frame, str)
        got.append(frame)
    return got


async def publish(sender: Peer, room: str, numbers: range, pause: float = 0.0) -> None:
    for n in numbers:
        await sender.call("broadcast_to_room", room=room, text=f"m{n}")
        if pause:
            await asyncio.sleep(pause)


@pytest.mark.parametrize("back_to", [0, 1])
async def test_reconnect_gets_exactly_what_it_missed(nodes: list[AsgiServer], back_to: int) -> None:
    room = f"h.{uuid.uuid4().hex[:8]}"
    sender = await peer(nodes[0])
    reader = await peer(nodes[1])
    try:
        joined = await reader.call("join_room", room=room, since=None)
        assert joined["recovered"] is False
        await publish(sender, room, range(10))
        assert await texts(reader, 10) == [f"m{n}" for n in range(10)]
        seen = await reader.call("history", room=room, limit=0)
        assert seen["position"][0] == 10
        await reader.close()

        await publish(sender, room, range(10, 25))  # missed while away
        reader = await peer(nodes[back_to])
        joined = await reader.call("join_room", room=room, since=seen["position"])
        assert joined == {"recovered": True, "position": [25, seen["position"][1]], "replayed": 15}
        await publish(sender, room, range(25, 30))
        assert await texts(reader, 20) == [f"m{n}" for n in range(10, 30)]
        assert await reader.nothing(0.5)
    finally:
        await sender.close()
        await reader.close()


async def test_recovery_while_messages_are_published(nodes: list[AsgiServer]) -> None:
    """Sends from both nodes run through the reconnect: none lost, none twice, in order."""
    room = f"h.{uuid.uuid4().hex[:8]}"
    senders = [await peer(nodes[0]), await peer(nodes[1])]
    await publish(senders[0], room, range(5))
    position = (await senders[0].call("history", room=room, limit=0))["position"]
    stop = asyncio.Event()
    sent: list[int] = []

    async def traffic(which: int) -> None:
        n = 0
        while not stop.is_set() and n < 60:
            number = 1000 * (which + 1) + n
            await senders[which].call("broadcast_to_room", room=room, text=f"m{number}")
            sent.append(number)
            n += 1
            await asyncio.sleep(0.005)

    tasks = [asyncio.ensure_future(traffic(i)) for i in range(2)]
    readers = []
    try:
        await asyncio.sleep(0.05)
        for node in (0, 1):
            reader = await peer(nodes[node])
            readers.append(reader)
            joined = await reader.call("join_room", room=room, since=position)
            assert joined["recovered"] is True
        await asyncio.gather(*tasks)
        history = await senders[0].call("history", room=room, since=position)
        expected = [data for _, data in history["entries"]]
        assert len(expected) == len(sent)  # every send is in the history, once
        for reader in readers:
            got = await texts(reader, len(expected))
            assert got == expected, "a reader's messages differ from the room's order"
            assert await reader.nothing(0.3)
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
        for client in (*senders, *readers):
            await client.close()


async def test_a_position_in_a_lost_epoch_is_reported(nodes: list[AsgiServer]) -> None:
    room = f"h.{uuid.uuid4().hex[:8]}"
    sender = await peer(nodes[0])
    reader = await peer(nodes[1])
    try:
        await publish(sender, room, range(3))
        joined: dict[str, Any] = await reader.call("join_room", room=room, since=[2, "gone"])
        assert joined["recovered"] is False and joined["replayed"] == 0
        assert joined["position"][0] == 3 and joined["position"][1] != "gone"
        await publish(sender, room, range(3, 4))
        assert await texts(reader, 1) == ["m3"]
    finally:
        await sender.close()
        await reader.close()
