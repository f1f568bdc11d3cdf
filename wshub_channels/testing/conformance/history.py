"""Conformance cases for room history, run against every layer that keeps it.

Subclass :class:`HistoryConformance` and provide a ``layer_backend`` fixture
(a :class:`~wshub_channels.testing.LayerBackend`) whose instances share a
broker. The cases drive the layer's hub face (``history_append`` and
``history_read``), so they check the store through the layer's own loop
handling; the rules are those of :mod:`wshub_channels.layers.historystore`.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from ...core.history import HistoryRule, Position
from ..timing import scaled
from .io import made_layers

__all__ = ["HistoryConformance"]

RULE = HistoryRule(size=50, ttl=300)


class HistoryConformance:
    """Offsets, epochs, trimming, expiry and reads, on one layer and across instances."""

    @pytest.fixture
    async def make_layer(self, layer_backend: Any) -> AsyncIterator[Callable[..., Any]]:
        async for make in made_layers(layer_backend.factory):
            yield make

    @pytest.fixture
    def room(self) -> str:
        return f"hist.{uuid.uuid4().hex[:10]}"

    async def test_offsets_count_from_one_in_one_epoch(
        self, make_layer: Callable[..., Any], room: str
    ) -> None:
        layer = make_layer()
        positions = [await layer.history_append(room, b"m%d" % i, RULE) for i in range(5)]
        assert [p.offset for p in positions] == [1, 2, 3, 4, 5]
        assert len({p.epoch for p in positions}) == 1 and positions[0].epoch

    async def test_read_after_a_position(self, make_layer: Callable[..., Any], room: str) -> None:
        layer = make_layer()
        positions = [await layer.history_append(room, b"m%d" % i, RULE) for i in range(6)]
        page = await layer.history_read(room, positions[2], None)
        assert [(e.offset, e.payload) for e in page.entries] == [(4, b"m3"), (5, b"m4"), (6, b"m5")]
        assert page.position == positions[-1] and page.complete
        page = await layer.history_read(room, positions[2], 2)
        assert [e.offset for e in page.entries] == [4, 5] and page.complete
        page = await layer.history_read(room, positions[-1], None)
        assert page.entries == [] and page.complete and page.position == positions[-1]
        page = await layer.history_read(room, positions[1], 0)
        assert page.entries == [] and page.complete and page.position == positions[-1]

    async def test_read_without_a_position_gives_the_newest(
        self, make_layer: Callable[..., Any], room: str
    ) -> None:
        layer = make_layer()
        for i in range(6):
            await layer.history_append(room, b"m%d" % i, RULE)
        page = await layer.history_read(room, None, 2)
        assert [e.payload for e in page.entries] == [b"m4", b"m5"] and page.complete
        page = await layer.history_read(room, None, None)
        assert len(page.entries) == 6 and page.position.offset == 6

    async def test_a_reader_that_saw_nothing_matches_any_epoch(
        self, make_layer: Callable[..., Any], room: str
    ) -> None:
        layer = make_layer()
        for i in range(3):
            await layer.history_append(room, b"m%d" % i, RULE)
        page = await layer.history_read(room, Position(0, "someotherepoch"), None)
        assert [e.offset for e in page.entries] == [1, 2, 3] and page.complete

    async def test_a_room_without_state(self, make_layer: Callable[..., Any], room: str) -> None:
        layer = make_layer()
        page = await layer.history_read(room, None, None)
        assert page.entries == [] and page.position == Position(0, "") and page.complete
        assert (await layer.history_read(room, Position(0, ""), None)).complete
        lost = await layer.history_read(room, Position(3, "gone"), None)
        assert lost.entries == [] and not lost.complete and lost.position == Position(0, "")

    async def test_another_epoch_or_a_future_offset_is_not_complete(
        self, make_layer: Callable[..., Any], room: str
    ) -> None:
        layer = make_layer()
        top = [await layer.history_append(room, b"x", RULE) for _ in range(3)][-1]
        other = await layer.history_read(room, Position(2, top.epoch + "z"), None)
        assert other.entries == [] and not other.complete and other.position == top
        ahead = await layer.history_read(room, Position(9, top.epoch), None)
        assert ahead.entries == [] and not ahead.complete

    async def test_size_trims_the_oldest(self, make_layer: Callable[..., Any], room: str) -> None:
        layer = make_layer()
        rule = HistoryRule(size=3, ttl=300)
        positions = [await layer.history_append(room, b"m%d" % i, rule) for i in range(5)]
        epoch = positions[0].epoch
        trimmed = await layer.history_read(room, Position(1, epoch), None)
        assert [e.offset for e in trimmed.entries] == [3, 4, 5] and not trimmed.complete
        kept = await layer.history_read(room, Position(2, epoch), None)
        assert [e.offset for e in kept.entries] == [3, 4, 5] and kept.complete
        newest = await layer.history_read(room, None, None)
        assert [e.offset for e in newest.entries] == [3, 4, 5] and not newest.complete

    async def test_ttl_expires_entries_but_keeps_the_offset(
        self, make_layer: Callable[..., Any], room: str
    ) -> None:
        layer = make_layer()
        rule = HistoryRule(size=10, ttl=1)
        first = await layer.history_append(room, b"old", rule)
        await asyncio.sleep(1.3)
        page = await layer.history_read(room, first, None)
        assert page.entries == [] and page.position == first and page.complete
        lost = await layer.history_read(room, Position(0, first.epoch), None)
        assert lost.entries == [] and not lost.complete
        nxt = await layer.history_append(room, b"new", rule)
        assert nxt == Position(2, first.epoch)
        gap = await layer.history_read(room, Position(0, first.epoch), None)
        assert [e.payload for e in gap.entries] == [b"new"] and not gap.complete

    async def test_payloads_round_trip(self, make_layer: Callable[..., Any], room: str) -> None:
        layer = make_layer()
        payloads = [b"", b"\x00\xff\x00", bytes(range(256)) * 256, "h\u00e9llo \U0001f600".encode()]
        for payload in payloads:
            await layer.history_append(room, payload, RULE)
        page = await layer.history_read(room, None, None)
        assert [e.payload for e in page.entries] == payloads

    async def test_room_names_are_free_strings(self, make_layer: Callable[..., Any]) -> None:
        layer = make_layer()
        tag = uuid.uuid4().hex[:6]
        rooms = [f"chat.{tag} with spaces", f"k\u00f6ln.*>{tag}", f"{tag}" + "r" * 250]
        for i, room in enumerate(rooms):
            for _ in range(i + 1):
                await layer.history_append(room, room.encode(), RULE)
        for i, room in enumerate(rooms):
            page = await layer.history_read(room, None, None)
            assert [e.payload for e in page.entries] == [room.encode()] * (i + 1)

    async def test_concurrent_appends_get_distinct_consecutive_offsets(
        self, make_layer: Callable[..., Any], room: str
    ) -> None:
        """Two instances (nodes) append to one room at once: 1..N, none twice."""
        node_a, node_b = make_layer(), make_layer()
        appends = [
            (node_a if i % 2 else node_b).history_append(room, b"%d" % i, RULE) for i in range(40)
        ]
        positions = await asyncio.wait_for(asyncio.gather(*appends), scaled(20))
        assert sorted(p.offset for p in positions) == list(range(1, 41))
        assert len({p.epoch for p in positions}) == 1
        page = await node_a.history_read(room, None, None)
        by_offset = {e.offset: e.payload for e in page.entries}
        for i, position in enumerate(positions):
            assert by_offset[position.offset] == b"%d" % i

    async def test_flush_forgets_rooms(self, make_layer: Callable[..., Any], room: str) -> None:
        layer = make_layer()
        first = await layer.history_append(room, b"a", RULE)
        await layer.flush()
        page = await layer.history_read(room, first, None)
        assert page.entries == [] and not page.complete and page.position == Position(0, "")
        again = await layer.history_append(room, b"b", RULE)
        assert again.offset == 1 and again.epoch != first.epoch
