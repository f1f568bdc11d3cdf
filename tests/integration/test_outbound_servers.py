"""Outbound failures through real daphne and uvicorn: nothing lost, nobody locked out.

A lone surrogate is refused at its sender and the room carries on; a frame the
server cannot write ends that one connection with 1011 (4011 under daphne);
on uvicorn, whose send waits for the socket, the byte budget keeps stalled
clients from growing the server's memory.
"""

from __future__ import annotations

import json

import psutil
import pytest
from websockets.exceptions import ConnectionClosed

from tests.integration.peer import Peer, hub_server
from tests.integration.stalled import StalledClient
from tests.rig.servers import StartAsgiServer
from tests.rig.timing import async_wait_until, t

pytestmark = pytest.mark.integration
APP = "tests.apps.hub_app:application"
MIB = 1024 * 1024
CLOSE_WRITE_FAILED = {"daphne": 4011, "uvicorn": 1011}


@pytest.mark.parametrize("kind", ["daphne", "uvicorn"])
async def test_a_lone_surrogate_broadcast_is_refused_and_the_room_keeps_receiving(
    kind: str, asgi_server: StartAsgiServer
) -> None:
    """The sender's broadcast fails with InvalidFrame; both members get the next one."""
    server = hub_server(asgi_server, kind)
    url = server.ws_url("/ws/control/?rooms=chat")
    sender, bystander = await Peer.open(url), await Peer.open(url)
    error = await sender.expect_error("broadcast_to_room", room="chat", text="x\ud800")
    assert error == "InvalidFrame"
    await sender.call("broadcast_to_room", room="chat", text="next")
    assert await bystander.next() == "next" and await sender.next() == "next"
    await sender.close()
    await bystander.close()


@pytest.mark.parametrize("kind", ["daphne", "uvicorn"])
async def test_a_frame_the_server_cannot_write_closes_only_that_connection(
    kind: str, asgi_server: StartAsgiServer
) -> None:
    """The server refuses the frame: that client is closed with 1011 (4011 under
    daphne) and leaves the hub; its neighbour keeps being served."""
    server = hub_server(asgi_server, kind)
    url = server.ws_url("/ws/control/?rooms=chat")
    broken, bystander = await Peer.open(url), await Peer.open(url)
    await broken.ws.send(json.dumps({"op": "unencodable", "ref": 1}))
    with pytest.raises(ConnectionClosed):
        while True:
            await broken.next(5)
    assert broken.ws.close_code == CLOSE_WRITE_FAILED[kind]
    assert broken.id not in (await bystander.call("lookup"))["all_ids"]
    await bystander.call("broadcast_to_room", room="chat", text="still here")
    assert await bystander.next() == "still here"
    await bystander.close()


async def test_stalled_clients_with_large_messages_keep_memory_bounded(
    asgi_server: StartAsgiServer,
) -> None:
    """Three clients that stop reading, 60 frames of 1 MiB each: with a 4 MiB byte
    budget the server settles within 32 MiB of where it started (without one, the
    64-frame queues hold about 170 MiB)."""
    settings = {
        "CONFIG": {"send_queue_size": 64, "send_queue_bytes": 4 * MIB, "write_timeout": 0},
        "METRICS": "wshub_channels.metrics.DebugMetrics",  # the drops are read from it
    }
    env = {
        "WSHUB_TEST_SETTINGS": json.dumps(settings),
        # Every large block is mmapped, so freed frames leave RSS and it tracks what is held.
        "MALLOC_MMAP_THRESHOLD_": str(128 * 1024),
    }
    server = asgi_server("uvicorn", APP, env)
    url = server.ws_url("/ws/control/")
    control = await Peer.open(url)
    stalled = [await StalledClient(url).open() for _ in range(3)]
    process = psutil.Process(server.pid)
    before = process.memory_info().rss
    for client in stalled:
        await control.call("flood", client=client.id, count=60, size=MIB)
    assert (await control.call("lookup"))["send_dropped"] > 0

    def grown() -> int:
        return int(process.memory_info().rss - before)

    await async_wait_until(lambda: grown() < 32 * MIB, t(5), what="RSS within 32 MiB")
    queued = await control.call("queued", clients=[c.id for c in stalled])
    assert all(n is not None and n <= 4 for n in queued.values())
    for client in stalled:
        client.close()
    await control.close()
