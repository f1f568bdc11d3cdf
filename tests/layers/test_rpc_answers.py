"""An answer that cannot travel becomes an error reply, never a silent timeout.

An op's result is encoded inside the error path of the request handler: a
result msgpack cannot carry (an object, a lone surrogate, an int beyond 64
bits) or one larger than the bus takes comes back to the caller at once as a
typed error, on every bus.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from channels.exceptions import MessageTooLarge

from wshub_channels import errors
from wshub_channels.core.wire import encode_call, encode_error
from wshub_channels.layers import Backend, InMemoryHubLayer, NatsHubLayer, RedisHubLayer
from wshub_channels.layers.base import HubLayer
from wshub_channels.layers.memory import MemoryBus, MemoryStore
from wshub_channels.layers.rpc import RemoteOps, decode_answer
from wshub_channels.testing import scaled
from wshub_channels.testing.jetstream import delete_prefix_streams

UNENCODABLE = [object(), "room\ud800", 2**70, {"k": [b"", {"x": set()}]}]


class _Count:
    def __init__(self) -> None:
        self.bad = 0

    def __call__(self) -> None:
        self.bad += 1


@pytest.mark.unit
@pytest.mark.parametrize("result", UNENCODABLE, ids=["object", "surrogate", "bigint", "nested-set"])
async def test_an_unencodable_result_is_an_error_answer(result: Any) -> None:
    """The handler answers a TypeError naming the op instead of raising."""
    ops = RemoteOps(_Count(), _Count())

    async def op() -> Any:
        return result

    ops.register("sync", op)
    answer = await ops.handle("s", encode_call("sync", []))
    assert answer is not None
    with pytest.raises(TypeError, match="'sync'"):
        decode_answer(answer)


@pytest.mark.unit
async def test_an_error_whose_message_cannot_be_encoded_still_travels() -> None:
    """An op error with a lone surrogate in its text is answered with that text escaped."""
    ops = RemoteOps(_Count(), _Count())

    async def op() -> None:
        raise errors.RoomNotFound("room\ud800")

    ops.register("find", op)
    answer = await ops.handle("s", encode_call("find", []))
    assert answer is not None
    with pytest.raises(errors.RoomNotFound, match=r"room\\ud800"):
        decode_answer(answer)
    with pytest.raises(errors.RoomNotFound):
        decode_answer(encode_error(errors.RoomNotFound("x\udcff")))


# -- through every bus ---------------------------------------------------------------


LayerPair = Callable[[], tuple[HubLayer, HubLayer]]


@pytest.fixture(
    params=[
        "memory",
        pytest.param("redis", marks=pytest.mark.integration),
        pytest.param("nats", marks=pytest.mark.integration),
    ]
)
async def pair(request: pytest.FixtureRequest) -> AsyncIterator[tuple[HubLayer, HubLayer]]:
    prefix = f"rpc{uuid.uuid4().hex[:8]}"
    made: tuple[HubLayer, HubLayer]
    if request.param == "memory":
        made = (InMemoryHubLayer(bus=prefix), InMemoryHubLayer(bus=prefix))
    elif request.param == "redis":
        url = request.getfixturevalue("redis_url")
        made = (
            RedisHubLayer(hosts=[url], prefix=prefix),
            RedisHubLayer(hosts=[url], prefix=prefix),
        )
    else:
        url = request.getfixturevalue("nats_url")
        made = (
            NatsHubLayer(servers=[url], prefix=prefix),
            NatsHubLayer(servers=[url], prefix=prefix),
        )
    for layer in made:
        await layer.start()
    yield made
    for layer in made:
        await layer.close()
    if request.param == "nats":
        await delete_prefix_streams(request.getfixturevalue("nats_url"), prefix)


async def test_an_unencodable_answer_reaches_the_caller_at_once(
    pair: tuple[HubLayer, HubLayer],
) -> None:
    """A remote op whose answer cannot be encoded raises TypeError in the caller well
    before the request timeout, instead of the caller waiting it out."""
    caller, answerer = pair

    async def rooms() -> Any:
        return ["lobby", "room\ud800"]

    answerer.register_op("rooms", rooms)
    started = time.monotonic()
    with pytest.raises(TypeError, match="'rooms'"):
        await caller.remote_call(answerer.node_id, "rooms", timeout=scaled(5))
    assert time.monotonic() - started < scaled(2)


class _SmallBus(MemoryBus):
    @property
    def max_payload(self) -> int | None:
        return 512


class _SmallLayer(InMemoryHubLayer):
    def make_backend(self) -> Backend:
        return Backend(_SmallBus(self.broker), MemoryStore(self.broker))


@pytest.mark.unit
async def test_an_answer_larger_than_the_bus_takes_is_message_too_large() -> None:
    """An answer over the bus's max_payload comes back as MessageTooLarge at once."""
    bus = f"small-{uuid.uuid4().hex}"
    caller, answerer = _SmallLayer(bus=bus), _SmallLayer(bus=bus)
    await caller.start()
    await answerer.start()

    async def big() -> str:
        return "x" * 4096

    answerer.register_op("big", big)
    with pytest.raises(MessageTooLarge, match="answer"):
        await caller.remote_call(answerer.node_id, "big", timeout=scaled(5))
