"""Bad envelopes from the bus: each is counted and skipped, and nobody else misses a message.

Envelopes are type-checked once, on decode; a payload that must be a Channels
message (GROUP, DIRECT) must decode to a dict with str keys. Whatever arrives,
no exception escapes the node's receive path, ``bad_envelopes`` (or
``unknown_version``) counts it, and a bystander, another subscriber of the
same bus or another member on the same node, still gets the next good message.

The fuzz tests feed random msgpack structures, random bytes and envelopes with
one field broken: through the in-memory bus (which loops over its subscribers
in the publisher's call), and straight into the Redis and NATS transports'
receive functions (no server: those are the functions their readers call).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Coroutine
from types import SimpleNamespace
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from wshub_channels.core.wire import Kind, encode_envelope
from wshub_channels.layers import InMemoryHubLayer, NatsHubLayer, RedisHubLayer
from wshub_channels.layers.base import GROUPS, HubLayer
from wshub_channels.testing import scaled

pytestmark = pytest.mark.unit

GROUP = "fuzz"
FUZZ = settings(
    max_examples=150,
    # No per-example deadline: a loaded CI host can take seconds for one example, and a
    # hang is still caught by the receive timeouts below and by pytest-timeout.
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=False,
)

# -- what the bus may carry -----------------------------------------------------------

_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.binary(max_size=20),
)
#: Any msgpack structure.
VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=8), st.dictionaries(st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=20,
)


def _good_message(payload: object) -> bool:
    if not isinstance(payload, bytes):
        return False
    try:
        message = msgpack.unpackb(payload, raw=False)
    except Exception:
        return False
    return isinstance(message, dict) and all(type(key) is str for key in message)


def verdict(data: bytes) -> str:
    """What a node must make of ``data``, decided apart from the code under test.

    "bad": counted once; "future": an unknown major version, counted once;
    "ok": a well-formed envelope (delivered, or ignored when nobody here wants it).
    """
    try:
        fields = msgpack.unpackb(data, raw=False)
    except Exception:
        return "bad"
    if not isinstance(fields, list) or len(fields) < 6:
        return "bad"
    major, minor, kind, origin, target, payload = fields[:6]
    if major != 1:
        return "future"
    ints = all(isinstance(v, int) and not isinstance(v, bool) for v in (minor, kind))
    if not (ints and isinstance(origin, str) and isinstance(target, str)):
        return "bad"
    if not isinstance(payload, bytes):
        return "bad"
    if kind == Kind.DIRECT or (kind == Kind.GROUP and target == GROUP):
        return "ok" if _good_message(payload) else "bad"
    return "ok"  # a kind no node here reads, or a group nobody here is in


def _envelope(kind: int, target: str, payload: Any) -> list[Any]:
    return [1, 2, kind, "fuzzer-node1", target, payload, 1]


@st.composite
def broken_envelopes(draw: st.DrawFn) -> bytes:
    """A GROUP or DIRECT envelope with one field, or the payload's content, replaced."""
    kind = draw(st.sampled_from([Kind.GROUP, Kind.DIRECT]))
    target = GROUP if kind == Kind.GROUP else "nobody.zzzzzzzzzzzz!gone"
    fields = _envelope(kind, target, msgpack.packb({"type": "x"}))
    index = draw(st.integers(min_value=1, max_value=6))
    replacement = draw(VALUES)
    if index == 6:
        fields[5] = msgpack.packb(replacement, use_bin_type=True)
    else:
        fields[index] = replacement
    return msgpack.packb(fields, use_bin_type=True)  # type: ignore[no-any-return]


BUS_INPUT = st.one_of(
    st.binary(max_size=64),
    VALUES.map(lambda value: msgpack.packb(value, use_bin_type=True)),
    broken_envelopes(),
)


# -- fixed cases ----------------------------------------------------------------------


async def _members(bus: str) -> tuple[HubLayer, list[tuple[HubLayer, str]]]:
    source = InMemoryHubLayer(bus=bus)
    members = []
    for _ in range(2):
        layer = InMemoryHubLayer(bus=bus)
        channel = await layer.new_channel()
        await layer.group_add(GROUP, channel)
        members.append((layer, channel))
    await source.start()
    return source, members


async def _next(layer: HubLayer, channel: str) -> dict[str, Any]:
    message: dict[str, Any] = await asyncio.wait_for(layer.receive(channel), scaled(1))
    return message


async def test_a_direct_envelope_with_a_list_payload_never_reaches_the_channel() -> None:
    """A DIRECT payload that is not a message dict is counted; the channel gets the next one."""
    source, [(layer, channel), _] = await _members(f"bad-{uuid.uuid4().hex}")
    listed = encode_envelope(Kind.DIRECT, source.node_id, channel, msgpack.packb([1, 2]))
    await source.bus.publish(layer.node_subject(layer.node_id), listed)
    assert layer.stats.bad_envelopes == 1
    await source.send(channel, {"type": "good"})
    assert await _next(layer, channel) == {"type": "good"}


async def test_a_bad_group_envelope_stops_no_other_subscriber() -> None:
    """A GROUP envelope with a str payload is counted by every subscriber, and both get
    the next group_send: the in-memory bus delivers to each whatever the others did."""
    source, members = await _members(f"bad-{uuid.uuid4().hex}")
    fields = _envelope(Kind.GROUP, GROUP, "not bytes")
    await source.bus.publish(source.subject(GROUPS, GROUP), msgpack.packb(fields))
    assert [layer.stats.bad_envelopes for layer, _ in members] == [1, 1]
    await source.group_send(GROUP, {"type": "next"})
    for layer, channel in members:
        assert await _next(layer, channel) == {"type": "next"}


async def test_a_failing_subscriber_stops_no_other_on_the_memory_bus(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A sink that raises (a bug, not a bad envelope) is logged; later subscribers still
    get the message and the publisher sees no error."""
    source, members = await _members(f"bad-{uuid.uuid4().hex}")
    broken, _ = members[0]

    def explode(subject: str, data: bytes) -> None:
        raise RuntimeError("sink bug")

    broken.bus.set_sink(explode)
    with caplog.at_level(logging.ERROR, "wshub_channels.layers"):
        await source.group_send(GROUP, {"type": "still"})
    layer, channel = members[1]
    assert await _next(layer, channel) == {"type": "still"}
    assert any("sink bug" in (r.exc_text or "") or r.exc_info for r in caplog.records)


# -- fuzzing --------------------------------------------------------------------------


def _run_fuzz(
    setup: Callable[[], Coroutine[Any, Any, Any]],
    feed: Callable[[Any, bytes, int], Coroutine[Any, Any, None]],
) -> None:
    """Run ``feed(rig, data, n)`` for every generated input on one event loop."""
    loop = asyncio.new_event_loop()
    try:
        rig = loop.run_until_complete(setup())
        counter = iter(range(1 << 30))

        @FUZZ
        @given(BUS_INPUT)
        def check(data: bytes) -> None:
            assume(data[:1] not in (b"\x00", b"\x01"))  # inbox frames: see test_inbox
            loop.run_until_complete(feed(rig, data, next(counter)))

        check()
    finally:
        loop.close()


def _counted(layer: HubLayer) -> int:
    return layer.stats.bad_envelopes + layer.stats.unknown_version


def _drain_until(layer: HubLayer, channel: str, n: int) -> None:
    """Take messages off a local channel until the good one numbered ``n``."""
    queue = layer._local.get(channel)
    assert queue is not None
    for _ in range(3):
        assert queue.items, f"the good message {n} did not arrive"
        message = queue.items.popleft()[1]
        if message == {"type": "good", "n": n}:
            return
    raise AssertionError(f"the good message {n} did not arrive")


def test_fuzz_the_memory_bus(caplog: pytest.LogCaptureFixture) -> None:
    """Random input published on a group's subject: nothing escapes the publish, each of
    two subscribers counts a bad input once, and both get the next group_send."""

    async def setup() -> Any:
        return await _members(f"fuzz-{uuid.uuid4().hex}")

    async def feed(rig: Any, data: bytes, n: int) -> None:
        source, members = rig
        before = [_counted(layer) for layer, _ in members]
        await source.bus.publish(source.subject(GROUPS, GROUP), data)  # never raises
        grown = [_counted(layer) - was for (layer, _), was in zip(members, before, strict=True)]
        assert grown == ([0, 0] if verdict(data) == "ok" else [1, 1]), data
        await source.group_send(GROUP, {"type": "good", "n": n})
        for layer, channel in members:
            _drain_until(layer, channel, n)

    with caplog.at_level(logging.ERROR, "wshub_channels"):
        _run_fuzz(setup, feed)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def _bystanders(layer: HubLayer) -> list[str]:
    """Two local members of GROUP, made without a bus (the transport never connects)."""
    channels = [f"fuzz.{layer.node_id}!{n}" for n in range(2)]
    for channel in channels:
        layer._local.create(channel)
        layer._interest.add(GROUPS, GROUP, channel, time.monotonic())
    return channels


def _good(n: int) -> bytes:
    return encode_envelope(
        Kind.GROUP, "fuzzer-node1", GROUP, msgpack.packb({"type": "good", "n": n}), 1
    )


def _fuzz_receive(
    layer: HubLayer, receive: Callable[[str, bytes], Coroutine[Any, Any, None]]
) -> None:
    subject = layer.subject(GROUPS, GROUP)

    async def setup() -> list[str]:
        return _bystanders(layer)

    async def feed(channels: list[str], data: bytes, n: int) -> None:
        before = _counted(layer)
        await receive(subject, data)
        assert _counted(layer) - before == (0 if verdict(data) == "ok" else 1), data
        await receive(subject, _good(n))
        for channel in channels:
            _drain_until(layer, channel, n)

    _run_fuzz(setup, feed)


def test_fuzz_the_redis_receive_path(caplog: pytest.LogCaptureFixture) -> None:
    """Random input into RedisTransport's dispatch (what its subscriber calls per message)."""
    layer = RedisHubLayer(hosts=["redis://127.0.0.1:1"])

    async def receive(subject: str, data: bytes) -> None:
        layer.bus._dispatch(subject, data)  # type: ignore[attr-defined]

    with caplog.at_level(logging.ERROR, "wshub_channels"):
        _fuzz_receive(layer, receive)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_fuzz_the_nats_receive_path(caplog: pytest.LogCaptureFixture) -> None:
    """Random input into NatsTransport's message callback (what nats-py calls per message)."""
    layer = NatsHubLayer(servers=["nats://127.0.0.1:1"])

    async def receive(subject: str, data: bytes) -> None:
        msg = SimpleNamespace(subject=subject, data=data, reply="", headers=None)
        await layer.bus._on_msg(msg)  # type: ignore[attr-defined]

    with caplog.at_level(logging.ERROR, "wshub_channels"):
        _fuzz_receive(layer, receive)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
