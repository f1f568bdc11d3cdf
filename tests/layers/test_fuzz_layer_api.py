"""Property-based fuzzing of the channel layer API on every layer.

Hypothesis draws calls to ``new_channel``, ``send``, ``group_add``,
``group_discard``, ``group_send`` and ``receive`` with random names (lone
surrogates, ``!`` in odd places, over-long, empty) and random messages
(values msgpack cannot carry, big bytes, non-str keys). Each call either
works or fails at once with the spec's errors (``TypeError``, ``ValueError``
and its subclasses ``InvalidName`` and ``ForeignChannel``, ``ChannelFull``).
A ``receive`` on a ``!`` channel this layer never handed out must fail at
once, never wait. Afterwards a bystander channel still gets a ``send`` and a
``group_send``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from channels.exceptions import ChannelFull
from channels.layers import BaseChannelLayer
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from wshub_channels.layers import InMemoryHubLayer, NatsHubLayer, RedisHubLayer
from wshub_channels.testing import scaled
from wshub_channels.testing.jetstream import delete_prefix_streams

ALLOWED = (TypeError, ValueError, ChannelFull)
#: Stands for a 1.2 MB message (drawn as a marker, so Hypothesis never prints the bytes).
BIG = "<big message>"
#: How long a receive may wait on a channel that could legitimately be empty.
PATIENCE = scaled(0.05)

FUZZ = settings(
    max_examples=int(scaled(30)),
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],  # no "explain"
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest.fixture(params=["memory", "redis", "nats"])
async def layer(request: pytest.FixtureRequest) -> AsyncIterator[BaseChannelLayer]:
    prefix = f"fz{uuid.uuid4().hex[:8]}"
    made: BaseChannelLayer
    nats_url = None
    if request.param == "memory":
        request.applymarker(pytest.mark.unit)
        made = InMemoryHubLayer()
    elif request.param == "redis":
        request.applymarker(pytest.mark.integration)
        made = RedisHubLayer(hosts=[request.getfixturevalue("redis_url")], prefix=prefix)
    else:
        request.applymarker(pytest.mark.integration)
        nats_url = request.getfixturevalue("nats_url")
        made = NatsHubLayer(servers=[nats_url], prefix=prefix)
    try:
        yield made
    finally:
        await made.close()  # type: ignore[attr-defined]
        if nats_url is not None:
            await delete_prefix_streams(nats_url, prefix)


lone = st.sampled_from(["\ud800", "\udfff", "a\udc80b"])
odd_names = st.one_of(
    st.text(max_size=30),
    st.text(alphabet="abc!.-_", max_size=12),
    st.builds(lambda a, b: f"{a}!{b}", st.text(max_size=20), st.text(max_size=20)),
    st.builds(lambda s: f"not-client-prefix!{s}", st.text(min_size=1, max_size=10)),
    st.builds(lambda s: f"specific.abcdefghijkl!{s}", st.text(min_size=1, max_size=10)),
    lone,
    st.text(min_size=95, max_size=120, alphabet="abcdef"),
    st.just(""),
)
values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | lone
    | st.binary(max_size=64)
    | st.just(object())
    | st.just({1, 2}),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
messages = st.one_of(
    st.dictionaries(st.text(max_size=6), values, max_size=4).map(lambda d: {"type": "x.y", **d}),
    st.dictionaries(st.integers(), st.integers(), max_size=2),
    st.just(BIG),
    values,
)
calls = st.lists(
    st.tuples(
        st.sampled_from(["send", "group_add", "group_discard", "group_send", "receive", "new"]),
        odd_names,
        messages,
    ),
    min_size=1,
    max_size=8,
)


async def _call(layer: Any, op: str, name: str, message: Any, mine: list[str]) -> None:
    """One call; only the spec's errors may come out, and only a legitimate wait may time out."""
    target = mine[0]
    if message == BIG:
        message = {"type": "big.blob", "blob": b"\0" * 1_200_000}
    try:
        if op == "new":
            mine.append(await layer.new_channel(name if name.isascii() else "x"))
        elif op == "send":
            await layer.send(name, message)
        elif op == "group_add":
            await layer.group_add(name, target)
        elif op == "group_discard":
            await layer.group_discard(name, target)
        elif op == "group_send":
            await layer.group_send(name, message)
        elif "!" in name and name not in mine:
            # Never handed out by this layer: fails at once, whatever its prefix looks like.
            async with asyncio.timeout(scaled(2)):
                await layer.receive(name)
            pytest.fail(f"receive({name!r}) returned a message for a channel never handed out")
        else:
            try:
                async with asyncio.timeout(PATIENCE):
                    await layer.receive(name)
            except TimeoutError:
                pass  # an empty channel of ours, or a normal channel: waiting is right
    except ALLOWED:
        pass


async def _bystander_still_served(layer: Any, channel: str) -> None:
    group = f"fuzzgroup{uuid.uuid4().hex[:6]}"
    await layer.group_add(group, channel)
    await layer.send(channel, {"type": "probe.direct"})
    await layer.group_send(group, {"type": "probe.group"})
    seen = []
    async with asyncio.timeout(scaled(3)):
        while len(seen) < 2:
            got = await layer.receive(channel)
            if got["type"].startswith("probe."):
                seen.append(got["type"])
    assert sorted(seen) == ["probe.direct", "probe.group"]
    await layer.group_discard(group, channel)


@FUZZ
@given(sequence=calls)
async def test_layer_api_refuses_hostile_calls_at_once(layer: Any, sequence: list[Any]) -> None:
    bystander = await layer.new_channel()
    mine = [await layer.new_channel()]
    for op, name, message in sequence:
        await _call(layer, op, name, message, mine)
    await _bystander_still_served(layer, bystander)
