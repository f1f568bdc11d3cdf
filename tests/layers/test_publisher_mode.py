"""Publisher mode: sync code (views, commands, tasks) reuses one bus connection, on every bus."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any, Protocol

import pytest
import redis
from asgiref.sync import async_to_sync

from tests.rig.brokers import ServerHandle, start_nats_server
from tests.rig.servers import LOCALHOST, free_port
from tests.rig.timing import wait_until
from wshub_channels.conf import get_settings
from wshub_channels.hub.hub import Hub
from wshub_channels.layers import HubLayer, NatsHubLayer, RedisHubLayer
from wshub_channels.testing import scaled

pytestmark = pytest.mark.integration
CALLS = 1000


class BusProbe(Protocol):
    """What the test reads from the broker itself, not from the layer."""

    def layer(self, prefix: str) -> HubLayer: ...
    def connections(self, name: str) -> int: ...
    def published(self) -> int: ...
    def close(self) -> None: ...


class RedisProbe:
    """Counts named client connections and messages on the room and group subjects."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.server = redis.Redis.from_url(url)
        self.listener = self.server.pubsub(ignore_subscribe_messages=True)
        self.seen = 0

    def layer(self, prefix: str) -> HubLayer:
        layer = RedisHubLayer(hosts=[self.url], prefix=prefix)
        self.listener.subscribe(layer.subject("r", "lobby"), layer.subject("g", "news"))
        return layer

    def connections(self, name: str) -> int:
        return sum(1 for c in self.server.client_list() if c.get("name") == name)

    def published(self) -> int:
        # get_message() also returns None for the subscribe confirmations it skips.
        deadline = time.monotonic() + scaled(10)
        while self.seen < 10 + 2 * CALLS and time.monotonic() < deadline:
            if self.listener.get_message(timeout=scaled(0.5)) is not None:
                self.seen += 1
        while self.listener.get_message(timeout=scaled(0.2)) is not None:
            self.seen += 1  # anything past the expected count is an extra
        return self.seen

    def close(self) -> None:
        self.listener.close()
        self.server.close()


class NatsProbe:
    """A private nats-server: connections by name from its monitoring port, and a
    listener (its own client, on its own thread and loop) on the two subjects."""

    def __init__(self) -> None:
        self.monitor = free_port()
        self.handle: ServerHandle = start_nats_server(
            config=f"max_payload: 8MB\nhttp: {LOCALHOST}:{self.monitor}\n", jetstream=False
        )
        self.seen = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._client: Any = None

    def _get(self, path: str) -> dict[str, Any]:
        url = f"http://{LOCALHOST}:{self.monitor}/{path}"
        with urllib.request.urlopen(url, timeout=scaled(2)) as response:
            data: dict[str, Any] = json.loads(response.read())
            return data

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(scaled(5))

    def layer(self, prefix: str) -> HubLayer:
        import nats

        layer = NatsHubLayer(servers=[self.handle.url], prefix=prefix)

        async def listen() -> None:
            async def count(msg: Any) -> None:
                self.seen += 1

            self._client = await nats.connect(self.handle.url)
            for subject in (layer.subject("r", "lobby"), layer.subject("g", "news")):
                await self._client.subscribe(subject, cb=count)
            await self._client.flush()

        self._run(listen())
        return layer

    def connections(self, name: str) -> int:
        conns = self._get("connz?limit=1024").get("connections") or []
        return sum(1 for c in conns if c.get("name") == name)

    def published(self) -> int:
        deadline = time.monotonic() + scaled(10)
        while self.seen < 10 + 2 * CALLS and time.monotonic() < deadline:
            time.sleep(scaled(0.05))
        time.sleep(scaled(0.2))  # anything past the expected count is an extra
        return self.seen

    def close(self) -> None:
        if self._client is not None:
            self._run(self._client.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(scaled(5))
        self._loop.close()
        self.handle.stop()


@pytest.fixture(params=["redis", "nats"])
def probe(request: pytest.FixtureRequest) -> Iterator[BusProbe]:
    if request.param == "nats":
        made: BusProbe = NatsProbe()
    else:
        made = RedisProbe(request.getfixturevalue("redis_url"))
    yield made
    made.close()


def test_async_to_sync_calls_share_one_connection(probe: BusProbe) -> None:
    """1,000 async_to_sync hub sends and 1,000 group_sends: constant connections, all published."""
    layer = probe.layer(f"pub{uuid.uuid4().hex[:8]}")
    hub = Hub(layer, get_settings())
    name = f"wshub-{layer.node_id}"
    try:
        for n in range(10):
            async_to_sync(hub.broadcast_to_room)("lobby", f"warm-up {n}")
        early = probe.connections(name)
        for n in range(CALLS):
            async_to_sync(hub.broadcast_to_room)("lobby", f"m{n}")
            async_to_sync(layer.group_send)("news", {"type": "news", "n": n})
        late = probe.connections(name)
        assert hub.mode == "publisher"
        assert 1 <= early <= 3, early  # the subscriber plus one or two command connections
        assert late == early
        assert probe.published() == 10 + 2 * CALLS
    finally:
        async_to_sync(hub.shutdown)()
    # The broker notices a closed connection a moment after the client closed it.
    wait_until(lambda: probe.connections(name) == 0, scaled(5), what="the connection to close")
