"""The Redis transport's connection handling on real Redis."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from wshub_channels.layers import RedisHubLayer
from wshub_channels.testing import scaled

pytestmark = pytest.mark.integration


async def test_concurrent_first_calls_share_one_open(redis_url: str) -> None:
    """Calls racing to be first open the bus once, and none waits out connect_timeout."""
    layer = RedisHubLayer(
        hosts=[redis_url], prefix=f"op{uuid.uuid4().hex[:8]}", connect_timeout=scaled(2)
    )
    opened = 0
    real_open = layer.transport._open

    async def counting_open() -> None:
        nonlocal opened
        opened += 1
        await real_open()

    layer.transport._open = counting_open  # type: ignore[method-assign]
    started = time.monotonic()
    await asyncio.gather(*(layer.transport.subscribe(f"race{n}") for n in range(5)))
    assert time.monotonic() - started < scaled(1)
    assert opened == 1
    assert layer.bus_status().connected
    await layer.close()
