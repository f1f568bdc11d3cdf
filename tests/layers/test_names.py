"""Names: subject tokens, room and user validation, node ids."""

from __future__ import annotations

import os
import re

import pytest

from wshub_channels.core.names import (
    make_node_id,
    process_inbox,
    subject_token,
    validate_room,
    validate_user_id,
)
from wshub_channels.errors import EmptyRoomName, InvalidName

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


def test_a_process_inbox_names_this_process() -> None:
    """Inboxes carry the pid: a process forked after its layer was built gets its own."""
    assert process_inbox("_INBOX.node") == f"_INBOX.node.p{os.getpid()}"
