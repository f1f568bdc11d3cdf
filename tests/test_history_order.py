"""RoomSequence: one history room's messages in offset order, none twice."""

from __future__ import annotations

from wshub_channels.core.history import Position
from wshub_channels.core.historyorder import RoomSequence


def test_in_order_messages_go_out_at_once() -> None:
    seq: RoomSequence[str] = RoomSequence()
    seq.seed(Position(4, "e"))
    assert seq.offer(5, "e", "a") == [(5, "a")]
    assert seq.offer(6, "e", "b") == [(6, "b")]
    assert seq.position == Position(6, "e") and seq.missing() is None


def test_a_message_ahead_waits_for_the_gap() -> None:
    seq: RoomSequence[str] = RoomSequence()
    seq.seed(Position(0, "e"))
    assert seq.offer(2, "e", "b") == []
    assert seq.offer(3, "e", "c") == []
    assert seq.missing() == (1, 1)
    assert seq.offer(1, "e", "a") == [(1, "a"), (2, "b"), (3, "c")]
    assert seq.missing() is None


def test_duplicates_and_late_messages_are_dropped() -> None:
    seq: RoomSequence[str] = RoomSequence()
    seq.seed(Position(0, "e"))
    assert seq.offer(1, "e", "a") == [(1, "a")]
    assert seq.offer(1, "e", "a again") == []
    assert seq.offer(3, "e", "c") == []
    assert seq.offer(3, "e", "c again") == []
    assert seq.fill([(2, "b")]) == [(2, "b"), (3, "c")]


def test_fill_from_the_store_then_skip_what_it_lost() -> None:
    seq: RoomSequence[str] = RoomSequence()
    seq.seed(Position(10, "e"))
    assert seq.offer(15, "e", "o") == []
    assert seq.missing() == (11, 14)
    assert seq.fill([(12, "l"), (11, "k")]) == [(11, "k"), (12, "l")]
    assert seq.missing() == (13, 14)
    assert seq.skip_gap() == [(15, "o")]
    assert seq.position == Position(15, "e")
    assert seq.offer(14, "e", "late") == []


def test_a_new_epoch_starts_again() -> None:
    seq: RoomSequence[str] = RoomSequence()
    seq.seed(Position(7, "old"))
    assert seq.offer(9, "old", "held") == []
    assert seq.offer(1, "new", "x") == [(1, "x")]
    assert seq.missing() is None and seq.position == Position(1, "new")
    assert seq.offer(3, "newer", "c") == []  # offsets 1 and 2 of "newer" come first
    assert seq.missing() == (1, 2)


def test_a_room_first_seen_without_state_waits_for_its_first_offsets() -> None:
    seq: RoomSequence[str] = RoomSequence()
    seq.seed(Position(0, ""))
    assert seq.offer(2, "e", "b") == []
    assert seq.offer(1, "e", "a") == [(1, "a"), (2, "b")]


def test_without_a_seed_the_first_message_starts_it() -> None:
    seq: RoomSequence[str] = RoomSequence()
    assert seq.position is None
    assert seq.offer(41, "e", "a") == [(41, "a")]
    assert seq.offer(42, "e", "b") == [(42, "b")]


def test_seed_keeps_a_running_sequence_of_the_same_epoch() -> None:
    seq: RoomSequence[str] = RoomSequence()
    seq.seed(Position(3, "e"))
    assert seq.offer(4, "e", "a") == [(4, "a")]
    assert seq.seed(Position(2, "e")) == []  # a later join read an older position: no restart
    assert seq.offer(5, "e", "b") == [(5, "b")]
    seq.seed(Position(0, "f"))
    assert seq.offer(1, "f", "c") == [(1, "c")]


def test_seed_moves_forward_past_what_the_store_has() -> None:
    """Offsets up to a join's position are before the join: never awaited, never sent."""
    seq: RoomSequence[str] = RoomSequence()
    assert seq.offer(3, "e", "c") == [(3, "c")]
    assert seq.offer(6, "e", "f") == []  # held: 4 and 5 are missing
    assert seq.offer(9, "e", "i") == []
    assert seq.seed(Position(5, "e")) == [(6, "f")]
    assert seq.missing() == (7, 8)
    assert seq.offer(4, "e", "d") == []
