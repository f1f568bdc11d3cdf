"""The presence table and the heartbeat planner, as pure logic: full tables, deltas,
chunks, gaps, twins and the trust a reader may put in the counts."""

from __future__ import annotations

import random
from typing import Any

import msgpack
import pytest

from wshub_channels.core.presence import CHUNK_BYTES, BeatPlanner, PresenceTable, cut

pytestmark = pytest.mark.unit

HEAD = {"node_id": "n1", "host": "h", "pid": 7, "clients": 3, "users": 2}


class Node:
    """One sending node: its rooms, and a planner that turns them into beats."""

    def __init__(self, rooms: dict[str, int] | None = None, **planner: Any) -> None:
        self.rooms = dict(rooms or {})
        self.planner = BeatPlanner(**planner)

    def set(self, room: str, count: int) -> None:
        if count:
            self.rooms[room] = count
        else:
            self.rooms.pop(room, None)
        self.planner.touch(room)

    def beat(self) -> list[dict[str, Any]]:
        return self.planner.plan(HEAD, lambda: list(self.rooms), lambda r: self.rooms.get(r, 0))


def feed(table: PresenceTable, messages: list[dict[str, Any]], now: float = 0.0) -> bool:
    """Give every message to the table; return True if one asked for a full table."""
    return any([table.beat(m, now).want_full for m in messages])


def test_first_beat_is_full_then_deltas_carry_only_changes() -> None:
    node = Node({"a": 1, "b": 2})
    first = node.beat()
    assert [m["base"] for m in first] == [None] and first[0]["rooms"] == {"a": 1, "b": 2}
    node.set("a", 0)
    node.set("c", 5)
    delta = node.beat()
    assert delta[0]["base"] == first[0]["seq"] and delta[0]["rooms"] == {"a": 0, "c": 5}
    assert node.beat()[0]["rooms"] == {}  # nothing changed: an empty delta
    table = PresenceTable()
    assert not feed(table, first + delta)
    (info,) = table.nodes()
    assert info.rooms == {"b": 2, "c": 5} and info.clients == 3 and info.room_count == 2
    assert table.rooms_known and table.room_count("c") == 5 and table.client_count() == 3


def test_a_full_table_comes_every_nth_beat_and_when_asked() -> None:
    node = Node({"a": 1}, full_every=4)
    bases = [node.beat()[0]["base"] for _ in range(9)]
    assert [b is None for b in bases] == [True, False, False, False, True] + [False] * 3 + [True]
    node.planner.want_full()
    assert node.beat()[0]["base"] is None


def test_a_missed_delta_asks_for_a_full_table_which_heals_the_table() -> None:
    node = Node({"a": 1})
    table = PresenceTable()
    feed(table, node.beat())
    node.set("b", 1)
    node.beat()  # lost on the way
    node.set("c", 1)
    assert feed(table, node.beat())  # a gap: the table asks for the full table
    assert not table.rooms_known
    assert table.room_count("b") == 0  # never applied out of order
    node.planner.want_full()
    assert not feed(table, node.beat())
    assert table.rooms_known and table.nodes()[0].rooms == {"a": 1, "b": 1, "c": 1}


def test_a_late_joiner_hearing_a_delta_first_asks_for_the_table() -> None:
    node = Node({"a": 1})
    node.beat()
    node.set("b", 1)
    table = PresenceTable()
    assert feed(table, node.beat())
    assert table.client_count() == 3  # totals are in every message, known at once
    assert not table.rooms_known


def test_large_tables_are_split_into_chunks_that_assemble() -> None:
    rooms = {f"room-{i:06d}": i % 7 + 1 for i in range(100_000)}
    node = Node(rooms)
    messages = node.beat()
    assert len(messages) > 1 and {m["parts"] for m in messages} == {len(messages)}
    for m in messages:
        size = len(msgpack.packb(m, use_bin_type=True))
        assert size < CHUNK_BYTES * 1.2, size
    table = PresenceTable()
    assert not feed(table, messages[:-1])
    assert not table.rooms_known  # incomplete: not trusted
    feed(table, messages[-1:])
    assert table.rooms_known and table.nodes()[0].rooms == rooms


def test_an_incomplete_beat_is_dropped_when_a_newer_one_arrives() -> None:
    node = Node({f"r{i:05d}": 1 for i in range(20_000)})
    first = node.beat()
    table = PresenceTable()
    feed(table, first[:1])  # the rest of the full table is lost
    node.set("x", 1)
    assert feed(table, node.beat())  # the delta names a beat never completed
    feed(table, first[1:])  # stragglers of the older beat are ignored
    assert not table.rooms_known


def test_cut_keeps_every_room_once_in_order() -> None:
    names = [f"r{i}" for i in range(5000)]
    parts = cut(names, budget=1000)
    assert len(parts) > 10 and all(parts)
    assert [name for part in parts for name in part] == names
    assert cut([]) == [[]]
    assert cut(["x" * 5000], budget=100) == [["x" * 5000]]  # a long name goes alone


def test_two_processes_with_one_node_id_are_both_kept_and_reported() -> None:
    table = PresenceTable()
    assert table.beat({**Node().beat()[0], "pid": 1}, 0).twin is None
    result = table.beat({**Node().beat()[0], "pid": 2}, 0)
    assert result.new and result.twin is not None and result.twin.pid == 1
    assert len(table) == 2 and table.client_count() == 6
    assert table.leave("n1", 1) is not None and "n1" in table


def test_newest_says_when_the_last_beat_came() -> None:
    table = PresenceTable()
    assert table.newest() is None
    feed(table, [{**Node().beat()[0], "node_id": "x"}], now=3.0)
    feed(table, [{**Node().beat()[0], "node_id": "y"}], now=5.0)
    assert table.newest() == 5.0


@pytest.mark.parametrize(
    "bad",
    [{"pid": "7"}, {"rooms": []}, {"part": 2}, {"base": "x"}, {"node_id": 5}, {"seq": None}],
)
def test_malformed_beats_raise_type_error(bad: dict[str, Any]) -> None:
    with pytest.raises(TypeError):
        PresenceTable().beat({**Node().beat()[0], **bad}, 0)


def test_sums_follow_beats_deltas_and_departures() -> None:
    """The O(1) client and room sums equal a recount after any sequence of beats."""
    a, b = Node({"x": 2, "y": 1}), Node({"x": 5})
    table = PresenceTable()
    feed(table, [{**m, "node_id": "a"} for m in a.beat()])
    feed(table, [{**m, "node_id": "b", "clients": 9} for m in b.beat()])
    assert table.client_count() == 12 and table.room_count("x") == 7
    a.set("x", 0)
    a.set("z", 4)
    feed(table, [{**m, "node_id": "a", "clients": 1} for m in a.beat()])
    assert table.client_count() == 10
    assert (table.room_count("x"), table.room_count("y"), table.room_count("z")) == (5, 1, 4)
    a.planner.want_full()
    a.set("y", 0)
    feed(table, [{**m, "node_id": "a", "clients": 1} for m in a.beat()])
    assert table.room_count("y") == 0 and table.room_count("z") == 4
    table.leave("b", 7)
    assert table.client_count() == 1 and table.room_count("x") == 0
    table.expire(now=100, interval=1)
    assert table.client_count() == 0 and table.room_count("z") == 0


def test_a_negative_room_count_is_malformed() -> None:
    msg = {**Node().beat()[0], "rooms": {"x": -1}}
    with pytest.raises(TypeError):
        PresenceTable().beat(msg, 0)


def test_a_repeated_message_changes_nothing() -> None:
    node = Node({"a": 1})
    table = PresenceTable()
    feed(table, node.beat())
    node.set("b", 2)
    delta = node.beat()
    assert not feed(table, delta + delta)
    assert table.rooms_known and table.room_count("b") == 2


def test_parts_of_a_full_table_apply_as_they_arrive_and_drop_the_rest_at_the_end() -> None:
    node = Node({f"r{i:05d}": 1 for i in range(20_000)})
    table = PresenceTable()
    feed(table, node.beat())
    for i in range(10_000):
        node.set(f"r{i:05d}", 0)
    node.set("new", 3)
    node.planner.want_full()
    full = node.beat()
    assert len(full) > 2
    feed(table, full[:-1])
    assert table.room_count("r00000") == 1  # a room the new table lacks: counted till the end
    feed(table, full[-1:])
    assert table.room_count("r00000") == 0 and table.room_count("new") == 3
    assert len(table.nodes()[0].rooms) == 10_001 and table.rooms_known


def test_cached_room_totals_match_a_recount_through_random_changes() -> None:
    """Rooms asked about keep their totals in step with fulls, deltas, gaps and departures."""
    rng = random.Random(7)
    nodes = {name: Node({f"r{i}": 1 for i in range(5)}) for name in ("a", "b", "c")}
    table = PresenceTable()
    for step in range(300):
        name = rng.choice(list(nodes))
        node = nodes[name]
        node.set(f"r{rng.randrange(8)}", rng.randrange(3))
        if rng.random() < 0.1:
            node.planner.want_full()
        messages = [{**m, "node_id": name} for m in node.beat()]
        if rng.random() < 0.05:
            continue  # lost: the next delta from this node leaves a gap
        if feed(table, messages, now=step):
            node.planner.want_full()
        if rng.random() < 0.02:
            table.leave(name, 7)
        for room in (f"r{i}" for i in range(8)):
            recount = sum(info.rooms.get(room, 0) for info in table.nodes())
            assert table.room_count(room) == recount, (step, room)
