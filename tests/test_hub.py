"""The Hub API on one node, driven through real HubConsumers and HubCommunicators.

Each test gets a fresh ``InMemoryHubLayer`` under its own alias, so it gets
its own hub (one hub per layer). A client sends ``id:<client id>`` as its
first frame, at the end of ``on_connect``: by then it is registered, has its
user id and has joined the rooms its query string names (``?user=u&room=r``).
To show that a client received nothing, the tests broadcast a marker after
the send under test and check that the marker is the client's next frame.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlencode

import pytest
from django.test import override_settings

from tests.inprocess import WAIT, Clients, Conn, hub_clients
from wshub_channels import HubConsumer, get_hub
from wshub_channels.errors import (
    AlreadyInRoom,
    ClientNotFound,
    EmptyRoomName,
    InvalidName,
    MaxRoomsReached,
    NotInRoom,
    RoomFull,
)
from wshub_channels.hub.hub import Hub
from wshub_channels.testing import scaled

pytestmark = pytest.mark.unit

ALIAS = "wshub-test-hub"
MARKER = "--marker--"


class Peer(HubConsumer):
    """Takes its user id and rooms from the query string, then announces its id."""

    channel_layer_alias = ALIAS

    async def on_connect(self) -> None:
        query = parse_qs(self.scope["query_string"].decode())
        if "user" in query:
            await self.set_user_id(query["user"][0])
        for room in query.get("room", []):
            await self.join_room(room)
        await self.send_text(f"id:{self.id}")


class Peers(Clients):
    """Connects Peers with a user id and rooms from the query string."""

    async def peer(self, user: str | None = None, rooms: tuple[str, ...] = ()) -> Conn:
        params = ([("user", user)] if user else []) + [("room", room) for room in rooms]
        return await self.connect(Peer, urlencode(params))


@pytest.fixture
async def clients() -> AsyncIterator[Peers]:
    async with hub_clients(ALIAS, kind=Peers) as made:
        yield made


def hub() -> Hub:
    return get_hub(ALIAS)


async def expect_marker(*conns: Conn) -> None:
    """Broadcast a marker; each of ``conns`` must receive it as its very next frame."""
    await hub().broadcast_text(MARKER)
    for conn in conns:
        assert await conn.next() == MARKER


def ids(found: list[Any]) -> set[str]:
    return {client.id for client in found}


# -- sends -------------------------------------------------------------------------------


async def test_broadcast_text_reaches_every_client(clients: Peers) -> None:
    """broadcast_text delivers the text frame to every connected client."""
    conns = [await clients.peer() for _ in range(3)]
    await hub().broadcast_text("hello all")
    for conn in conns:
        assert await conn.next() == "hello all"


async def test_broadcast_bytes_goes_out_as_a_binary_frame(clients: Peers) -> None:
    """broadcast with bytes sends a binary frame, with str a text frame."""
    a, b = await clients.peer(), await clients.peer()
    await hub().broadcast(b"\x00\x01raw")
    await hub().broadcast("text")
    for conn in (a, b):
        assert await conn.next() == b"\x00\x01raw"
        assert await conn.next() == "text"


async def test_broadcast_text_exclude_skips_the_excluded(clients: Peers) -> None:
    """broadcast_text with exclude= skips excluded ids and clients, and reaches the rest."""
    a, b, c = [await clients.peer() for _ in range(3)]
    client_b = hub().get_client(b.id)
    assert client_b is not None
    await hub().broadcast_text("not for a or b", exclude=[a.id, client_b])
    assert await c.next() == "not for a or b"
    await expect_marker(a, b, c)


async def test_broadcast_to_room_excludes_ids_and_client_objects(clients: Peers) -> None:
    """broadcast_to_room reaches room members only, minus those excluded by id or object."""
    a, b, c, d = [await clients.peer(rooms=("lobby",)) for _ in range(4)]
    outside = await clients.peer(rooms=("other",))
    client_b = hub().get_client(b.id)
    assert client_b is not None
    await hub().broadcast_to_room("lobby", "room msg", exclude=[a.id, client_b])
    assert await c.next() == "room msg"
    assert await d.next() == "room msg"
    await expect_marker(a, b, c, d, outside)
    await hub().broadcast_to_room("lobby", "to all of lobby")
    for conn in (a, b, c, d):
        assert await conn.next() == "to all of lobby"
    await expect_marker(outside)


async def test_send_to_user_reaches_every_connection_of_that_user_only(
    clients: Peers,
) -> None:
    """send_to_user reaches each connection of the user, and no other user or anonymous client."""
    alice1, alice2 = await clients.peer(user="alice"), await clients.peer(user="alice")
    bob, anon = await clients.peer(user="bob"), await clients.peer()
    await hub().send_to_user("alice", "for alice")
    assert await alice1.next() == "for alice"
    assert await alice2.next() == "for alice"
    await expect_marker(alice1, alice2, bob, anon)
    await hub().send_to_user("bob", b"bin for bob")
    assert await bob.next() == b"bin for bob"
    await expect_marker(alice1, alice2, bob, anon)


async def test_send_to_user_without_connections_delivers_nothing(clients: Peers) -> None:
    """send_to_user for a user with no connection is a no-op for everyone else."""
    a = await clients.peer(user="alice")
    await hub().send_to_user("nobody", "lost")
    await expect_marker(a)


async def test_send_to_client_text_and_binary(clients: Peers) -> None:
    """send_to_client sends str as text and bytes as binary, to that client only."""
    a, b = await clients.peer(), await clients.peer()
    await hub().send_to_client(a.id, "just a")
    await hub().send_to_client(hub().get_client(a.id), b"\xffbinary")
    assert await a.next() == "just a"
    assert await a.next() == b"\xffbinary"
    await expect_marker(a, b)


async def test_send_to_client_unknown_id_raises_client_not_found(clients: Peers) -> None:
    """send_to_client raises ClientNotFound for an id no node has (ours, foreign or junk)."""
    a = await clients.peer()
    node = hub().node_id
    for unknown in (f"specific.{node}!nosuchclient", "specific.abcdefghijkl!gone", "junk"):
        with pytest.raises(ClientNotFound):
            await hub().send_to_client(unknown, "x")
    await expect_marker(a)


async def test_send_to_client_after_disconnect_raises_client_not_found(
    clients: Peers,
) -> None:
    """Once a client disconnected, send_to_client with its id raises ClientNotFound."""
    a = await clients.peer()
    await a.comm.disconnect(timeout=WAIT)
    with pytest.raises(ClientNotFound):
        await hub().send_to_client(a.id, "too late")


async def test_broadcast_json_encodes_compactly(clients: Peers) -> None:
    """broadcast_json sends one compact JSON text frame (no spaces, non-ASCII kept)."""
    a = await clients.peer()
    await hub().broadcast_json({"a": 1, "b": [1, 2], "s": "é"})
    assert await a.next() == '{"a":1,"b":[1,2],"s":"é"}'
    await hub().broadcast_raw_json(b'{"raw": true}')
    assert await a.next() == '{"raw": true}'


async def test_sends_with_timeout_deliver(clients: Peers) -> None:
    """The timeout= path of every send delivers like the non-waiting one."""
    a = await clients.peer(user="alice", rooms=("r",))
    b = await clients.peer()
    timeout = scaled(1)
    await hub().broadcast_text("all", timeout=timeout)
    await hub().broadcast_to_room("r", "room", timeout=timeout)
    await hub().send_to_user("alice", "user", timeout=timeout)
    await hub().send_to_client(b.id, "client", timeout=timeout)
    assert [await a.next() for _ in range(3)] == ["all", "room", "user"]
    assert [await b.next() for _ in range(2)] == ["all", "client"]
    await expect_marker(a, b)


async def test_sends_reject_data_of_a_wrong_type(clients: Peers) -> None:
    """broadcast, broadcast_to_room and send_to_user raise TypeError for non str/bytes data."""
    a = await clients.peer(user="alice", rooms=("r",))
    with pytest.raises(TypeError):
        await hub().broadcast(123)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        await hub().broadcast_to_room("r", {"not": "data"})  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        await hub().send_to_user("alice", ["x"])  # type: ignore[arg-type]
    await expect_marker(a)


async def test_send_to_client_rejects_data_of_a_wrong_type(clients: Peers) -> None:
    """send_to_client raises TypeError for data that is neither str nor bytes."""
    a = await clients.peer()
    with pytest.raises(TypeError):
        await hub().send_to_client(a.id, 12)  # type: ignore[arg-type]


# -- lookups -------------------------------------------------------------------------------


async def test_lookups_before_and_after_a_disconnect(clients: Peers) -> None:
    """Every local lookup sees connected clients; a disconnected one leaves them all at once."""
    a = await clients.peer(user="alice", rooms=("r1", "r2"))
    b = await clients.peer(user="alice", rooms=("r1",))
    c = await clients.peer()
    h = hub()
    assert ids(h.clients()) == {a.id, b.id, c.id}
    assert h.client_count() == 3
    found = h.get_client(a.id)
    assert isinstance(found, Peer) and found.id == a.id
    assert h.get_client("specific.nope!nope") is None
    first = h.get_client_by_user_id("alice")
    assert first is not None and first.id in {a.id, b.id}
    assert h.get_client_by_user_id("bob") is None
    assert ids(h.get_clients_by_user_id("alice")) == {a.id, b.id}
    assert h.get_clients_by_user_id("bob") == []
    assert ids(h.room_clients("r1")) == {a.id, b.id}
    assert ids(h.room_clients("r2")) == {a.id}
    assert h.room_count("r1") == 2 and h.room_count("r2") == 1 and h.room_count("r3") == 0
    assert sorted(h.room_names()) == ["r1", "r2"]
    assert h.room_exists("r1") and h.room_exists("r2") and not h.room_exists("r3")

    await a.comm.disconnect(timeout=WAIT)

    assert ids(h.clients()) == {b.id, c.id}
    assert h.client_count() == 2
    assert h.get_client(a.id) is None
    assert ids(h.get_clients_by_user_id("alice")) == {b.id}
    by_user = h.get_client_by_user_id("alice")
    assert by_user is not None and by_user.id == b.id
    assert ids(h.room_clients("r1")) == {b.id}
    assert h.room_clients("r2") == []
    assert h.room_count("r1") == 1 and h.room_count("r2") == 0
    assert h.room_names() == ["r1"]
    assert not h.room_exists("r2")


async def test_hub_disconnect_removes_the_client_before_returning(clients: Peers) -> None:
    """hub.disconnect closes with the code and the client has left every lookup on return."""
    a = await clients.peer(user="alice", rooms=("r1",))
    b = await clients.peer()
    h = hub()
    await h.disconnect(a.id, code=4000)
    assert h.get_client(a.id) is None
    assert h.client_count() == 1
    assert h.get_clients_by_user_id("alice") == []
    assert h.room_count("r1") == 0 and h.room_names() == []
    closed = await a.comm.receive_output(timeout=WAIT)
    assert closed == {"type": "websocket.close", "code": 4000}
    await expect_marker(b)


# -- membership through the hub --------------------------------------------------------------


async def test_hub_join_leave_and_leave_all_on_a_local_client_by_id(clients: Peers) -> None:
    """hub.join_room/leave_room/leave_all_rooms by id change the client's rooms and the lookups."""
    a, b = await clients.peer(), await clients.peer()
    h = hub()
    client = h.get_client(a.id)
    assert client is not None
    await h.join_room(a.id, "x")
    await h.join_room(client, "y")
    assert client.rooms == frozenset({"x", "y"})
    assert ids(h.room_clients("x")) == {a.id}
    await h.broadcast_to_room("x", "in x")
    assert await a.next() == "in x"
    await expect_marker(a, b)
    await h.leave_room(a.id, "x")
    assert client.rooms == frozenset({"y"}) and not h.room_exists("x")
    await h.join_room(a.id, "z")
    await h.leave_all_rooms(a.id)
    assert client.rooms == frozenset() and h.room_names() == []
    await h.broadcast_to_room("y", "nobody in y")
    await expect_marker(a, b)


async def test_membership_of_an_unknown_client_raises_client_not_found(
    clients: Peers,
) -> None:
    """hub.join_room/leave_room/leave_all_rooms/disconnect raise ClientNotFound for a bad id."""
    await clients.peer()
    h = hub()
    missing = f"specific.{h.node_id}!missing"
    with pytest.raises(ClientNotFound):
        await h.join_room(missing, "x")
    with pytest.raises(ClientNotFound):
        await h.leave_room(missing, "x")
    with pytest.raises(ClientNotFound):
        await h.leave_all_rooms(missing)
    with pytest.raises(ClientNotFound):
        await h.disconnect(missing)


async def test_room_errors_already_in_not_in_and_empty_name(clients: Peers) -> None:
    """Joining twice raises AlreadyInRoom, leaving a foreign room NotInRoom, '' EmptyRoomName."""
    a = await clients.peer(rooms=("r",))
    h = hub()
    client = h.get_client(a.id)
    assert client is not None
    with pytest.raises(AlreadyInRoom):
        await h.join_room(a.id, "r")
    with pytest.raises(AlreadyInRoom):
        await client.join_room("r")
    with pytest.raises(NotInRoom):
        await h.leave_room(a.id, "elsewhere")
    with pytest.raises(NotInRoom):
        await client.leave_room("elsewhere")
    with pytest.raises(EmptyRoomName):
        await h.join_room(a.id, "")
    with pytest.raises(EmptyRoomName):
        await h.broadcast_to_room("", "x")
    assert client.rooms == frozenset({"r"})
    assert h.room_count("r") == 1


async def test_names_that_are_not_strict_utf8_are_refused_at_the_edge(clients: Peers) -> None:
    """A room or user id with a lone surrogate raises InvalidName and changes nothing, so
    the node's heartbeat (which carries its rooms) still encodes."""
    a = await clients.peer(rooms=("r",))
    h = hub()
    client = h.get_client(a.id)
    assert client is not None
    with pytest.raises(InvalidName, match="UTF-8"):
        await h.join_room(a.id, "x\ud800")
    with pytest.raises(InvalidName, match="UTF-8"):
        await client.set_user_id("u\udfff")
    with pytest.raises(InvalidName, match="UTF-8"):
        await h.broadcast_to_room("x\ud800", "x")
    assert client.rooms == frozenset({"r"}) and client.user_id is None
    await h.heartbeat.publish("beat")


async def test_room_full_and_max_rooms_reached_from_limits(clients: Peers) -> None:
    """WSHUB LIMITS max_clients_per_room raises RoomFull, max_rooms_per_client MaxRoomsReached."""
    limits = {"max_clients_per_room": 1, "max_rooms_per_client": 2}
    with override_settings(WSHUB={"LIMITS": limits}):
        a, b = await clients.peer(), await clients.peer()
        h = hub()
        await h.join_room(a.id, "solo")
        with pytest.raises(RoomFull):
            await h.join_room(b.id, "solo")
        assert ids(h.room_clients("solo")) == {a.id}
        await h.join_room(a.id, "second")
        with pytest.raises(MaxRoomsReached):
            await h.join_room(a.id, "third")
        client_a = h.get_client(a.id)
        assert client_a is not None and client_a.rooms == frozenset({"solo", "second"})
        await h.leave_room(a.id, "solo")
        await h.join_room(b.id, "solo")  # a slot freed in the room
        await h.join_room(a.id, "third")  # a slot freed for the client
        assert client_a.rooms == frozenset({"second", "third"})
