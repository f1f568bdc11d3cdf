"""Scatter-gather on every bus: each other node answers once, and the gather ends
as soon as the expected number did, not at its timeout."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from wshub_channels.errors import NotInRoom
from wshub_channels.layers import HubLayer, InMemoryHubLayer, NatsHubLayer, RedisHubLayer
from wshub_channels.testing import scaled

pytestmark = pytest.mark.integration

TIMEOUT = 5.0  # time units: a gather that waited it out would be plain to see


@pytest.fixture(params=["memory", "redis", "nats"])
async def nodes(request: pytest.FixtureRequest) -> AsyncIterator[list[HubLayer]]:
    prefix = f"ga{uuid.uuid4().hex[:8]}"
    make: Callable[[], HubLayer]
    if request.param == "memory":
        make = lambda: InMemoryHubLayer(bus=prefix)  # noqa: E731
    elif request.param == "redis":
        url = request.getfixturevalue("redis_url")
        make = lambda: RedisHubLayer(hosts=[url], prefix=prefix)  # noqa: E731
    else:
        url = request.getfixturevalue("nats_url")
        make = lambda: NatsHubLayer(servers=[url], prefix=prefix)  # noqa: E731
    made = [make() for _ in range(3)]
    for layer in made:
        await layer.start()
    yield made
    for layer in made:
        await layer.close()


async def test_gather_ends_when_every_node_answered(nodes: list[HubLayer]) -> None:
    """Two other nodes answer once each (an error comes back as a value), well before
    the timeout; the caller does not answer itself."""
    for index, layer in enumerate(nodes):

        async def whoami(ask: str, index: int = index) -> Any:
            if index == 2:
                raise NotInRoom(f"node {index} says no to {ask}")
            return [index, ask]

        layer.register_op("whoami", whoami)
    started = time.monotonic()
    answers = await nodes[0].gather_call("whoami", "hi", expect=2, timeout=scaled(TIMEOUT))
    took = time.monotonic() - started
    assert took < scaled(TIMEOUT) / 5, f"the gather took {took:.2f}s"
    assert [1, "hi"] in answers and len(answers) == 2
    errors = [a for a in answers if isinstance(a, Exception)]
    assert len(errors) == 1 and isinstance(errors[0], NotInRoom)
