"""Pure modules: names, channel queue and interest bookkeeping (envelopes: tests/layers)."""

from __future__ import annotations

import asyncio
import re

import pytest

from wshub_channels.errors import EmptyRoomName, InvalidName
from wshub_channels.layers.channelqueue import ChannelQueue
from wshub_channels.layers.interest import Interest
from wshub_channels.layers.names import (
    make_node_id,
    subject_token,
    validate_room,
    validate_user_id,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "name", ["lobby", "a.b.c", "with space", "*>", "日本語 ルーム", "x" * 256, "🎉", "a\x00b"]
)
def test_subject_token_is_safe_for_nats_and_redis(name: str) -> None:
    """Every name maps to [a-z0-9]+ with no '.', space, '*' or '>'."""
    assert re.fullmatch(r"[a-z0-9]+", subject_token(name))


def test_subject_token_is_injective_on_distinct_names() -> None:
    """Distinct names get distinct tokens, including names that differ only in case."""
    names = ["Lobby", "lobby", "lobby.", "lobby ", "l" * 200, "l" * 201]
    assert len({subject_token(n) for n in names}) == len(names)


def test_room_and_user_validation() -> None:
    """Rooms and user ids are non-empty str up to 256 characters; others get typed errors."""
    assert validate_room("ü" * 256) == "ü" * 256
    with pytest.raises(EmptyRoomName):
        validate_room("")
    with pytest.raises(InvalidName):
        validate_room("x" * 257)
    with pytest.raises(InvalidName):
        validate_room(5)
    with pytest.raises(InvalidName):
        validate_user_id("")
    assert issubclass(InvalidName, ValueError)


def test_node_ids_are_twelve_characters_with_prefix() -> None:
    """Node ids are 12 characters, start with the configured prefix, and differ."""
    ids = {make_node_id("web-1") for _ in range(100)}
    assert len(ids) == 100 and all(len(i) == 12 and i.startswith("web-1") for i in ids)
    with pytest.raises(ValueError, match="NODE_ID"):
        make_node_id("far-too-long")


async def test_channel_queue_capacity_expiry_and_handoff() -> None:
    """A queue refuses past capacity, drops expired heads, and hands off to a waiter."""
    queue = ChannelQueue("q", capacity=2, expiry=10)
    assert queue.put("a", now=0) and queue.put("b", now=0) and not queue.put("c", now=0)
    assert queue.put("d", now=11)  # both expired at t=10, so room again
    assert queue.expired == 2
    assert queue.get_nowait(now=11) == (True, "d")
    waiter = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    assert queue.put("direct", now=12) and not queue.items
    assert await waiter == "direct"


def test_interest_reports_first_and_last_member() -> None:
    """add says when a name gains its first member; discard when it loses the last."""
    interest = Interest()
    assert interest.add("r", "room", "a", 0) is True
    assert interest.add("r", "room", "b", 0) is False
    assert interest.add("g", "room", "a", 0) is True  # a group is not a room
    assert interest.discard("r", "room", "a") is False
    assert interest.remove_member("b") == [("r", "room")]
    assert interest.remove_member("a") == [("g", "room")]
    assert interest.sizes() == {"names": 0, "memberships": 0, "members": 0}
