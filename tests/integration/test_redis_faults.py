"""Faults on a private redis-server: a restart mid-stream, and a subscriber cut off."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from tests.integration.buses import Bus, node_env
from tests.integration.peer import Peer
from tests.integration.test_cluster import APP
from tests.rig.brokers import ServerHandle, start_redis_server
from tests.rig.servers import AsgiServer, StartAsgiServer
from tests.rig.timing import async_wait_until
from wshub_channels.layers import RedisHubLayer
from wshub_channels.testing import scaled

pytestmark = pytest.mark.integration


@pytest.fixture
def private_redis() -> Iterator[ServerHandle]:
    handle = start_redis_server()
    yield handle
    handle.stop()


def _probe(server: AsgiServer, path: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(server.http_url + path, timeout=scaled(2)) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


async def _ready(server: AsgiServer) -> tuple[int, dict[str, Any]]:
    return await asyncio.to_thread(_probe, server, "/readyz")


async def _until(check: Any, within: float) -> float:
    """Poll the async predicate ``check`` until it holds; return how long it took."""
    start = time.monotonic()
    await async_wait_until(check, scaled(within), interval=scaled(0.05))
    return time.monotonic() - start


async def test_redis_restart_mid_stream(
    private_redis: ServerHandle, asgi_server: StartAsgiServer
) -> None:
    """Sockets stay open, readiness shows the outage, delivery resumes within 2 s."""
    env = node_env(Bus("redis", "redis", (private_redis.url,)), f"ft{uuid.uuid4().hex[:8]}")
    nodes = [asgi_server("daphne", APP, env), asgi_server("uvicorn", APP, env)]
    sender = await Peer.open(nodes[0].ws_url("/ws/control/"))
    receiver = await Peer.open(nodes[1].ws_url("/ws/control/?rooms=feed"))
    outcomes: list[str] = []
    stop = asyncio.Event()

    async def stream() -> None:
        n = 0
        while not stop.is_set():
            reply = await sender.call_raw("broadcast_to_room", room="feed", text=f"s{n}")
            outcomes.append(reply.get("error", "ok"))
            n += 1
            await asyncio.sleep(scaled(0.02))

    async def delivered() -> bool:
        try:
            await receiver.next(0.05)
        except TimeoutError:
            return False
        return True

    streaming = asyncio.create_task(stream())
    try:
        await _until(delivered, within=2)
        for node in nodes:
            assert (await _ready(node))[0] == 200

        private_redis.stop()
        for node in nodes:

            async def not_ready(node: AsgiServer = node) -> bool:
                status, body = await _ready(node)
                return status == 503 and body["bus"]["connected"] is False

            await _until(not_ready, within=3)
            assert (await asyncio.to_thread(_probe, node, "/healthz"))[0] == 200
        await asyncio.sleep(scaled(0.5))
        failed_during_outage = outcomes.count("BusUnavailable")
        assert failed_during_outage > 0, outcomes[-20:]

        private_redis.start(retry_port_in_use=True)
        receiver.inbox.clear()
        while await delivered():
            pass  # anything already in flight
        resumed = await _until(delivered, within=4)
        print(f"cross-node delivery resumed {resumed:.2f}s after Redis answered")
        assert resumed < 2.0, f"cross-node delivery resumed only after {resumed:.2f}s"
        for node in nodes:

            async def ready(node: AsgiServer = node) -> bool:
                return (await _ready(node))[0] == 200

            await _until(ready, within=2)
    finally:
        stop.set()
        await streaming

    # The WebSocket connections survived, and the outage was counted on the sender's node.
    assert sender.ws.close_code is None and receiver.ws.close_code is None
    stats = await sender.call("layer_stats")
    assert stats["publish_errors"] >= failed_during_outage
    assert stats["bus_down"] == 1 and stats["bus_up"] == 2
    assert (await receiver.call("layer_stats"))["bus_down"] == 1
    for peer in (sender, receiver):  # losing the bus reached hub_error on both nodes
        assert "BusUnavailable" in await peer.call("hub_errors")
    await sender.close()
    await receiver.close()
    for node in nodes:
        node.stop()


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
