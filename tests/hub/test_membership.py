"""Membership: joins and leaves of local clients, and one ops table for local and remote calls.

Two ``InMemoryHubLayer`` instances on one named bus are two nodes; each has
its own Membership built as ``Hub.__init__`` builds it, with its ops
registered. Client ids come from ``new_channel`` so they name their node.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from tests.hub.kit import FakeClient, FakeQueue, Parts, make_parts, settings
from wshub_channels.errors import (
    AlreadyInRoom,
    ClientNotFound,
    ConnectionClosed,
    MaxRoomsReached,
    NotInRoom,
    RoomFull,
)
from wshub_channels.hooks import Hooks
from wshub_channels.hub.delivery import Delivery
from wshub_channels.hub.membership import Membership
from wshub_channels.layers import InMemoryHubLayer
from wshub_channels.types import Client

PATH = "tests.hub.test_membership"
TRAIL: list[str] = []


class TrailHooks(Hooks):
    async def before_room_join(self, client: Client, room: str) -> None:
        TRAIL.append(f"hooks.before_room_join {room}")

    async def on_room_join(self, client: Client, room: str) -> None:
        TRAIL.append(f"hooks.on_room_join {room}")


class Refusing(Hooks):
    async def before_room_join(self, client: Client, room: str) -> None:
        raise PermissionError(f"not {room}")


@dataclass
class Node:
    layer: InMemoryHubLayer
    parts: Parts
    membership: Membership

    async def client(self, user_id: str | None = None) -> FakeClient:
        client = FakeClient(await self.layer.new_channel(), self.layer, user_id)
        self.parts.registry.add(client, FakeQueue())
        return client


async def node(layer: InMemoryHubLayer, **wshub: object) -> Node:
    parts = make_parts(layer, settings(**wshub))
    membership = Membership(*parts.args(), Delivery(*parts.args()).history)
    await layer.start()
    membership.register_ops()
    return Node(layer, parts, membership)


@pytest.fixture
async def pair() -> AsyncIterator[tuple[Node, Node]]:
    TRAIL.clear()
    bus = f"membership-{uuid.uuid4().hex[:8]}"
    here, there = InMemoryHubLayer(bus=bus), InMemoryHubLayer(bus=bus)
    try:
        yield await node(here, LIMITS={"max_rooms_per_client": 2}), await node(there)
    finally:
        await here.close()
        await there.close()


async def test_join_local_adds_interest_counts_and_runs_hooks_in_order() -> None:
    TRAIL.clear()
    layer = InMemoryHubLayer()
    here = await node(layer, HOOKS=f"{PATH}.TrailHooks")
    first, second = await here.client(), await here.client()
    await here.membership.join_local(first, "lobby")
    await here.membership.join_local(second, "lobby")
    assert first.in_room("lobby") and here.parts.registry.room_size("lobby") == 2
    assert TRAIL == ["hooks.before_room_join lobby", "hooks.on_room_join lobby"] * 2
    assert first.calls == [
        ("client.before_room_join", "lobby"),
        ("client.on_room_join", "lobby"),
    ]
    stats = here.parts.stats()
    assert stats["room_joins"] == 2 and stats["rooms_active"] == 1
    await layer.close()


async def test_join_local_refusals_are_typed_and_change_nothing(pair) -> None:
    here, _ = pair
    client = await here.client()
    await here.membership.join_local(client, "a")
    with pytest.raises(AlreadyInRoom):
        await here.membership.join_local(client, "a")
    await here.membership.join_local(client, "b")
    with pytest.raises(MaxRoomsReached):
        await here.membership.join_local(client, "c")
    gone = FakeClient(await here.layer.new_channel(), here.layer)  # never registered
    with pytest.raises(ConnectionClosed):
        await here.membership.join_local(gone, "a")
    closed = await here.client()
    closed.is_closed = True
    with pytest.raises(ConnectionClosed):
        await here.membership.join_local(closed, "a")
    assert client.rooms == {"a", "b"} and here.parts.stats()["room_joins"] == 2


async def test_a_before_room_join_hook_rejects_before_the_interest_changes() -> None:
    layer = InMemoryHubLayer()
    here = await node(layer, HOOKS=f"{PATH}.Refusing", LIMITS={"max_clients_per_room": 1})
    client = await here.client()
    with pytest.raises(PermissionError, match="not lobby"):
        await here.membership.join_local(client, "lobby")
    assert client.rooms == frozenset() and "room_joins" not in here.parts.stats()
    here.parts.policy.apply(settings(LIMITS={"max_clients_per_room": 1}))
    await here.membership.join_local(client, "lobby")
    with pytest.raises(RoomFull):
        await here.membership.join_local(await here.client(), "lobby")
    await layer.close()


async def test_leave_local_and_leave_all_local(pair) -> None:
    here, _ = pair
    client, other = await here.client(), await here.client()
    with pytest.raises(NotInRoom):
        await here.membership.leave_local(client, "a")
    for room in ("b", "a"):
        await here.membership.join_local(client, room)
    await here.membership.join_local(other, "a")
    client.calls.clear()
    await here.membership.leave_all_local(client)
    assert client.rooms == frozenset()
    assert [call for call in client.calls if call[0] == "client.on_room_leave"] == [
        ("client.on_room_leave", "a"),
        ("client.on_room_leave", "b"),
    ]
    stats = here.parts.stats()
    assert stats["room_leaves"] == 2 and stats["rooms_active"] == 1  # "a" keeps a member


async def test_the_ops_table_names_every_per_client_call(pair) -> None:
    here, _ = pair
    assert set(here.membership.ops) == {
        "send_to_client",
        "join_room",
        "leave_room",
        "leave_all_rooms",
        "disconnect",
    }


@pytest.mark.parametrize("where", ["local", "remote"])
async def test_call_runs_the_same_op_on_a_local_or_a_remote_client(pair, where) -> None:
    here, there = pair
    owner = here if where == "local" else there
    client = await owner.client()
    call = here.membership.call
    await call(client.id, "join_room", "lobby")
    await call(client.id, "join_room", "hall")
    await call(client.id, "leave_room", "hall")
    assert client.rooms == {"lobby"}
    assert owner.parts.stats()["room_joins"] == 2  # counted on the client's own node
    await call(client.id, "send_to_client", "hello")
    await call(client.id, "send_to_client", b"bin", 0.5)
    assert client.sent == [("hello", None), (b"bin", 0.5)]
    await call(client.id, "leave_all_rooms")
    assert client.rooms == frozenset()
    await call(client.id, "disconnect", 4000)
    assert client.closes == [(4000, None)]


async def test_call_takes_a_client_object_as_well_as_an_id(pair) -> None:
    here, _ = pair
    client = await here.client()
    await here.membership.call(client, "join_room", "lobby")
    assert client.in_room("lobby")
    with pytest.raises(TypeError):
        await here.membership.call(42, "join_room", "lobby")  # type: ignore[arg-type]


async def test_a_remote_ops_error_comes_back_typed(pair) -> None:
    here, there = pair
    client = await there.client()
    await here.membership.call(client.id, "join_room", "lobby")
    with pytest.raises(AlreadyInRoom):
        await here.membership.call(client.id, "join_room", "lobby")
    with pytest.raises(NotInRoom):
        await here.membership.call(client.id, "leave_room", "elsewhere")


async def test_no_client_anywhere_is_client_not_found(pair) -> None:
    here, there = pair
    unknown_there = await there.layer.new_channel()  # a live node that has no such client
    unknown_here = await here.layer.new_channel()
    for client_id in (unknown_there, unknown_here, "no-node-in-this-name"):
        with pytest.raises(ClientNotFound):
            await here.membership.call(client_id, "send_to_client", "x")


async def test_a_client_whose_node_is_gone_is_client_not_found(pair) -> None:
    here, there = pair
    client = await there.client()
    await there.layer.close()
    with pytest.raises(ClientNotFound, match="is gone"):
        await here.membership.call(client.id, "send_to_client", "x")
    assert client.sent == []


async def test_a_private_bus_never_calls_another_node() -> None:
    layer, elsewhere = InMemoryHubLayer(), InMemoryHubLayer()
    here = await node(layer)
    foreign = await elsewhere.new_channel()
    with pytest.raises(ClientNotFound):
        await here.membership.call(foreign, "disconnect")
    await layer.close()
    await elsewhere.close()
