"""Request/reply written once: the op codec, typed errors, the gather, and requests over pub/sub."""

from __future__ import annotations

import asyncio
from typing import Any

import msgpack
import pytest
from channels.exceptions import ChannelFull

from tests.rig.timing import async_wait_until
from wshub_channels import errors
from wshub_channels.layers.envelope import Kind, encode_envelope
from wshub_channels.layers.rpc import (
    REPLY,
    REQUEST,
    Gather,
    PubSubRequests,
    RemoteOps,
    Reply,
    Request,
    decode_answer,
    decode_call,
    decode_frame,
    encode_call,
    encode_error,
    encode_reply_frame,
    encode_request_frame,
    encode_result,
    error_from_name,
)
from wshub_channels.layers.transport import NoResponders
from wshub_channels.testing import scaled

pytestmark = pytest.mark.unit


# -- the op codec and typed errors -----------------------------------------------------


def test_call_round_trip() -> None:
    """A call carries its op name and arguments; tuples become lists."""
    assert decode_call(encode_call("join_room", ("c1", "lobby"))) == ("join_room", ["c1", "lobby"])
    assert encode_call("op", []) == msgpack.packb(["op", []], use_bin_type=True)


@pytest.mark.parametrize(
    "body", [b"\xc1", msgpack.packb("op"), msgpack.packb(["op"]), msgpack.packb([1, []])]
)
def test_malformed_call_raises_value_error(body: bytes) -> None:
    with pytest.raises(ValueError):
        decode_call(body)


def test_answer_carries_the_result() -> None:
    assert decode_answer(encode_result({"n": 1})) == {"n": 1}
    assert decode_answer(encode_result(None)) is None


@pytest.mark.parametrize(
    "error",
    [
        errors.ClientNotFound("no such client"),
        errors.HubTimeout("slow"),
        TypeError("bad type"),
        ValueError("bad value"),
        ChannelFull("full"),
    ],
)
def test_answer_rebuilds_typed_errors(error: Exception) -> None:
    """Hub errors and a few builtins come back as their own class, with their message."""
    with pytest.raises(type(error), match=str(error)):
        decode_answer(encode_error(error))


def test_unknown_error_becomes_hub_error() -> None:
    """An error class this node does not know is raised as HubError."""
    with pytest.raises(errors.HubError, match="boom"):
        decode_answer(encode_error(KeyError("boom")))
    assert type(error_from_name("NoSuchThing", "x")) is errors.HubError
    assert type(error_from_name("__doc__", "x")) is errors.HubError


@pytest.mark.parametrize(
    "body",
    [b"\xc1", msgpack.packb([True, 1]), msgpack.packb([1, 2, 3]), msgpack.packb([False, 1, ""])],
)
def test_malformed_answer_raises_value_error(body: bytes) -> None:
    with pytest.raises(ValueError):
        decode_answer(body)


# -- RemoteOps ------------------------------------------------------------------------


class Counters:
    def __init__(self) -> None:
        self.bad = 0
        self.bus = 0

    def ops(self) -> RemoteOps:
        def bad() -> None:
            self.bad += 1

        def bus() -> None:
            self.bus += 1

        return RemoteOps(bad, bus)


async def test_handler_runs_registered_ops_and_answers_errors() -> None:
    """The request handler runs an op by name and answers its result or its typed error."""
    counters = Counters()
    ops = counters.ops()

    async def add(a: int, b: int) -> int:
        return a + b

    async def missing(client_id: str) -> None:
        raise errors.ClientNotFound(client_id)

    ops.register("add", add)
    ops.register("missing", missing)
    assert "add" in ops and "nothing" not in ops
    assert decode_answer(await ops.handle("s", encode_call("add", [2, 3]))) == 5
    with pytest.raises(errors.ClientNotFound, match="c9"):
        decode_answer(await ops.handle("s", encode_call("missing", ["c9"])))
    assert counters.bad == 0
    for body in (encode_call("nothing", []), b"\xc1"):
        with pytest.raises(ValueError, match="malformed request"):
            decode_answer(await ops.handle("s", body))
    assert counters.bad == 2


async def test_call_returns_the_result_or_raises() -> None:
    """call maps replies, no reply, a gone node and a failing bus to result and errors."""
    counters = Counters()
    ops = counters.ops()
    seen: list[tuple[str, float, int | None]] = []

    async def answers(subject: str, data: bytes, timeout: float, most: int | None) -> list[bytes]:
        seen.append((subject, timeout, most))
        assert decode_call(data) == ("op", [1])
        return [encode_result("ok")]

    async def silent(subject: str, data: bytes, timeout: float, most: int | None) -> list[bytes]:
        return []

    async def nobody(subject: str, data: bytes, timeout: float, most: int | None) -> list[bytes]:
        raise NoResponders(subject)

    async def broken(subject: str, data: bytes, timeout: float, most: int | None) -> list[bytes]:
        raise ConnectionError("down")

    assert await ops.call(answers, "n.x", "op", (1,), 2.0, "x") == "ok"
    assert seen == [("n.x", 2.0, 1)]
    with pytest.raises(errors.HubTimeout, match="node x did not answer 'op'"):
        await ops.call(silent, "n.x", "op", (1,), 2.0, "x")
    with pytest.raises(NoResponders):
        await ops.call(nobody, "n.x", "op", (1,), 2.0, "x")
    assert counters.bus == 0
    with pytest.raises(errors.BusUnavailable, match="calling node x failed"):
        await ops.call(broken, "n.x", "op", (1,), 2.0, "x")
    assert counters.bus == 1


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


def test_gather_completes_at_the_wanted_count() -> None:
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
