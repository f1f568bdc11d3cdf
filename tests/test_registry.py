"""The registry: clients with their queues, users and rooms read from the interest table."""

from __future__ import annotations

from typing import Any

import pytest

from wshub_channels.config import Limits
from wshub_channels.core.membership import ROOMS, USERS, Interest, Registry
from wshub_channels.errors import (
    MaxConnectionsReached,
    MaxRoomsReached,
    MaxUserConnectionsReached,
    RoomFull,
)

pytestmark = pytest.mark.unit


class _Client:
    def __init__(self, client_id: str) -> None:
        self.id = client_id


class _Queue:
    closed = False
    queued = 0

    def push(self, message: dict[str, Any]) -> bool:
        return True

    async def offer(self, message: dict[str, Any], timeout: float) -> None:
        pass


def _registry(*ids: str) -> tuple[Registry, Interest, dict[str, _Queue]]:
    interest = Interest()
    registry = Registry(interest)
    queues = {}
    for client_id in ids:
        queues[client_id] = _Queue()
        registry.add(_Client(client_id), queues[client_id])  # type: ignore[arg-type]
    return registry, interest, queues


def test_clients_are_found_by_id_and_forgotten_on_remove() -> None:
    """add makes a client findable; remove returns it once and forgets its queue."""
    registry, _, _ = _registry("a", "b")
    assert len(registry) == 2 and "a" in registry
    assert registry.get("a").id == "a"  # type: ignore[union-attr]
    assert registry.remove("a").id == "a"  # type: ignore[union-attr]
    assert registry.remove("a") is None and "a" not in registry
    assert [client_id for client_id, _ in registry.queues(None)] == ["b"]


def test_rooms_and_users_come_from_the_interest_table() -> None:
    """Room and user lookups read the layer's table; no second copy to keep in step."""
    registry, interest, _ = _registry("a", "b", "c")
    interest.add(ROOMS, "lobby", "a", 0)
    interest.add(ROOMS, "lobby", "b", 0)
    interest.add(ROOMS, "games", "a", 0)
    interest.add(USERS, "u1", "a", 0)
    interest.add(USERS, "u1", "c", 0)
    interest.add(USERS, "u2", "b", 0)
    assert sorted(c.id for c in registry.room_clients("lobby")) == ["a", "b"]
    assert registry.room_size("lobby") == 2 and registry.room_size("none") == 0
    assert sorted(registry.room_names()) == ["games", "lobby"]
    assert registry.rooms_of("a") == {"lobby", "games"} and registry.rooms_of("c") == frozenset()
    assert sorted(c.id for c in registry.user_clients("u1")) == ["a", "c"]
    assert registry.user_count() == 2
    interest.discard(ROOMS, "lobby", "a")
    assert registry.rooms_of("a") == {"games"}


def test_queues_of_a_room_skip_members_that_are_not_clients() -> None:
    """A room member with no registered client (a stale id) yields no queue."""
    registry, interest, queues = _registry("a")
    interest.add(ROOMS, "lobby", "a", 0)
    interest.add(ROOMS, "lobby", "ghost", 0)
    assert list(registry.queues(ROOMS, "lobby")) == [("a", queues["a"])]
    assert list(registry.queues(ROOMS, "empty")) == []


def test_reservations_count_toward_the_connection_limits() -> None:
    """Handshake slots count like connections until given back."""
    registry, interest, _ = _registry("a")
    limits = Limits(max_connections=3, max_connections_per_user=2)
    registry.reserve("u1", limits)
    anonymous = registry.reserve(None, limits)
    with pytest.raises(MaxConnectionsReached):
        registry.reserve(None, limits)
    assert registry.pending == 2 and registry.pending_users == {"u1": 1}
    registry.unreserve(anonymous)
    interest.add(USERS, "u1", "a", 0)
    with pytest.raises(MaxUserConnectionsReached):
        registry.reserve("u1", limits)  # one connected + one pending = 2
    assert registry.pending == 1 and registry.pending_users == {"u1": 1}  # refused: unchanged
    with pytest.raises(MaxUserConnectionsReached):
        registry.check_user_limit("u1", limits)  # counts the handshake in progress
    registry.check_user_limit("u2", limits)


def test_a_slot_is_given_back_once() -> None:
    """unreserve releases a slot under its user id once; a second call changes nothing."""
    registry, _, _ = _registry()
    limits = Limits(max_connections=1)
    slot = registry.reserve("u1", limits)
    assert slot.held and slot.user_id == "u1"
    assert registry.unreserve(slot) is True
    assert registry.unreserve(slot) is False
    assert not slot.held
    assert registry.pending == 0 and registry.pending_users == {}
    registry.reserve(None, limits)  # the one slot is free again
    assert registry.pending == 1


def test_moving_a_slot_checks_the_new_user_and_frees_the_old() -> None:
    """move counts the slot under the new id (limit checked there) and no longer the old."""
    registry, _, _ = _registry("a")
    limits = Limits(max_connections_per_user=1)
    slot = registry.reserve("scope-user", limits)
    registry.move(slot, "u1", limits)
    assert slot.user_id == "u1" and registry.pending_users == {"u1": 1}
    registry.reserve("scope-user", limits)  # not locked out by the moved slot
    registry.move(slot, "u1", limits)  # to the same id: nothing to check
    registry.move(slot, None, limits)
    assert registry.pending_users == {"scope-user": 1}
    registry.move(slot, "u2", limits)
    registry.unreserve(slot)
    assert registry.pending == 1 and registry.pending_users == {"scope-user": 1}


def test_a_refused_move_changes_nothing() -> None:
    """At the new user's limit (connections or other handshakes), move raises and keeps the slot."""
    registry, interest, _ = _registry("a")
    limits = Limits(max_connections_per_user=1)
    interest.add(USERS, "taken", "a", 0)
    other = registry.reserve("busy", limits)
    slot = registry.reserve("mine", limits)
    for full in ("taken", "busy"):
        with pytest.raises(MaxUserConnectionsReached):
            registry.move(slot, full, limits)
        assert slot.user_id == "mine" and slot.held
        assert registry.pending_users == {"busy": 1, "mine": 1}
    registry.unreserve(other)
    registry.move(slot, "busy", limits)
    assert registry.pending_users == {"busy": 1}


def test_moving_a_released_slot_only_records_the_id() -> None:
    """A slot already given back counts nowhere; move just notes the id."""
    registry, _, _ = _registry()
    slot = registry.reserve("u1", Limits())
    registry.unreserve(slot)
    registry.move(slot, "u2", Limits(max_connections_per_user=1))
    assert slot.user_id == "u2" and registry.pending == 0 and registry.pending_users == {}


def test_join_checks_rooms_per_client_and_clients_per_room() -> None:
    """check_join raises MaxRoomsReached and RoomFull at their limits, not before."""
    registry, interest, _ = _registry("a", "b")
    limits = Limits(max_rooms_per_client=1, max_clients_per_room=1)
    registry.check_join("a", "lobby", limits)
    interest.add(ROOMS, "lobby", "a", 0)
    with pytest.raises(MaxRoomsReached):
        registry.check_join("a", "games", limits)
    with pytest.raises(RoomFull):
        registry.check_join("b", "lobby", limits)
    registry.check_join("b", "lobby", Limits())  # unlimited
