"""The Redis transport's connection handling on real Redis."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest

from tests.rig.brokers import start_redis_server
from wshub_channels.layers import RedisHubLayer
from wshub_channels.testing import scaled

pytestmark = pytest.mark.integration


async def test_concurrent_first_calls_share_one_open(redis_url: str) -> None:
    """Calls racing to be first open the bus once, and none waits out connect_timeout."""
    layer = RedisHubLayer(
        hosts=[redis_url], prefix=f"op{uuid.uuid4().hex[:8]}", connect_timeout=scaled(2)
    )
    opened = 0
    home = layer.bus.home  # type: ignore[attr-defined]
    real_open = home._open

    async def counting_open() -> None:
        nonlocal opened
        opened += 1
        await real_open()

    home._open = counting_open
    started = time.monotonic()
    await asyncio.gather(*(layer.bus.subscribe(f"race{n}") for n in range(5)))
    assert time.monotonic() - started < scaled(1)
    assert opened == 1
    assert layer.bus_status().connected
    await layer.close()


class RoundTrips:
    """Counts the commands (or pipelines) a client sends: one write, one round trip.

    Wraps the connections the client's pool hands out, so the count is what
    this process sends, whatever else talks to the same Redis.
    """

    def __init__(self, client: Any) -> None:
        self.pool = client.connection_pool
        self.count = 0
        self._get = self.pool.get_connection
        self._wrapped: list[Any] = []

    def __enter__(self) -> RoundTrips:
        async def get_connection(*args: Any, **kwargs: Any) -> Any:
            connection = await self._get(*args, **kwargs)
            if "send_packed_command" not in vars(connection):
                send = connection.send_packed_command

                async def counting(*a: Any, **kw: Any) -> Any:
                    self.count += 1
                    return await send(*a, **kw)

                connection.send_packed_command = counting
                self._wrapped.append(connection)
            return connection

        self.pool.get_connection = get_connection
        return self

    def __exit__(self, *exc: object) -> None:
        del self.pool.get_connection
        for connection in self._wrapped:
            del connection.send_packed_command


async def test_group_send_round_trips(redis_url: str) -> None:
    """group_send: one round trip without stored members, two with (however many)."""
    layer = RedisHubLayer(hosts=[redis_url], prefix=f"rt{uuid.uuid4().hex[:8]}")
    try:
        local = await layer.new_channel()
        workers = [f"rt.worker-{n}" for n in range(5)]
        await layer.group_add("plain", local)
        await layer.group_add("mixed", local)
        for worker in workers:
            await layer.group_add("mixed", worker)
        for group in ("plain", "mixed"):  # warm the pool and the script cache
            await layer.group_send(group, {"type": "warm"})
            assert await asyncio.wait_for(layer.receive(local), scaled(2)) == {"type": "warm"}
        for worker in workers:
            assert await asyncio.wait_for(layer.receive(worker), scaled(2)) == {"type": "warm"}
        client = layer.bus.client  # type: ignore[attr-defined]

        with RoundTrips(client) as trips:
            await layer.group_send("plain", {"type": "no.stored"})
        assert trips.count == 1
        assert await asyncio.wait_for(layer.receive(local), scaled(2)) == {"type": "no.stored"}

        with RoundTrips(client) as trips:
            await layer.group_send("mixed", {"type": "stored"})
        assert trips.count == 2
        assert await asyncio.wait_for(layer.receive(local), scaled(2)) == {"type": "stored"}
        for worker in workers:
            assert await asyncio.wait_for(layer.receive(worker), scaled(2)) == {"type": "stored"}
    finally:
        await layer.flush()
        await layer.close()


async def test_stored_members_reached_after_redis_lost_its_scripts() -> None:
    """The batched push reloads the push script when Redis forgot it (a restart)."""
    server = start_redis_server()
    layer = RedisHubLayer(hosts=[server.url], prefix="scripts", capacity=1)
    try:
        await layer.group_add("g", "scripts.a")
        await layer.group_add("g", "scripts.b")
        await layer.send("scripts.b", {"type": "fills.b"})
        client = layer.bus.client  # type: ignore[attr-defined]
        await client.script_flush()
        await layer.group_send("g", {"type": "after.flush"})
        assert await asyncio.wait_for(layer.receive("scripts.a"), scaled(2)) == {
            "type": "after.flush"
        }
        assert await asyncio.wait_for(layer.receive("scripts.b"), scaled(2)) == {"type": "fills.b"}
        assert layer.stats.full_drops == 1
    finally:
        await layer.close()
        server.stop()
