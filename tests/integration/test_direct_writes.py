"""Direct writes through real servers: daphne, and uvicorn with each ``ws`` implementation.

Each server is run with and without a negotiated extension: the clients
offer permessage-deflate or not. uvicorn's implementations accept it, and
then every frame must take the ASGI path (the server compresses); daphne
never negotiates it, so its connections write directly either way. Every
case checks order (broadcasts, room sends and per-client sends interleaved,
many of them, each client getting every one in order), that the path taken
is the one expected (``Outbound.direct``, the frames written directly), and
that the counters are what the ASGI path counts.

The detection reads server internals: these tests pin the versions they were
written against (``constraints/dev.txt``), so a new server release that moves
them fails here first, by name.
"""

from __future__ import annotations

import json
import os
from importlib.metadata import version
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from tests.integration.peer import Peer
from tests.integration.stalled import StalledClient
from tests.rig.servers import AsgiServer, start_asgi_server

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        os.environ.get("WSHUB_TEST_DIRECT_WRITES") == "0",
        reason="WSHUB_TEST_DIRECT_WRITES=0: this run checks the ASGI path alone",
    ),
]

APP = "tests.apps.hub_app:application"
PINNED = {"daphne": "4.2.3", "autobahn": "26.11.1", "Twisted": "26.10.0", "uvicorn": "0.55.0"}
PINNED_WS = {"websockets": "17.4", "wsproto": "1.3.2"}
#: (server, uvicorn --ws, the writer kind expected)
SERVERS = [
    ("daphne", "auto", "daphne"),
    ("uvicorn", "websockets", "uvicorn-websockets"),
    ("uvicorn", "websockets-sansio", "uvicorn-websockets-sansio"),
    ("uvicorn", "wsproto", "uvicorn-wsproto"),
]
IDS = [f"{kind}-{ws}" if kind == "uvicorn" else kind for kind, ws, _ in SERVERS]


@pytest.fixture
def start(tmp_path_factory: pytest.TempPathFactory) -> Any:
    started: list[AsgiServer] = []
    log_dir = tmp_path_factory.mktemp("direct-logs")

    def run(kind: str, ws: str, **settings: Any) -> AsgiServer:
        env = {"WSHUB_TEST_SETTINGS": json.dumps(settings)}
        server = start_asgi_server(kind, APP, env, log_dir=log_dir, ws=ws)  # type: ignore[arg-type]
        started.append(server)
        return server

    yield run
    for server in reversed(started):
        server.stop()


def test_the_servers_are_the_versions_the_detection_was_written_for() -> None:
    found = {name: version(name) for name in {**PINNED, **PINNED_WS}}
    assert found == {**PINNED, **PINNED_WS}, "re-check connection/directwrite.py against these"


async def _peers(server: AsgiServer, count: int, deflate: bool) -> list[Peer]:
    url = server.ws_url("/ws/control/?rooms=r&user=u")
    compression = "deflate" if deflate else None
    return [await Peer.open(url, compression=compression) for _ in range(count)]


@pytest.mark.parametrize("deflate", [False, True], ids=["plain", "deflate-offered"])
@pytest.mark.parametrize(("kind", "ws", "writer"), SERVERS, ids=IDS)
async def test_every_message_arrives_in_order_on_the_path_expected(
    kind: str, ws: str, writer: str, deflate: bool, start: Any
) -> None:
    server = start(kind, ws, METRICS="wshub_channels.metrics.DebugMetrics")
    peers = await _peers(server, 3, deflate)
    control = peers[0]
    ids = [p.id for p in peers]
    negotiated = [bool(p.ws.protocol.extensions) for p in peers]
    assert negotiated == [deflate and kind == "uvicorn"] * 3  # daphne never compresses
    before = await control.call("paths", clients=ids)
    count = 300
    await control.call("sequence", room="r", clients=ids, count=count)
    for peer in peers:
        got = [await peer.next(5) for _ in range(count)]
        assert got == [f"s{n}" for n in range(count)], f"{peer.id} out of order"
        assert await peer.nothing(0.2)
    after = await control.call("paths", clients=ids)
    direct = [after["clients"][i]["direct"] - before["clients"][i]["direct"] for i in ids]
    if deflate and kind == "uvicorn":
        assert direct == [0, 0, 0]  # the server compresses: every frame took the ASGI path
    else:
        assert {after["clients"][i]["kind"] for i in ids} == {writer}
        assert all(n > count // 2 for n in direct), direct  # most went straight to the socket
    # Counted as the ASGI path counts: every delivery, plus two command replies.
    deliveries = 3 * count
    assert after["messages_sent"] - before["messages_sent"] == deliveries + 2
    sizes = sum(len(f"s{n}") for n in range(count)) * 3
    replies = after["bytes_sent"] - before["bytes_sent"] - sizes
    assert 0 < replies < 4096  # the two reply frames
    for peer in peers:
        await peer.close()


@pytest.mark.parametrize(("kind", "ws"), [("daphne", "auto"), ("uvicorn", "websockets-sansio")])
async def test_a_middleware_that_wraps_send_keeps_the_asgi_path(
    kind: str, ws: str, start: Any
) -> None:
    server = start(kind, ws)
    wrapped = await Peer.open(server.ws_url("/ws/wrapped/?rooms=r"), compression=None)
    plain = await Peer.open(server.ws_url("/ws/control/?rooms=r"), compression=None)
    await plain.call("broadcast_to_room", room="r", text="hi")
    assert await wrapped.next() == "hi" and await plain.next() == "hi"
    paths = (await plain.call("paths", clients=[wrapped.id, plain.id]))["clients"]
    assert paths[wrapped.id]["kind"] is None and paths[wrapped.id]["direct"] == 0
    assert paths[plain.id]["kind"] is not None and paths[plain.id]["direct"] > 0
    await wrapped.close()
    await plain.close()


@pytest.mark.parametrize(("kind", "ws"), [("daphne", "auto"), ("uvicorn", "websockets-sansio")])
async def test_direct_writes_off_is_one_setting(kind: str, ws: str, start: Any) -> None:
    server = start(kind, ws, CONFIG={"direct_writes": False})
    peer = await Peer.open(server.ws_url("/ws/control/?rooms=r"), compression=None)
    await peer.call("broadcast_to_room", room="r", text="hi")
    assert await peer.next() == "hi"
    paths = (await peer.call("paths", clients=[peer.id]))["clients"]
    assert paths[peer.id] == {"kind": None, "direct": 0, "sent": paths[peer.id]["sent"]}
    await peer.close()


@pytest.mark.parametrize("ws", ["websockets", "websockets-sansio", "wsproto"])
async def test_a_stalled_client_on_uvicorn_still_gets_the_drop_policy(ws: str, start: Any) -> None:
    """The first frames go straight to the socket; once its buffer fills, the ASGI send
    waits, frames queue, and the queue's bound drops the rest, counted as drops."""
    server = start(
        "uvicorn",
        ws,
        CONFIG={"send_queue_size": 8, "write_timeout": 0},
        METRICS="wshub_channels.metrics.DebugMetrics",
    )
    control = await Peer.open(server.ws_url("/ws/control/"))
    stalled = await StalledClient(server.ws_url("/ws/control/")).open()
    await control.call("flood", client=stalled.id, count=200, size=16 * 1024)
    lookup = await control.call("lookup")
    assert lookup["send_dropped"] > 0
    paths = (await control.call("paths", clients=[stalled.id]))["clients"][stalled.id]
    assert paths["kind"] == f"uvicorn-{ws}" and paths["direct"] > 0
    assert paths["sent"] + lookup["send_dropped"] == 201  # the hello, and the flood
    queued = await control.call("queued", clients=[stalled.id])
    assert queued[stalled.id] <= 8
    texts = await stalled.read_all(idle=1.0)
    seqs = [int(text.split(":", 1)[0]) for text in texts]
    assert seqs == sorted(seqs) and seqs[0] == 0  # whatever arrived, in order
    stalled.close()
    await control.close()


@pytest.mark.parametrize(("kind", "ws"), [("daphne", "auto"), ("uvicorn", "websockets-sansio")])
async def test_empty_and_oversized_messages_end_as_on_the_asgi_path(
    kind: str, ws: str, start: Any
) -> None:
    """daphne skips an empty message and refuses one over its 1 MiB limit (closing the
    connection 4011); uvicorn sends both. The direct path leaves both to the server."""
    server = start(kind, ws)
    url = server.ws_url("/ws/control/?rooms=r")
    peer = await Peer.open(url, compression=None, max_size=None)
    await peer.call("broadcast_to_room", room="r", text="")
    await peer.call("broadcast_to_room", room="r", text="after")
    expected = ["after"] if kind == "daphne" else ["", "after"]
    assert [await peer.next() for _ in expected] == expected
    if kind == "daphne":
        with pytest.raises(ConnectionClosed):
            await peer.call("flood", client=peer.id, count=1, size=2 * 1024 * 1024)
            while True:
                await peer.next(5)
        assert peer.ws.close_code == 4011
    else:
        await peer.call("flood", client=peer.id, count=1, size=2 * 1024 * 1024)
        assert len(await peer.next(5)) == 2 * 1024 * 1024 + 2  # "0:" and the body
        await peer.close()
