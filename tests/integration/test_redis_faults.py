"""Faults only Redis has: a subscriber cut off at its output-buffer limit, a wrong password.

A broker restart mid-stream is in ``test_bus_restart.py``, for every bus.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from tests.rig.brokers import ServerHandle, start_redis_server
from tests.rig.timing import async_wait_until
from wshub_channels.layers import RedisHubLayer
from wshub_channels.testing import scaled

pytestmark = pytest.mark.integration


@pytest.fixture
def private_redis() -> Iterator[ServerHandle]:
    handle = start_redis_server()
    yield handle
    handle.stop()


async def _until(check: Any, within: float) -> float:
    """Poll the async predicate ``check`` until it holds; return how long it took."""
    start = time.monotonic()
    await async_wait_until(check, scaled(within), interval=scaled(0.05))
    return time.monotonic() - start


async def test_subscriber_cut_off_at_output_buffer_limit_is_counted(
    private_redis: ServerHandle,
) -> None:
    """Redis dropping a subscriber that fell behind is told apart from an outage and recovered."""
    admin = redis.Redis.from_url(private_redis.url)
    admin.config_set("client-output-buffer-limit", "pubsub 262144 131072 1")
    events: list[str] = []
    layer = RedisHubLayer(hosts=[private_redis.url], prefix=f"ob{uuid.uuid4().hex[:8]}")
    layer.set_bus_listener(lambda event, error: events.append(event))
    channel = await layer.new_channel()
    await layer.group_add("flood", channel)
    subject = layer.subject("g", "flood")
    blob = b"\xc1" * 65536  # never valid msgpack: each is counted as a bad envelope
    # Hold this loop (so the subscriber cannot read) while Redis queues 16 MB for it.
    pipe = admin.pipeline(transaction=False)
    for _ in range(256):
        pipe.publish(subject, blob)
    pipe.execute()
    time.sleep(scaled(0.2))  # noqa: ASYNC251 - blocking the loop is the point

    async def back_up() -> bool:
        return layer.bus_status().connected and "dropped" in events

    await _until(back_up, within=3)
    assert layer.stats.subscriber_dropped == 1
    assert layer.stats.bus_down == 0  # not an outage: the server never went away
    assert layer.stats.bad_envelopes < 256  # what it read before the cut, each counted
    await layer.group_send("flood", {"type": "after"})
    other = RedisHubLayer(hosts=[private_redis.url], prefix=layer.prefix)
    await other.group_send("flood", {"type": "from elsewhere"})
    got = [await asyncio.wait_for(layer.receive(channel), scaled(2)) for _ in range(2)]
    assert [m["type"] for m in got] == ["after", "from elsewhere"]
    await other.close()
    await layer.close()
    admin.close()


async def test_password_in_url_and_a_wrong_password(private_redis: ServerHandle) -> None:
    """A password in the URL authenticates; a wrong one is a clear, reported bus error."""
    admin = redis.Redis.from_url(private_redis.url)
    admin.config_set("requirepass", "s3cret")
    port = private_redis.port
    prefix = f"pw{uuid.uuid4().hex[:8]}"
    good = [RedisHubLayer(hosts=[f"redis://:s3cret@127.0.0.1:{port}"], prefix=prefix) for _ in "ab"]
    channel = await good[0].new_channel()
    await good[0].group_add("g", channel)
    await good[1].group_send("g", {"type": "through auth"})
    assert await asyncio.wait_for(good[0].receive(channel), scaled(2)) == {"type": "through auth"}
    await good[1].send("auth.work", {"type": "queued"})
    assert await asyncio.wait_for(good[0].receive("auth.work"), scaled(2)) == {"type": "queued"}

    bad = RedisHubLayer(
        hosts=[f"redis://:wrong@127.0.0.1:{port}"], prefix=prefix, connect_timeout=scaled(0.3)
    )
    await bad.start()  # starts, but the bus is down and says why
    status = bad.bus_status()
    assert not status.connected
    assert status.last_error is not None and "Authentication" in status.last_error
    from wshub_channels.errors import BusUnavailable

    with pytest.raises(BusUnavailable):
        await bad.group_send("g", {"type": "never"})
    assert bad.stats.publish_errors == 1
    for layer in (*good, bad):
        await layer.close()
    admin.config_set("requirepass", "")
    admin.close()
