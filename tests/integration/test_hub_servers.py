"""The hub on one node, through real daphne and uvicorn processes and real clients."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from tests.integration.peer import Peer
from tests.rig.servers import AsgiServer, StartAsgiServer
from wshub_channels.testing import scaled

pytestmark = pytest.mark.integration
APP = "tests.apps.hub_app:application"


def _server(start: StartAsgiServer, kind: str, **settings: Any) -> AsgiServer:
    return start(kind, APP, {"WSHUB_TEST_SETTINGS": json.dumps(settings)})  # type: ignore[arg-type]


@pytest.fixture(scope="module", params=["daphne", "uvicorn"])
def server(request: pytest.FixtureRequest, asgi_server: StartAsgiServer) -> Iterator[AsgiServer]:
    srv = _server(asgi_server, request.param)
    yield srv
    srv.stop()


@pytest.fixture
async def crowd(server: AsgiServer) -> AsyncIterator[list[Peer]]:
    """10 clients in 3 rooms (room0..room2 by i % 3), users u0..u3 by i % 4."""
    url = server.ws_url("/ws/control/")
    peers = [await Peer.open(f"{url}?user=u{i % 4}&rooms=room{i % 3},all") for i in range(10)]
    yield peers
    for peer in peers:
        await peer.close()


async def _got(peers: list[Peer], text: str) -> list[int]:
    """Indexes of the peers that received exactly one ``text`` and nothing else."""
    got = []
    for i, peer in enumerate(peers):
        if not await peer.nothing(0.3):
            assert await peer.next() == text
            got.append(i)
            assert await peer.nothing(0.1), f"peer {i} got a duplicate"
    return got


async def test_room_broadcast_with_and_without_exclude(crowd: list[Peer]) -> None:
    """A room broadcast reaches each member once; excluded clients and others get nothing."""
    await crowd[1].call("broadcast_to_room", room="room0", text="to room0")
    assert await _got(crowd, "to room0") == [0, 3, 6, 9]
    await crowd[1].call("broadcast_to_room", room="room0", text="not 3", exclude=[crowd[3].id])
    assert await _got(crowd, "not 3") == [0, 6, 9]


async def test_broadcast_reaches_every_client(crowd: list[Peer]) -> None:
    """broadcast_text reaches all 10 clients; exclude leaves out the named ones."""
    await crowd[0].call("broadcast", text="everyone", exclude=[crowd[0].id, crowd[5].id])
    assert await _got(crowd, "everyone") == [1, 2, 3, 4, 6, 7, 8, 9]


async def test_send_to_user_reaches_all_their_connections(crowd: list[Peer]) -> None:
    """send_to_user reaches every connection of that user and nobody else."""
    await crowd[0].call("send_to_user", user="u1", text="for u1")
    assert await _got(crowd, "for u1") == [1, 5, 9]


async def test_send_to_client_text_and_binary(crowd: list[Peer]) -> None:
    """send_to_client sends str as a text frame and bytes as a binary frame."""
    await crowd[0].call("send_to_client", client=crowd[7].id, text="just you")
    assert await _got(crowd, "just you") == [7]
    await crowd[0].call("send_to_client", client=crowd[7].id, text="bin", binary=True)
    assert await crowd[7].next() == b"bin"


async def test_lookups(crowd: list[Peer]) -> None:
    """Every local lookup reflects the 10 clients, their rooms and users."""
    ids = [p.id for p in crowd]
    result = await crowd[0].call(
        "lookup", rooms=["room0", "room1", "nope"], user="u2", client=ids[4]
    )
    assert set(ids) <= set(result["all_ids"]) and result["client_count"] >= 10
    assert {"room0", "room1", "room2", "all"} <= set(result["room_names"])
    assert result["room_count"] == {"room0": 4, "room1": 3, "nope": 0}
    assert result["room_exists"] == {"room0": True, "room1": True, "nope": False}
    assert result["room_clients"]["room1"] == sorted(ids[i] for i in (1, 4, 7))
    assert result["user_clients"] == sorted(ids[i] for i in (2, 6))
    assert result["by_user"] in (ids[2], ids[6])
    assert result["get_client"] == ids[4]
    assert result["my_rooms"] == ["all", "room0"]


async def test_membership_calls_for_another_client(crowd: list[Peer]) -> None:
    """join_room, leave_room, leave_all_rooms and disconnect work on other clients."""
    await crowd[0].call("join_room", client=crowd[1].id, room="extra")
    await crowd[0].call("broadcast_to_room", room="extra", text="extra")
    assert await _got(crowd, "extra") == [1]
    await crowd[0].call("leave_room", client=crowd[1].id, room="extra")
    await crowd[0].call("leave_all_rooms", client=crowd[2].id)
    await crowd[0].call("broadcast_to_room", room="all", text="all")
    assert await _got(crowd, "all") == [0, 1, 3, 4, 5, 6, 7, 8, 9]
    await crowd[0].call("disconnect", client=crowd[9].id, code=4000)
    with pytest.raises(ConnectionClosed):
        await crowd[9].next(2)
    assert crowd[9].ws.close_code == 4000


async def test_error_cases_are_typed_and_harm_nobody(crowd: list[Peer]) -> None:
    """Each misuse gets its typed error; the connection and its neighbours carry on."""
    me = crowd[0]
    assert await me.expect_error("send_to_client", client="specific.nobody!x", text="?") == (
        "ClientNotFound"
    )
    assert await me.expect_error("join_room", room="room0") == "AlreadyInRoom"
    assert await me.expect_error("join_room", room="") == "EmptyRoomName"
    assert await me.expect_error("join_room", room="r" * 257) == "InvalidName"
    assert await me.expect_error("leave_room", room="room1") == "NotInRoom"
    assert await me.expect_error("send_closed", client=crowd[8].id) == "ConnectionClosed"
    assert await me.expect_error("raise") == "RuntimeError"
    await me.call("join_room", room="ユニコード 部屋 🎉" + "x" * 240)
    await crowd[1].call("broadcast", text="still fine", exclude=[crowd[8].id])
    assert await _got(crowd[:8], "still fine") == list(range(8))


async def test_invalid_json_and_raising_hooks_keep_the_connection(server: AsgiServer) -> None:
    """Invalid JSON and a raising on_connect reach on_error; the socket stays usable."""
    peer = await Peer.open(server.ws_url("/ws/control/"))
    await peer.ws.send("{not json")
    assert json.loads(await peer.next())["error"] == "ValueError"
    assert (await peer.call("json")) == '{"ok":true}'
    await peer.close()
    from websockets.asyncio.client import connect

    async with connect(server.ws_url("/ws/hooks/")) as ws:
        assert json.loads(await asyncio.wait_for(ws.recv(), scaled(2))) == {"error": "RuntimeError"}
        await ws.send('{"still": "alive"}')
        assert json.loads(await asyncio.wait_for(ws.recv(), scaled(2))) == {
            "echo": {"still": "alive"}
        }


async def test_send_and_send_text_keep_their_order(crowd: list[Peer]) -> None:
    """Stock send() and send_text() share one queue, so their order holds."""
    await crowd[0].call("interleave", count=200)
    assert [await crowd[0].next() for _ in range(200)] == [f"seq:{n}" for n in range(200)]


@pytest.mark.parametrize("kind", ["daphne", "uvicorn"])
async def test_coalescing_joins_text_frames(kind: str, asgi_server: StartAsgiServer) -> None:
    """With coalescing, a burst arrives in fewer frames; split on newline it is intact."""
    srv = _server(asgi_server, kind, CONFIG={"coalesce_writes": True, "coalesce_max_bytes": 64})
    try:
        peer = await Peer.open(srv.ws_url("/ws/control/"))
        before = peer.frames
        await peer.call("burst", count=50)
        assert [await peer.next() for _ in range(50)] == [f"b{n}" for n in range(50)]
        assert peer.frames - before < 50
        await peer.close()
    finally:
        srv.stop()
