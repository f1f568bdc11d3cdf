"""A broker restarted mid-stream, on every bus: Redis and NATS.

Two server processes (daphne and uvicorn) share a private broker; one streams
room broadcasts to a client of the other while the broker goes away and
comes back.
"""

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

from tests.integration.buses import Bus, node_env
from tests.integration.peer import Peer
from tests.integration.test_cluster import APP
from tests.rig.brokers import ServerHandle, start_nats_server, start_redis_server
from tests.rig.servers import AsgiServer, StartAsgiServer
from tests.rig.timing import async_wait_until
from wshub_channels.testing import scaled

pytestmark = pytest.mark.integration


@pytest.fixture(params=["redis", "nats"])
def private_broker(request: pytest.FixtureRequest) -> Iterator[tuple[str, ServerHandle]]:
    """A broker this test owns outright, so that it can stop and start it."""
    kind: str = request.param
    handle = start_redis_server() if kind == "redis" else start_nats_server()
    yield kind, handle
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


async def test_broker_restart_mid_stream(
    private_broker: tuple[str, ServerHandle], asgi_server: StartAsgiServer
) -> None:
    """Sockets stay open, readiness shows the outage, delivery resumes within 2 s."""
    kind, broker = private_broker
    env = node_env(Bus(kind, kind, (broker.url,)), f"ft{uuid.uuid4().hex[:8]}")
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

        broker.stop()
        for node in nodes:

            async def not_ready(node: AsgiServer = node) -> bool:
                status, body = await _ready(node)
                return status == 503 and body["bus"]["connected"] is False

            await _until(not_ready, within=3)
            assert (await asyncio.to_thread(_probe, node, "/healthz"))[0] == 200
        await asyncio.sleep(scaled(0.5))
        failed_during_outage = outcomes.count("BusUnavailable")
        if kind == "redis":  # a publish to a Redis that is gone fails at once
            assert failed_during_outage > 0, outcomes[-20:]
        else:  # nats-py holds publishes in its bounded pending buffer while it reconnects
            assert failed_during_outage == 0, outcomes[-20:]

        broker.start(retry_port_in_use=True)
        receiver.inbox.clear()
        while await delivered():
            pass  # anything already in flight
        resumed = await _until(delivered, within=4)
        print(f"{kind}: cross-node delivery resumed {resumed:.2f}s after the broker answered")
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
