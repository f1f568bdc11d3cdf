"""The pure parts of cluster queries: page slices across nodes, exact user counting by
digests, and the records that cross the bus."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from wshub_channels.core.listing import (
    ClientInfo,
    RoomEvent,
    buckets_for,
    count_distinct,
    plan_slices,
    user_digests,
)

pytestmark = pytest.mark.unit

COUNTS = [("b", 3), ("a", 4), ("c", 0), ("d", 5)]


def test_slices_cover_each_page_in_node_order() -> None:
    assert plan_slices(COUNTS, 0, 3) == [("a", 0, 3)]
    assert plan_slices(COUNTS, 3, 3) == [("a", 3, 1), ("b", 0, 2)]
    assert plan_slices(COUNTS, 6, 100) == [("b", 2, 1), ("d", 0, 5)]
    assert plan_slices(COUNTS, 12, 5) == []
    assert plan_slices([], 0, 10) == []


@pytest.mark.parametrize("limit", [1, 2, 5, 7, 12, 13])
def test_consecutive_pages_neither_repeat_nor_skip(limit: int) -> None:
    everyone = [(node, i) for node, count in sorted(COUNTS) for i in range(count)]
    seen = []
    for offset in range(0, 12, limit):
        for node, start, size in plan_slices(COUNTS, offset, limit):
            seen.extend((node, i) for i in range(start, start + size))
    assert seen == everyone


def test_negative_offsets_and_limits_are_refused() -> None:
    with pytest.raises(ValueError):
        plan_slices(COUNTS, -1, 3)
    with pytest.raises(ValueError):
        plan_slices(COUNTS, 0, -3)


def test_digests_count_distinct_users_across_nodes_and_buckets() -> None:
    node1 = [f"u{i}" for i in range(0, 6000)]
    node2 = [f"u{i}" for i in range(4000, 9000)]  # 2,000 users on both nodes
    assert count_distinct([user_digests(node1), user_digests(node2)]) == 9000
    buckets = 4
    total = sum(
        count_distinct([user_digests(node1, b, buckets), user_digests(node2, b, buckets)])
        for b in range(buckets)
    )
    assert total == 9000
    sizes = [len(user_digests(node1, b, buckets)) // 8 for b in range(buckets)]
    assert sum(sizes) == 6000 and min(sizes) > 1000  # the hash spreads the users
    with pytest.raises(ValueError):
        count_distinct([b"short"])


def test_buckets_keep_one_node_answer_under_the_payload_limit() -> None:
    assert buckets_for(1000, 1024 * 1024) == 1
    assert buckets_for(1_000_000, 1024 * 1024) == 16  # 8 MB of digests, 512 KiB each
    assert buckets_for(1_000_000, None) == 2
    assert buckets_for(0, 1024) == 1


def test_client_info_and_room_event_round_trip() -> None:
    since = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
    info = ClientInfo("p.n!c", "n", "u", ["a"], {"k": 1}, "127.0.0.1", "ua", since, 2, 3, 1)
    assert ClientInfo.from_wire(info.to_wire()) == info
    assert ClientInfo.from_wire({"id": "x", "node": "n", "future": 1}) == ClientInfo("x", "n")
    with pytest.raises(TypeError):
        ClientInfo.from_wire({"node": "n"})
    event = RoomEvent("r", "joined", "p.n!c", None, "n")
    assert RoomEvent.from_wire("r", event.to_wire()) == event
    for bad in (["sneezed", "c", None, "n"], ["left", 5, None, "n"], "x", ["left", "c"]):
        with pytest.raises(TypeError):
            RoomEvent.from_wire("r", bad)
