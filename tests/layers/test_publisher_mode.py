"""Publisher mode: sync code (views, commands, tasks) reuses one bus connection."""

from __future__ import annotations

import time
import uuid

import pytest
import redis
from asgiref.sync import async_to_sync

from wshub_channels.conf import get_settings
from wshub_channels.hub import Hub
from wshub_channels.layers import RedisHubLayer
from wshub_channels.testing import scaled

pytestmark = pytest.mark.integration
CALLS = 1000


def _connections(server: redis.Redis, name: str) -> int:
    return sum(1 for c in server.client_list() if c.get("name") == name)


def test_async_to_sync_calls_share_one_connection(redis_url: str) -> None:
    """1,000 async_to_sync hub sends and 1,000 group_sends: constant connections, all published."""
    layer = RedisHubLayer(hosts=[redis_url], prefix=f"pub{uuid.uuid4().hex[:8]}")
    hub = Hub(layer, get_settings())
    server = redis.Redis.from_url(redis_url)
    listener = server.pubsub(ignore_subscribe_messages=True)
    listener.subscribe(layer.subject("r", "lobby"), layer.subject("g", "news"))
    name = f"wshub-{layer.node_id}"
    try:
        for n in range(10):
            async_to_sync(hub.broadcast_to_room)("lobby", f"warm-up {n}")
        early = _connections(server, name)
        for n in range(CALLS):
            async_to_sync(hub.broadcast_to_room)("lobby", f"m{n}")
            async_to_sync(layer.group_send)("news", {"type": "news", "n": n})
        late = _connections(server, name)
        assert hub.mode == "publisher"
        assert 1 <= early <= 3, early  # the subscriber plus one or two command connections
        assert late == early

        received = 0
        deadline = time.monotonic() + scaled(10)
        while received < 10 + 2 * CALLS and time.monotonic() < deadline:
            if listener.get_message(timeout=scaled(0.5)) is not None:
                received += 1
        assert received == 10 + 2 * CALLS
        assert listener.get_message(timeout=scaled(0.2)) is None
    finally:
        async_to_sync(hub.shutdown)()
        listener.close()
    assert _connections(server, name) == 0
    server.close()
