"""The pure send queue: drop policies at capacity, order, coalescing in UTF-8 bytes."""

from __future__ import annotations

import pytest

from wshub_channels.config import Config, DropPolicy
from wshub_channels.core.sendqueue import Frame, Offer, SendQueue
from wshub_channels.utf8 import frame_size, utf8_size

pytestmark = pytest.mark.unit


def drain(queue: SendQueue) -> list[Frame]:
    frames = []
    while (frame := queue.next_frame()) is not None:
        frames.append(frame)
    return frames


def filled(policy: DropPolicy, size: int = 3) -> SendQueue:
    queue = SendQueue(size, policy)
    for n in range(size):
        assert queue.offer(f"m{n}") == Offer(queued=True)
    assert queue.full and len(queue) == size
    return queue


def test_frames_come_out_in_the_order_offered() -> None:
    """Text and binary frames leave in the order they were offered, then None."""
    queue = SendQueue(10)
    offered: list[Frame] = ["a", b"b", "c", "", b"", "d"]
    for frame in offered:
        assert queue.offer(frame).queued
    assert drain(queue) == offered
    assert queue.next_frame() is None and not queue and len(queue) == 0


def test_drop_newest_at_capacity_discards_the_offered_frame() -> None:
    """DROP_NEWEST: the new frame is refused and reported; the queue keeps the oldest."""
    queue = filled(DropPolicy.DROP_NEWEST)
    assert queue.offer("late") == Offer(queued=False, dropped="late", disconnect=False)
    assert drain(queue) == ["m0", "m1", "m2"]


def test_drop_oldest_at_capacity_evicts_the_head() -> None:
    """DROP_OLDEST: the oldest frame is evicted and reported; the new one is queued last."""
    queue = filled(DropPolicy.DROP_OLDEST)
    assert queue.offer("m3") == Offer(queued=True, dropped="m0", disconnect=False)
    assert queue.offer("m4") == Offer(queued=True, dropped="m1", disconnect=False)
    assert len(queue) == 3
    assert drain(queue) == ["m2", "m3", "m4"]


def test_disconnect_at_capacity_drops_and_asks_to_disconnect() -> None:
    """DISCONNECT: the new frame is refused and reported, and the caller is told to close."""
    queue = filled(DropPolicy.DISCONNECT)
    assert queue.offer(b"late") == Offer(queued=False, dropped=b"late", disconnect=True)
    assert drain(queue) == ["m0", "m1", "m2"]


def test_room_frees_as_frames_leave() -> None:
    """Taking one frame out of a full queue makes room for exactly one more."""
    queue = filled(DropPolicy.DROP_NEWEST, size=2)
    assert queue.next_frame() == "m0" and not queue.full
    assert queue.offer("m2") == Offer(queued=True)
    assert queue.offer("m3").dropped == "m3"
    assert drain(queue) == ["m1", "m2"]


def test_an_empty_dropped_frame_is_still_reported() -> None:
    """A dropped "" is reported as "" (not None), so no drop goes unseen."""
    queue = SendQueue(1)
    queue.offer("x")
    assert queue.offer("").dropped == ""


def test_utf8_size_counts_bytes_not_characters() -> None:
    """ASCII is one byte, é two, € three, an emoji four."""
    assert [utf8_size(t) for t in ("abc", "é", "€", "😀", "aé😀")] == [3, 2, 3, 4, 7]
    assert utf8_size("\ud800") == 3  # a lone surrogate does not raise


def coalescing(limit: int, size: int = 100) -> SendQueue:
    return SendQueue(size, coalesce=True, coalesce_max_bytes=limit)


def test_coalescing_joins_text_with_newlines_up_to_the_cap() -> None:
    """ASCII frames join with "\\n" while the joined frame fits the cap exactly."""
    queue = coalescing(11)
    for text in ("aaa", "bbb", "ccc", "ddd"):
        queue.offer(text)
    # "aaa\nbbb\nccc" is 11 bytes: at the cap; one more would be 15.
    assert drain(queue) == ["aaa\nbbb\nccc", "ddd"]


@pytest.mark.parametrize(
    ("texts", "limit", "expected"),
    [
        # "é" is one character but two bytes: "éé\néé" is 5 characters, 9 bytes.
        (["éé", "éé", "éé"], 9, ["éé\néé", "éé"]),
        (["éé", "éé", "éé"], 8, ["éé", "éé", "éé"]),
        # "😀" is one character but four bytes: "😀\n😀" is 3 characters, 9 bytes.
        (["😀", "😀", "😀"], 9, ["😀\n😀", "😀"]),
        (["😀", "😀", "😀"], 8, ["😀", "😀", "😀"]),
        (["😀", "😀", "😀"], 14, ["😀\n😀\n😀"]),
        # "a\né\n😀" is 5 characters, 9 bytes.
        (["a", "é", "😀"], 9, ["a\né\n😀"]),
        (["a", "é", "😀"], 8, ["a\né", "😀"]),
    ],
)
def test_coalescing_cap_counts_utf8_bytes(
    texts: list[str], limit: int, expected: list[str]
) -> None:
    """With multi-byte characters, the cap applies to the UTF-8 encoding, not to len()."""
    queue = coalescing(limit)
    for text in texts:
        queue.offer(text)
    frames = drain(queue)
    assert frames == expected
    assert all(isinstance(f, str) and len(f.encode()) <= limit for f in frames if "\n" in f)


def test_every_coalesced_frame_fits_the_cap() -> None:
    """Over a mixed burst, each joined frame's UTF-8 size is within the cap; nothing is lost."""
    texts = [("é" * (n % 7)) + ("😀" * (n % 3)) + "x" * (n % 5) for n in range(200)]
    queue = coalescing(40, size=500)
    for text in texts:
        queue.offer(text)
    frames = drain(queue)
    assert len(frames) < len(texts)
    assert all(isinstance(f, str) and len(f.encode()) <= 40 for f in frames)
    assert "\n".join(f for f in frames if isinstance(f, str)).split("\n") == texts


def test_a_lone_oversized_text_frame_is_sent_alone_and_unchanged() -> None:
    """A frame bigger than the cap is not split and takes no neighbours with it."""
    big = "é" * 10  # 20 bytes
    queue = coalescing(8)
    for text in ("a", big, "b", "c"):
        queue.offer(text)
    assert drain(queue) == ["a", big, "b\nc"]


def test_binary_frames_are_never_joined_and_act_as_a_barrier() -> None:
    """Binary frames leave one by one, and text on either side is not joined across them."""
    queue = coalescing(1000)
    for frame in ("a", "b", b"x", b"y", "c", "d", b"z"):
        queue.offer(frame)
    assert drain(queue) == ["a\nb", b"x", b"y", "c\nd", b"z"]


def test_coalescing_off_hands_out_frames_one_by_one() -> None:
    """Without coalescing, consecutive small text frames are never joined."""
    queue = SendQueue(10, coalesce=False, coalesce_max_bytes=1000)
    for text in ("a", "b", "c"):
        queue.offer(text)
    assert drain(queue) == ["a", "b", "c"]


def test_coalescing_frees_room_for_every_frame_it_joins() -> None:
    """One coalesced frame takes all its parts out of the queue at once."""
    queue = SendQueue(3, coalesce=True, coalesce_max_bytes=100)
    for text in ("a", "b", "c"):
        queue.offer(text)
    assert queue.offer("d").dropped == "d"
    assert queue.next_frame() == "a\nb\nc" and len(queue) == 0


def test_clear_discards_and_counts() -> None:
    """clear() empties the queue and says how many frames it discarded."""
    queue = SendQueue(5)
    for text in ("a", "b"):
        queue.offer(text)
    assert queue.clear() == 2 and queue.next_frame() is None


def test_from_config_and_bad_arguments() -> None:
    """A queue takes its settings from Config; sizes below 1 are refused."""
    config = Config(send_queue_size=7, drop_policy=DropPolicy.DISCONNECT).with_coalescing(True, 9)
    queue = SendQueue.from_config(config)
    assert (queue.maxsize, queue.policy, queue.coalesce, queue.coalesce_max_bytes) == (
        7,
        DropPolicy.DISCONNECT,
        True,
        9,
    )
    for bad in (0, -1, True, 1.5):
        with pytest.raises(ValueError, match="maxsize"):
            SendQueue(bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="coalesce_max_bytes"):
            SendQueue(1, coalesce_max_bytes=bad)  # type: ignore[arg-type]


# -- the byte budget -----------------------------------------------------------------------


def test_frame_size_counts_utf8_bytes_for_text_and_length_for_binary() -> None:
    """The one size function: UTF-8 bytes of text, length of binary."""
    assert frame_size("aé") == 3 and frame_size(b"\x00" * 4) == 4 and frame_size("") == 0


def test_queued_bytes_follow_offers_and_takes() -> None:
    """queued_bytes is the sum of the queued frames' sizes, down again as they leave."""
    queue = SendQueue(10, maxbytes=100)
    queue.offer("é" * 5)
    queue.offer(b"12345")
    assert queue.queued_bytes == 15
    assert queue.next_frame() == "é" * 5 and queue.queued_bytes == 5
    queue.clear()
    assert queue.queued_bytes == 0


def test_drop_newest_applies_when_the_byte_budget_would_be_exceeded() -> None:
    """Under drop_newest a frame that would take the queue over its bytes is dropped."""
    queue = SendQueue(100, DropPolicy.DROP_NEWEST, maxbytes=10)
    assert queue.offer("aaaa").queued and queue.offer("bbbb").queued
    assert queue.offer("ccc") == Offer(queued=False, dropped="ccc")
    assert queue.offer("dd").queued  # 10 bytes: exactly the budget
    assert drain(queue) == ["aaaa", "bbbb", "dd"]


def test_drop_oldest_evicts_oldest_frames_until_the_new_one_fits() -> None:
    """Under drop_oldest, as many of the oldest frames go as the new frame needs."""
    queue = SendQueue(100, DropPolicy.DROP_OLDEST, maxbytes=10)
    for text in ("aaa", "bbb", "ccc"):
        queue.offer(text)
    offer = queue.offer("dddddd")
    assert offer.queued and offer.dropped == "aaa" and offer.evicted == ("bbb",)
    assert offer.dropped_frames == ("aaa", "bbb")
    assert drain(queue) == ["ccc", "dddddd"] and queue.queued_bytes == 0


def test_disconnect_applies_when_the_byte_budget_would_be_exceeded() -> None:
    """Under disconnect a frame over the byte budget asks to disconnect."""
    queue = SendQueue(100, DropPolicy.DISCONNECT, maxbytes=4)
    queue.offer("aaa")
    assert queue.offer("bb") == Offer(queued=False, dropped="bb", disconnect=True)


@pytest.mark.parametrize("policy", [DropPolicy.DROP_NEWEST, DropPolicy.DROP_OLDEST])
def test_a_frame_larger_than_the_whole_budget_is_dropped_and_keeps_the_queue(
    policy: DropPolicy,
) -> None:
    """A frame that could never fit is dropped alone: drop_oldest evicts nothing for it."""
    queue = SendQueue(100, policy, maxbytes=8)
    queue.offer("keep")
    assert queue.offer("x" * 9) == Offer(queued=False, dropped="x" * 9)
    assert drain(queue) == ["keep"]


def test_a_frame_larger_than_the_whole_budget_disconnects_under_disconnect() -> None:
    """Under disconnect, a frame that could never fit asks to disconnect."""
    queue = SendQueue(100, DropPolicy.DISCONNECT, maxbytes=8)
    assert queue.offer(b"x" * 9) == Offer(queued=False, dropped=b"x" * 9, disconnect=True)


def test_fits_reports_room_for_a_frame_of_that_size() -> None:
    """fits(size) is False once the count or the bytes would go over."""
    queue = SendQueue(2, maxbytes=10)
    queue.offer("aaaaaa")
    assert queue.fits(4) and not queue.fits(5)
    queue.offer("b")
    assert not queue.fits(0)


def test_no_byte_budget_with_maxbytes_zero() -> None:
    """maxbytes=0 bounds the queue by count only."""
    queue = SendQueue(3, maxbytes=0)
    assert queue.offer("x" * 10_000_000).queued and queue.fits(10**12)


def test_coalescing_keeps_the_byte_count_right() -> None:
    """A coalesced frame takes its parts' bytes out of the count."""
    queue = SendQueue(10, coalesce=True, coalesce_max_bytes=5, maxbytes=100)
    for text in ("ab", "cd", "efgh"):
        queue.offer(text)
    assert queue.next_frame() == "ab\ncd" and queue.queued_bytes == 4
    assert queue.next_frame() == "efgh" and queue.queued_bytes == 0


def test_from_config_takes_the_byte_budget_and_bad_budgets_are_refused() -> None:
    """send_queue_bytes reaches the queue (default 8 MiB); a negative budget is refused."""
    assert SendQueue.from_config(Config()).maxbytes == 8 * 1024 * 1024
    assert SendQueue.from_config(Config(send_queue_bytes=0)).maxbytes == 0
    for bad in (-1, True, 1.5):
        with pytest.raises(ValueError, match="maxbytes"):
            SendQueue(1, maxbytes=bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="send_queue_bytes"):
            Config(send_queue_bytes=bad).validate()  # type: ignore[arg-type]
