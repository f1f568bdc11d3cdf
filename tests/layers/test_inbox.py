"""Requests over plain publish/subscribe: frames, the gather, PubSubRequests."""

from __future__ import annotations

import asyncio
from typing import Any

import msgpack
import pytest

from tests.rig.timing import async_wait_until
from wshub_channels.core.wire import (
    REPLY,
    REQUEST,
    Kind,
    Reply,
    Request,
    decode_frame,
    encode_envelope,
    encode_reply_frame,
    encode_request_frame,
)
from wshub_channels.layers import NoResponders
from wshub_channels.layers.inbox import Gather, PubSubRequests
from wshub_channels.testing import scaled

pytestmark = pytest.mark.unit


# -- frames and the gather ---------------------------------------------------------------


def test_frames_round_trip_and_envelopes_are_not_frames() -> None:
    """Request and reply frames decode; envelopes (and empty data) are no frame at all."""
    request = encode_request_frame("inbox.a", 7, b"body")
    assert request[0] == REQUEST and decode_frame(request) == Request("inbox.a", 7, b"body")
    reply = encode_reply_frame(7, None)
    assert reply[0] == REPLY and decode_frame(reply) == Reply(7, None)
    assert decode_frame(encode_reply_frame(8, b"x")) == Reply(8, b"x")
    assert decode_frame(encode_envelope(Kind.GROUP, "n", "g", b"")) is None
    assert decode_frame(b"") is None


@pytest.mark.parametrize(
    "frame",
    [
        bytes([REQUEST]) + b"\xc1",
        bytes([REQUEST]) + msgpack.packb(["inbox", 1]),
        bytes([REQUEST]) + msgpack.packb([1, 1, b""]),
        bytes([REPLY]) + msgpack.packb([1]),
        bytes([REPLY]) + msgpack.packb(["1", b""]),
    ],
)
def test_malformed_frames_raise_value_error(frame: bytes) -> None:
    with pytest.raises(ValueError):
        decode_frame(frame)


def test_gather_completes_when_every_listener_answered() -> None:
    """Answers may come before the count is known; empty answers count but add no reply."""
    gather = Gather()
    assert not gather.add(b"early") and not gather.complete
    assert not gather.expect(3)
    assert not gather.add(None)
    assert gather.add(b"last") and gather.complete
    assert gather.replies == [b"early", b"last"] and gather.answers == 3
    done = Gather()
    done.add(b"a")
    assert done.expect(1)


def test_empty_answers_never_take_the_place_of_wanted_replies() -> None:
    """Two replies wanted of three listeners: a process without the op answers first,
    empty; the gather waits for two real replies (or for every listener)."""
    gather = Gather(max_replies=2)
    assert not gather.expect(3)
    assert not gather.add(None) and not gather.add(b"one")
    assert gather.add(b"two") and gather.replies == [b"one", b"two"]
    alone = Gather(max_replies=2)
    alone.expect(2)
    assert not alone.add(None) and alone.add(b"only")  # every listener answered


# -- PubSubRequests over an in-process publish/subscribe ------------------------------


class Bus:
    """A process-local publish/subscribe: publish returns how many subscribers got it."""

    def __init__(self) -> None:
        self.subscribers: dict[str, list[Node]] = {}

    async def publish(self, subject: str, data: bytes) -> int:
        nodes = self.subscribers.get(subject, [])
        for node in nodes:
            node.receive(subject, data)
        return len(nodes)


class Node:
    def __init__(self, bus: Bus, name: str, answer: bytes | None = None, delay: float = 0) -> None:
        self.bus = bus
        self.requests = PubSubRequests(f"inbox.{name}", bus.publish)
        self.answer = answer if answer is not None else name.encode()
        self.delay = delay
        self.passed: list[bytes] = []
        self.subscribe(self.requests.inbox)

    def subscribe(self, subject: str) -> None:
        self.bus.subscribers.setdefault(subject, []).append(self)

    def receive(self, subject: str, data: bytes) -> None:
        if not self.requests.handle(subject, data, self.handler):
            self.passed.append(data)

    async def handler(self, subject: str, data: bytes) -> bytes | None:
        if self.delay:
            await asyncio.sleep(self.delay)
        return self.answer if data == b"ask" else None


async def test_request_gathers_every_listener() -> None:
    """A gather returns once every other listener answered; the requester never answers itself."""
    bus = Bus()
    asker, one, two = Node(bus, "asker"), Node(bus, "one"), Node(bus, "two")
    for node in (asker, one, two):
        node.subscribe("all")
    replies = await asker.requests.request("all", b"ask", scaled(2), None, own=True)
    assert sorted(replies) == [b"one", b"two"]
    first = await asker.requests.request("all", b"ask", scaled(2), 1, own=True)
    assert first in ([b"one"], [b"two"])


async def test_request_to_nobody_raises_no_responders() -> None:
    bus = Bus()
    asker = Node(bus, "asker")
    with pytest.raises(NoResponders):
        await asker.requests.request("n.gone", b"ask", scaled(2), 1)
    asker.subscribe("n.self")
    with pytest.raises(NoResponders):
        await asker.requests.request("n.self", b"ask", scaled(2), 1, own=True)


async def test_request_times_out_with_what_came() -> None:
    """A listener that answers too late is left out; the request returns at the timeout."""
    bus = Bus()
    asker, quick, slow = Node(bus, "asker"), Node(bus, "quick"), Node(bus, "slow", delay=60)
    quick.subscribe("all")
    slow.subscribe("all")
    replies = await asker.requests.request("all", b"ask", scaled(0.1), None)
    assert replies == [b"quick"]


async def test_empty_answers_count_and_other_messages_pass_through() -> None:
    """A handler with no answer still completes the gather; non-frames go to the sink."""
    bus = Bus()
    asker, mute = Node(bus, "asker"), Node(bus, "mute")
    mute.subscribe("n.mute")
    assert await asker.requests.request("n.mute", b"other", scaled(2), 1) == []
    await bus.publish("n.mute", b"\x96plain")
    assert mute.passed == [b"\x96plain"]


async def test_cancel_all_ends_requests_in_flight() -> None:
    """Closing the transport cancels the requests still waiting."""
    bus = Bus()
    asker, slow = Node(bus, "asker"), Node(bus, "slow", delay=60)
    slow.subscribe("n.slow")
    pending: Any = asyncio.ensure_future(asker.requests.request("n.slow", b"ask", 60, 1))
    await async_wait_until(lambda: bool(asker.requests._pending), scaled(2))
    asker.requests.cancel_all()
    with pytest.raises(asyncio.CancelledError):
        await pending
