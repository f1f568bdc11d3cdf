"""Connections: handshake slots, registration, user ids, leaving, waiting until empty, idle.

Built as ``Hub.__init__`` builds it, on a private ``InMemoryHubLayer``; the
clients and their queues are the small fakes of :mod:`tests.hub.kit`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests.hub.kit import FakeClient, FakeQueue, Parts, make_parts, settings
from wshub_channels.core.membership import ROOMS, USERS
from wshub_channels.core.ratelimit import clock
from wshub_channels.errors import MaxConnectionsReached, MaxUserConnectionsReached
from wshub_channels.hub.connections import Connections
from wshub_channels.layers import InMemoryHubLayer
from wshub_channels.testing import scaled


@pytest.fixture
async def layer() -> AsyncIterator[InMemoryHubLayer]:
    made = InMemoryHubLayer()
    yield made
    await made.close()


def build(layer: InMemoryHubLayer, **wshub: object) -> tuple[Connections, Parts]:
    parts = make_parts(layer, settings(**wshub))
    return Connections(*parts.args()), parts


def limit_errors(parts: Parts) -> int:
    return int(parts.stats()["errors"].get("connection_limit", 0))


async def test_a_reserved_slot_counts_toward_max_connections_until_given_back(layer) -> None:
    conns, parts = build(layer, LIMITS={"max_connections": 1})
    slot = conns.reserve(None)
    with pytest.raises(MaxConnectionsReached):
        conns.reserve(None)
    assert limit_errors(parts) == 1
    conns.unreserve(slot)
    conns.unreserve(slot)  # again: a no-op, the count does not go below zero
    assert parts.registry.pending == 0
    conns.unreserve(conns.reserve(None))


async def test_register_turns_the_slot_into_the_connection_in_one_step(layer) -> None:
    conns, parts = build(layer, LIMITS={"max_connections": 1, "max_connections_per_user": 1})
    slot = conns.reserve("alice")
    client = FakeClient("c!1", layer, "alice")
    await conns.register(client, FakeQueue(), slot)
    assert not slot.held
    assert parts.registry.pending == 0 and parts.registry.pending_users == {}
    assert len(conns) == 1
    assert parts.registry.get("c!1") is client
    assert parts.registry.user_clients("alice") == [client]
    with pytest.raises(MaxConnectionsReached):  # the connection holds the only place
        conns.reserve(None)


async def test_register_without_a_slot_makes_the_client_reachable(layer) -> None:
    conns, parts = build(layer)
    queue = FakeQueue()
    await conns.register(FakeClient("c!1", layer), queue)
    assert dict(parts.registry.queues(None)) == {"c!1": queue}
    assert parts.registry.user_count() == 0  # no user id, no user interest


async def test_move_reservation_over_the_user_cap_raises_and_keeps_the_old_user(layer) -> None:
    conns, parts = build(layer, LIMITS={"max_connections_per_user": 1})
    held = conns.reserve("bob")
    slot = conns.reserve("alice")
    with pytest.raises(MaxUserConnectionsReached):
        conns.move_reservation(slot, "bob")
    assert slot.user_id == "alice"
    assert parts.registry.pending_users == {"alice": 1, "bob": 1}
    assert limit_errors(parts) == 1
    conns.unreserve(held)
    conns.move_reservation(slot, "bob")
    assert parts.registry.pending_users == {"bob": 1}


async def test_unregister_forgets_the_client_its_rooms_and_counts_emptied_rooms(layer) -> None:
    conns, parts = build(layer)
    leaving, staying = FakeClient("c!1", layer, "alice"), FakeClient("c!2", layer)
    await conns.register(leaving, FakeQueue())
    await conns.register(staying, FakeQueue())
    for client, room in ((leaving, "shared"), (staying, "shared"), (leaving, "alone")):
        await layer.add_interest(ROOMS, room, client.id)
    parts.policy.metrics.increment_rooms()
    parts.policy.metrics.increment_rooms()  # the two rooms exist
    await conns.unregister(leaving)
    assert "c!1" not in parts.registry and len(conns) == 1
    assert layer.interest.names_of("c!1", ROOMS) == []
    assert layer.interest.members(USERS, "alice") is None
    assert parts.registry.room_names() == ["shared"]
    assert parts.stats()["rooms_active"] == 1  # only "alone" emptied


async def test_unregister_of_an_unknown_client_changes_nothing(layer) -> None:
    conns, parts = build(layer)
    await conns.register(FakeClient("c!1", layer), FakeQueue())
    await conns.unregister(FakeClient("c!other", layer))
    assert len(conns) == 1
    assert "rooms_active" not in parts.stats()


async def test_change_user_moves_the_client_between_users(layer) -> None:
    conns, parts = build(layer)
    client = FakeClient("c!1", layer, "alice")
    await conns.register(client, FakeQueue())
    client.user_id = "bob"
    await conns.change_user(client, "alice", "bob")
    assert parts.registry.user_names() == ["bob"]
    assert parts.registry.user_clients("bob") == [client]
    client.user_id = None
    await conns.change_user(client, "bob", None)
    assert parts.registry.user_count() == 0


async def test_change_user_refused_by_pending_handshakes_leaves_the_old_user(layer) -> None:
    conns, parts = build(layer, LIMITS={"max_connections_per_user": 1})
    client = FakeClient("c!1", layer, "alice")
    await conns.register(client, FakeQueue())
    conns.reserve("bob")  # bob's handshake in progress holds bob's only slot
    with pytest.raises(MaxUserConnectionsReached):
        await conns.change_user(client, "alice", "bob")
    assert parts.registry.user_names() == ["alice"]
    assert limit_errors(parts) == 1


async def test_change_user_of_an_unregistered_client_is_ignored(layer) -> None:
    conns, parts = build(layer)
    await conns.change_user(FakeClient("c!1", layer), None, "bob")
    assert parts.registry.user_count() == 0


async def test_wait_empty_returns_at_once_when_no_client_is_left(layer) -> None:
    conns, _ = build(layer)
    async with asyncio.timeout(scaled(1)):
        await conns.wait_empty(timeout=3600)


async def test_wait_empty_returns_when_the_last_client_leaves(layer) -> None:
    conns, _ = build(layer)
    first, second = FakeClient("c!1", layer), FakeClient("c!2", layer)
    await conns.register(first, FakeQueue())
    await conns.register(second, FakeQueue())
    waiting = asyncio.ensure_future(conns.wait_empty(timeout=3600))
    await asyncio.sleep(0)
    await conns.unregister(first)
    await asyncio.sleep(0)
    assert not waiting.done()
    await conns.unregister(second)
    async with asyncio.timeout(scaled(1)):
        await waiting


async def test_wait_empty_gives_up_after_its_timeout_without_raising(layer) -> None:
    conns, _ = build(layer)
    await conns.register(FakeClient("c!1", layer), FakeQueue())
    loop = asyncio.get_running_loop()
    started = loop.time()
    await conns.wait_empty(timeout=0.05)
    assert loop.time() - started >= 0.04
    assert len(conns) == 1


async def test_close_idle_closes_only_silent_clients_and_counts_them(layer) -> None:
    conns, parts = build(layer, CONFIG={"idle_timeout": 0.2})
    silent, talking = FakeClient("c!1", layer), FakeClient("c!2", layer)
    await conns.register(silent, FakeQueue())
    await conns.register(talking, FakeQueue())
    sweeper = asyncio.ensure_future(conns.close_idle())
    try:
        deadline = asyncio.get_running_loop().time() + scaled(2)
        while not silent.closes and asyncio.get_running_loop().time() < deadline:
            talking.last_seen = clock()
            await asyncio.sleep(0.02)
    finally:
        sweeper.cancel()
    assert silent.closes == [(1000, "idle timeout")]
    assert talking.closes == []
    assert parts.stats()["errors"]["idle_timeout"] == 1
