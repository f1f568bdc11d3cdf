"""Delivery: broadcast, room and user fan-out through one local loop, and the hub sink.

Built as ``Hub.__init__`` builds it, on real ``InMemoryHubLayer`` nodes (two
nodes share one named bus); the recipients are :class:`~tests.hub.kit.FakeQueue`
objects registered for fake clients, so what each queue accepted is visible.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from tests.hub.kit import FakeClient, FakeQueue, Parts, make_parts, settings
from wshub_channels.core.membership import ROOMS, USERS
from wshub_channels.core.wire import Envelope, Kind, encode_hub_payload
from wshub_channels.errors import InvalidFrame
from wshub_channels.hub.delivery import Delivery
from wshub_channels.layers import InMemoryHubLayer
from wshub_channels.testing import scaled
from wshub_channels.testing.timing import async_wait_until
from wshub_channels.utf8 import frame_size


@pytest.fixture
async def layer() -> AsyncIterator[InMemoryHubLayer]:
    made = InMemoryHubLayer()
    yield made
    await made.close()


def build(layer: InMemoryHubLayer, **wshub: object) -> tuple[Delivery, Parts]:
    parts = make_parts(layer, settings(**wshub))
    return Delivery(*parts.args()), parts


def add(parts: Parts, client_id: str, queue: FakeQueue | None = None) -> FakeQueue:
    queue = queue or FakeQueue()
    parts.registry.add(FakeClient(client_id, parts.layer), queue)
    return queue


def texts(queue: FakeQueue) -> list[str]:
    return [m["text"] for m in queue.messages]


async def broadcast(delivery: Delivery, data, exclude=(), timeout=None) -> None:
    await delivery.send(Kind.BROADCAST, "", "subject", data, exclude, timeout)


async def test_broadcast_reaches_everyone_but_the_excluded_by_id_or_client(layer) -> None:
    delivery, parts = build(layer)
    a, b, c = (add(parts, f"c!{i}") for i in "abc")
    await broadcast(delivery, "hi", exclude=["c!a", FakeClient("c!b", layer)])
    assert (texts(a), texts(b), texts(c)) == ([], [], ["hi"])


async def test_room_and_user_sends_reach_only_their_members(layer) -> None:
    delivery, parts = build(layer)
    member, user, other = add(parts, "c!m"), add(parts, "c!u"), add(parts, "c!o")
    await layer.add_interest(ROOMS, "lobby", "c!m")
    await layer.add_interest(USERS, "alice", "c!u")
    await delivery.send(Kind.ROOM, "lobby", "s", "room", (), None)
    await delivery.send(Kind.USER, "alice", "s", b"user", (), None)
    await delivery.send(Kind.ROOM, "empty", "s", "nobody", (), None)
    assert member.messages == [{"type": "websocket.send", "text": "room"}]
    assert user.messages == [{"type": "websocket.send", "bytes": b"user"}]
    assert other.messages == []


async def test_every_recipient_shares_one_message_object(layer) -> None:
    delivery, parts = build(layer)
    queues = [add(parts, f"c!{i}") for i in range(3)]
    await broadcast(delivery, "same")
    first = queues[0].messages[0]
    assert all(q.messages[0] is first for q in queues)


async def test_closed_queues_are_skipped_and_refused_frames_are_not_counted_sent(layer) -> None:
    delivery, parts = build(layer)
    open_queue = add(parts, "c!open")
    closed = add(parts, "c!closed", FakeQueue(closed=True))
    full = add(parts, "c!full", FakeQueue(room=0))
    await broadcast(delivery, "xyz")
    assert texts(open_queue) == ["xyz"]
    assert closed.messages == [] and full.messages == []
    stats = parts.stats()
    assert stats["messages_sent"] == 1
    assert stats["bytes_sent"] == frame_size("xyz")
    assert stats["broadcast_seconds_count"] == 1


async def test_a_send_with_timeout_waits_on_each_queue_and_counts_what_was_taken(layer) -> None:
    delivery, parts = build(layer)
    taking, full = add(parts, "c!1"), add(parts, "c!2", FakeQueue(room=0))
    skipped = add(parts, "c!3", FakeQueue(closed=True))
    await broadcast(delivery, "t", timeout=0.5)
    assert taking.waits == [0.5] and full.waits == [0.5]
    assert skipped.waits == []
    assert texts(taking) == ["t"]
    assert parts.stats()["messages_sent"] == 1


async def test_bad_data_raises_before_any_queue_gets_anything(layer) -> None:
    delivery, parts = build(layer)
    queue = add(parts, "c!1")
    with pytest.raises(InvalidFrame):
        await broadcast(delivery, "bad \ud800")
    with pytest.raises(TypeError):
        await broadcast(delivery, 42)
    assert queue.messages == []
    assert "messages_sent" not in parts.stats()


async def test_receive_delivers_another_nodes_envelope_minus_its_excluded(layer) -> None:
    delivery, parts = build(layer)
    kept, skipped = add(parts, "c!1"), add(parts, "c!2")
    await layer.add_interest(ROOMS, "lobby", "c!1")
    await layer.add_interest(ROOMS, "lobby", "c!2")
    payload = encode_hub_payload("from afar", ["c!2"])
    delivery.receive(Envelope(Kind.ROOM, "other-node", "lobby", payload))
    assert texts(kept) == ["from afar"] and skipped.messages == []
    assert parts.stats()["messages_sent"] == 1


async def test_receive_counts_unreadable_envelopes_and_delivers_nothing(layer) -> None:
    delivery, parts = build(layer)
    queue = add(parts, "c!1")
    delivery.receive(Envelope(Kind.BROADCAST, "n", "", b"\xc1 not msgpack"))
    delivery.receive(Envelope(250, "n", "", encode_hub_payload("x", [])))  # no such kind
    assert layer.stats_snapshot()["bad_envelopes"] == 2
    assert queue.messages == []


async def test_a_send_reaches_the_other_node_through_its_sink() -> None:
    bus = f"delivery-{uuid.uuid4().hex[:8]}"
    here, there = InMemoryHubLayer(bus=bus), InMemoryHubLayer(bus=bus)
    try:
        sender, _ = build(here)
        receiver, far = build(there)
        there.set_hub_sink(receiver.receive)
        await here.start()
        await there.start()
        member, excluded = add(far, "far!1"), add(far, "far!2")
        await there.add_interest(ROOMS, "lobby", "far!1")
        await sender.send(Kind.ROOM, "lobby", here.subject(ROOMS, "lobby"), "r", (), None)
        subject = here.cluster_subject
        await sender.send(Kind.BROADCAST, "", subject, "b", ["far!2"], None)
        await async_wait_until(lambda: len(member.messages) == 2, scaled(2), what="delivery")
        assert texts(member) == ["r", "b"]
        assert excluded.messages == []
        assert far.stats()["messages_sent"] == 2
    finally:
        await here.close()
        await there.close()
